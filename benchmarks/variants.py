"""Cost per seed-step of a group of variants (lanes with their own lr and decay) against a study.

Run: ``python benchmarks/variants.py`` (under a minute, more on a cold Numba cache). In one
run on one machine, single-threaded, on exp08 (its full 5000 samples), it measures two
16-lane groups:

- *study*: a 16-seed study of exp08 (``train_group``: seeds 0..15, one schedule);
- *variants*: 16 different (lr, decay factor) variants of exp08, a 4 x 4 grid of
  lr in {0.003, 0.01, 0.03, 0.1} and decay factor in {0.3, 0.5, 0.7, 0.9}, one seed each
  (seeds 0..15 as well, so the two groups gather the same number of sample orders), as
  ``train_lanes`` trains them;

each as the kernel alone (``run_steps`` over a full epoch of each lane's schedule, on a
new engine each time, the fastest of several repeats) and as whole epochs of the trainer
(``train_lanes``: the kernel, gathering, metrics, evaluation, fits and the group's event),
both in CPU time of the thread (``time.thread_time``: on a shared machine, wall time also
counts the other processes' turns). The two groups are measured in turns, so a change in
the machine's load falls on both. Printed: µs per seed-step of each and variants / study.
The target: at most 1.10.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import torch

from fnn_tui.core.catalog import discover
from fnn_tui.core.engines.multi_engine import MultiFusedEngine
from fnn_tui.core.events import RunFinished
from fnn_tui.core.group import default_lanes, train_lanes
from fnn_tui.core.presets import Preset
from fnn_tui.core.trainer import RunOptions

RATES = (0.003, 0.01, 0.03, 0.1)
FACTORS = (0.3, 0.5, 0.7, 0.9)


def study(preset: Preset, lanes: int) -> list[Preset]:
    """Seeds 0..lanes-1 of ``preset``."""
    return [preset.with_overrides(seed=s) for s in range(lanes)]


def variants(preset: Preset) -> list[Preset]:
    """The (lr, decay factor) grid of ``preset``, lane i seeded i."""
    out = []
    for i, (lr, factor) in enumerate((lr, f) for lr in RATES for f in FACTORS):
        p = preset.with_overrides(seed=i)
        out.append(dataclasses.replace(p, training=dataclasses.replace(p.training, lr=lr, decay_factor=factor)))
    return out


def kernel_times(groups: dict[str, list[Preset]], repeats: int) -> dict[str, float]:
    """µs per seed-step of each group's kernel over a full epoch (fastest of ``repeats``), in turns.

    Each repeat builds its engines afresh: one engine's speed was measured to stay 10-30%
    off another's of the same group for all its epochs (where its buffers fall in the
    caches, with another process on the same core), so the fastest of several engines counts.
    """
    for lanes in groups.values():  # compiles (or loads) the kernel
        engine = MultiFusedEngine(lanes)
        engine.set_epoch(0)
        engine.run_steps(0, 10)
    times: dict[str, list[float]] = {name: [] for name in groups}
    for r in range(repeats):
        for name, lanes in groups.items():
            engine = MultiFusedEngine(lanes)
            engine.set_epoch(r + 1)  # each lane's own schedule
            start = time.thread_time()
            engine.run_steps(0, engine.steps_per_epoch)
            times[name].append((time.thread_time() - start) / engine.steps_per_epoch / engine.lanes * 1e6)
    return {name: min(t) for name, t in times.items()}


def trainer_times(groups: dict[str, list[Preset]], epochs: int, repeats: int) -> dict[str, float]:
    """µs per seed-step of ``train_lanes`` over ``epochs`` epochs (fastest of ``repeats``), in turns."""
    times: dict[str, list[float]] = {name: [] for name in groups}
    for _ in range(repeats):
        for name, lanes in groups.items():
            lanes = [p.with_overrides(epochs=epochs) for p in lanes]
            start = time.thread_time()
            ends = train_lanes(lanes, RunOptions(engine="fused", device="cpu"), lambda event: None)
            elapsed = time.thread_time() - start
            # a diverged lane is computed along to the end (frozen, not skipped), so the
            # group's work is the same unless every lane ends early
            assert any(isinstance(e, RunFinished) for e in ends), f"every lane of {name} ended early"
            steps = len(lanes) * epochs * lanes[0].data.n_train
            times[name].append(elapsed / steps * 1e6)
    return {name: min(t) for name, t in times.items()}


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="kernel measurements per group, a full epoch each (the fastest counts)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each trainer measurement")
    parser.add_argument("--runs", type=int, default=5, help="trainer measurements per group (the fastest counts)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = discover(include_user=False).get("exp08")
    groups = {"study": study(preset, 16), "variants": variants(preset)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"default lanes {default_lanes()}, load average {load:.2f}, torch {torch.__version__}")
    print(f"exp08 ({preset.data.n_train} training samples), 16 lanes: a 16-seed study against 16 (lr, decay "
          f"factor) variants, lr {RATES} x factor {FACTORS}")
    kernel = kernel_times(groups, args.repeats)
    trainer = trainer_times(groups, args.epochs, args.runs)
    print(f"  kernel only, fastest of {args.repeats} full epochs (a new engine each):")
    for name in groups:
        print(f"    {name:<9s}{kernel[name]:8.3f} us/seed-step")
    print(f"    variants / study {kernel['variants'] / kernel['study']:.3f}  (target <= 1.10)")
    print(f"  train_lanes, {args.epochs} epochs (data, weights and evaluation included), fastest of {args.runs}:")
    for name in groups:
        print(f"    {name:<9s}{trainer[name]:8.3f} us/seed-step")
    print(f"    variants / study {trainer['variants'] / trainer['study']:.3f}  (target <= 1.10)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end {load:.2f}")


if __name__ == "__main__":
    main()
