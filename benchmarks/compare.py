"""How long a comparison takes: ``fnn-tui compare`` over two studies of ten runs each.

Run: ``python benchmarks/compare.py [--home DIR A B]``. It times, in CPU time of this
thread (``time.thread_time``: on a shared machine wall time also counts the others' turns)
and in wall time, the best of five repeats of:

- ``compare`` of two constructed 10-run studies over the four metrics, with the bootstrap's
  10 000 resamples (two intervals per metric), and its Markdown;
- with ``--home``, the same on two stored studies (``A`` and ``B``, default rows 10 and 11),
  reading the runs from the store (the command's work, without Python's start-up).

The target (issue 18) is under one second.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from fnn_tui.core.catalog import discover
from fnn_tui.core.status import RunStatus
from fnn_tui.report.compare import Side, SideRun, compare, render, side_runs
from fnn_tui.report.studies import load_studies
from fnn_tui.store.runs import Store


def constructed(name: str, shift: float) -> Side:
    rng = np.random.default_rng(int(shift * 10))
    runs = []
    for seed in range(10):
        dead = seed < 3
        loss = 1.3 if dead else float(rng.lognormal(-2 + shift, 0.5))
        values = {"train_loss": loss, "test_loss": loss * 1.05, "train_ratio": 1 + loss / 10, "test_ratio": 1 + loss / 9}
        runs.append(SideRun(seed + 1, seed, RunStatus.FINISHED, dead, values))
    return Side(name, discover(include_user=False).get(name), tuple(runs))


def best_of(fn, repeats: int = 5) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.thread_time(), time.perf_counter()
        fn()
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return min(cpu), min(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a store with two 10-seed studies")
    parser.add_argument("a", nargs="?", default="exp10")
    parser.add_argument("b", nargs="?", default="exp11")
    args = parser.parse_args()
    a, b = constructed("exp10", 0.0), constructed("exp11", 0.5)
    compare(a, b)  # imports scipy once: not the comparison's cost
    cpu, wall = best_of(lambda: render(compare(a, b), "md"))
    print(f"constructed 10 + 10 runs, 4 metrics, 10000 resamples: {cpu:.3f} s CPU, {wall:.3f} s wall "
          f"({1 / wall:.1f}x under the 1 s target)")
    if args.home:
        catalog = discover(include_user=False)

        def stored() -> str:
            with Store(args.home, reading=True) as store:
                sides = []
                for name in (args.a, args.b):
                    (study,) = load_studies(store, catalog, [name])
                    sides.append(Side(name, study.preset, side_runs(store, list(study.records))))
            return render(compare(*sides), "md")

        cpu, wall = best_of(stored)
        print(f"stored {args.a} and {args.b}: {cpu:.3f} s CPU, {wall:.3f} s wall ({1 / wall:.1f}x under the target)")


if __name__ == "__main__":
    main()
