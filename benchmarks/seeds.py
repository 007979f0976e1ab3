"""Cost per seed-step of training seeds together (one per SIMD lane) against one at a time.

Run: ``python benchmarks/seeds.py`` (about a minute, more on a cold Numba cache). In one
run on one machine, single-threaded, it measures on exp08's and exp06's shapes:

- the single-seed fused kernel (``FusedEngine``, K=1) and the multi-seed kernel at
  K = 4, 8, 16, 32: kernel only, ``run_steps`` over a full epoch after a warm-up, the
  fastest of several repeats in CPU time of the thread (``time.thread_time``: on a shared
  machine, wall time also counts the other processes' turns); printed as µs per
  seed-step and as the single kernel's cost over it;
- the per-epoch work of ``train_group`` outside the kernel at K=16 on exp08 (gathering
  the epoch's samples, train metrics, evaluation, a snapshot and a ``TrainState`` per lane).

- end to end, as ``fnn-tui run exp08 --seeds 16`` trains (the planner's tasks: the groups, the
  store, checkpoints and fits every epoch), wall time from the first event to the last,
  per seed-step, beside the notes-style loop of ``benchmarks/steps.py`` measured in this run;
- with ``--table``, the wall time of ``fnn-tui run --all --seeds 10 --jobs 0`` into a new
  store (the whole table, ten seeds; start-up included, after a one-epoch run of the same
  command has compiled or loaded the kernels), and each preset's share read from the store.

``--command "..."`` times any other shell command the same way.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fnn_tui.core.catalog import discover
from fnn_tui.core.data import epoch_order, make_dataset
from fnn_tui.core.engines.fused_engine import FusedEngine
from fnn_tui.core.engines.multi_engine import MultiFusedEngine
from fnn_tui.core.events import Event, GroupEpochFinished, StepProgress
from fnn_tui.core.group import default_lanes, train_group
from fnn_tui.core.trainer import RunOptions

LANES = (4, 8, 16, 32)


def single_us(preset, repeats: int) -> float:
    """µs per step of today's single-seed fused kernel over a full epoch (fastest repeat)."""
    data = make_dataset(preset.data)
    engine = FusedEngine(preset, data)
    engine.set_epoch(0, epoch_order(data.n_train, 0, 0), 0.001)
    engine.run_steps(0, 10)
    times = []
    for r in range(repeats):
        engine.set_epoch(r + 1, epoch_order(data.n_train, 0, r + 1), 0.001)
        start = time.thread_time()
        engine.run_steps(0, engine.steps_per_epoch)
        times.append((time.thread_time() - start) / engine.steps_per_epoch * 1e6)
    return min(times)


def multi_us(preset, lanes: int, repeats: int) -> float:
    """µs per seed-step of the multi-seed kernel with ``lanes`` seeds over a full epoch (fastest repeat)."""
    engine = MultiFusedEngine(preset, list(range(lanes)))
    engine.set_epoch(0, 0.001)
    engine.run_steps(0, 10)  # compiles (or loads) this lane count's kernel
    times = []
    for r in range(repeats):
        engine.set_epoch(r + 1, 0.001)
        start = time.thread_time()
        engine.run_steps(0, engine.steps_per_epoch)
        times.append((time.thread_time() - start) / engine.steps_per_epoch / lanes * 1e6)
    return min(times)


def group_overhead_ms(preset, lanes: int, epochs: int) -> tuple[float, float]:
    """Per-epoch CPU milliseconds of ``train_group`` outside the kernel, and of a whole epoch
    (fastest epoch).

    Outside the kernel: from the epoch's last progress event to its ``GroupEpochFinished``
    (metrics, evaluation, snapshots, ``TrainState``s), plus ``set_epoch`` timed on its own.
    """
    marks: list[tuple[str, float]] = []

    def emit(event: Event) -> None:
        if isinstance(event, StepProgress | GroupEpochFinished):
            marks.append((type(event).__name__, time.thread_time()))

    train_group(preset.with_overrides(epochs=epochs), list(range(lanes)), RunOptions(), emit)
    tails, whole = [], []
    previous_end = None
    for (name, t), (next_name, t_next) in zip(marks, marks[1:]):
        if name == "StepProgress" and next_name == "GroupEpochFinished":
            tails.append(t_next - t)
            if previous_end is not None:
                whole.append(t_next - previous_end)
            previous_end = t_next
    engine = MultiFusedEngine(preset, list(range(lanes)))
    gathers = []
    for e in range(5):
        start = time.thread_time()
        engine.set_epoch(e, 0.001)
        gathers.append(time.thread_time() - start)
    outside = min(tails) + min(gathers)
    return outside * 1e3, min(whole) * 1e3


def command_wall_seconds(command: str | list[str]) -> tuple[float, int]:
    """Wall seconds of one command (its output discarded) and its exit status."""
    start = time.perf_counter()
    args = shlex.split(command) if isinstance(command, str) else command
    done = subprocess.run(args, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, done.returncode


def table_seconds() -> None:
    """Time ``fnn-tui run --all --seeds 10 --jobs 0`` into a new store and print it, with each
    preset's group time read back from that store.

    A one-epoch run of the same command comes first, into another store: it compiles (or
    loads) every kernel the table uses, so the time is that of training, as on any run
    after the first on a machine. Exit status 1 is expected: row 4 diverges.
    """
    def command(home: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "fnn_tui", "--home", home, "run", "--all", "--seeds", "10", "--jobs", "0",
                *extra]

    with tempfile.TemporaryDirectory() as warm:
        command_wall_seconds(command(warm, "--epochs", "1", "--samples", "200"))
    with tempfile.TemporaryDirectory() as home:
        wall, status = command_wall_seconds(command(home))
        print(f"\n`fnn-tui run --all --seeds 10 --jobs 0` ({os.cpu_count()} cores, kernels cached): "
              f"{wall:.1f} s wall, exit status {status}")
        from fnn_tui.store.runs import Store

        with Store(Path(home), reading=True) as store:
            runs = store.list_runs()
        first = min(r.started_at for r in runs)
        last = max(r.ended_at or r.started_at for r in runs)
        print(f"  from the first run's start to the last run's end {last - first:.1f} s; "
              f"start-up and exit {wall - (last - first):.1f} s")
        by_preset: dict[str, list] = {}
        for r in runs:
            by_preset.setdefault(r.preset, []).append(r)
        rows = [(name, len(rs), max(r.ended_at or r.started_at for r in rs) - min(r.started_at for r in rs),
                 ",".join(sorted({str(r.status) for r in rs}))) for name, rs in by_preset.items()]
        for preset, count, seconds, status in sorted(rows, key=lambda row: -row[2]):
            print(f"  {preset}: {count} runs in {seconds:5.1f} s, {status}")


def notes_loop_us() -> float:
    """The notes-style loop's µs per step on exp08 (from benchmarks/steps.py)."""
    spec = importlib.util.spec_from_file_location("steps", Path(__file__).with_name("steps.py"))
    steps = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(steps)
    data = make_dataset(discover(include_user=False).get("exp08").data)
    return steps.notes_loop_us(data.x_train, data.y_train, steps=1000, repeats=3)


def end_to_end_us(preset, seeds: int) -> float:
    """Wall µs per seed-step of ``fnn-tui run PRESET --seeds N`` in this process (the planner's
    tasks, store and checkpoints included), from the first event to the end: start-up excluded."""
    from fnn_tui.runs.execute import train_tasks
    from fnn_tui.runs.plan import plan
    from fnn_tui.store.runs import Store

    first: list[float] = []

    def on_event(run_id: int, event: Event) -> None:
        if not first:
            first.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as home:
        with Store(Path(home)) as store:
            planned = plan(store, [preset], RunOptions(engine="fused", device="cpu"), list(range(seeds)))
        train_tasks(Path(home), planned.tasks, 1, on_event)
        wall = time.perf_counter() - first[0]
    steps = seeds * preset.training.epochs * preset.data.n_train / preset.training.batch_size
    return wall / steps * 1e6


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="full epochs per measurement (the fastest counts)")
    parser.add_argument("--command", help="also time this shell command (see command_wall_seconds)")
    parser.add_argument("--table", action="store_true", help="also time `fnn-tui run --all --seeds 10 --jobs 0`")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end exp08 measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    catalog = discover(include_user=False)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"default lanes {default_lanes()}, torch {torch.__version__}")
    kernel_epoch_ms: dict[int, float] = {}
    for name in ("exp08", "exp06"):
        preset = catalog.get(name)
        sizes = "-".join(str(s) for s in preset.model.sizes)
        print(f"\n{name} ({sizes}, norm {preset.model.norm}, clip {preset.training.clip}, "
              f"{preset.data.n_train} training samples): kernel only, fastest of {args.repeats} full epochs, thread CPU time")
        base = single_us(preset, args.repeats)
        print(f"  K=1  single-seed FusedEngine {base:8.3f} us/seed-step   1.00x")
        for lanes in LANES:
            us = multi_us(preset, lanes, args.repeats)
            if name == "exp08":
                kernel_epoch_ms[lanes] = us * lanes * preset.data.n_train / preset.training.batch_size / 1e3
            print(f"  K={lanes:<3d}multi-seed kernel     {us:8.3f} us/seed-step  {base / us:5.2f}x")
    preset = catalog.get("exp08")
    outside, whole = group_overhead_ms(preset, 16, epochs=4)
    kernel = kernel_epoch_ms[16]
    print(f"\ntrain_group on exp08, K=16, per epoch: {outside:.2f} ms outside the kernel, against "
          f"{kernel:.1f} ms of kernel ({outside / kernel:.0%}); a whole epoch of train_group took {whole:.1f} ms")
    if not args.no_end_to_end:
        notes = notes_loop_us()
        ours = end_to_end_us(preset, 16)
        print(f"\nend to end, `fnn-tui run exp08 --seeds 16` (150 epochs, store and checkpoints included, "
              f"start-up excluded): {ours:.3f} us/seed-step; notes-style loop {notes:.0f} us/step: "
              f"{notes / ours:.0f}x")
    if args.table:
        table_seconds()
    if args.command:
        wall, status = command_wall_seconds(args.command)
        print(f"\n{args.command!r}: {wall:.1f} s wall, exit status {status}")


if __name__ == "__main__":
    main()
