"""Wall time of the whole eleven-preset table at full size with the fused engine.

Run: ``python benchmarks/table.py [--jobs N]``. The planner's tasks (presets that share
the kernel train as lanes of one task), one task per process, each process
single-threaded, over all cores by default; runs go to a temporary store.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fnn_tui.core.catalog import discover
from fnn_tui.core.events import EndEvent, Event, end_status
from fnn_tui.core.trainer import RunOptions
from fnn_tui.report.export import render, results_table
from fnn_tui.runs.execute import train_tasks
from fnn_tui.runs.plan import plan
from fnn_tui.store.runs import Store


def main() -> None:
    """Run the table and print the wall time and each run's own time."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--markdown", action="store_true", help="also print the results table")
    args = parser.parse_args()
    presets = discover(include_user=False).valid()
    ended: list[str] = []

    def on_event(run_id: int, event: Event) -> None:
        if isinstance(event, EndEvent):
            ended.append(f"run {run_id} {end_status(event).label}")

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        start = time.perf_counter()
        with Store(home) as store:
            planned = plan(store, presets, RunOptions(engine="fused", device="cpu"))
        train_tasks(home, planned.tasks, args.jobs, on_event)
        wall = time.perf_counter() - start
        with Store(home) as store:
            runs = sorted(store.list_runs(), key=lambda r: r.number)
            for r in runs:
                print(f"{r.preset}  {r.status.label:9s} {r.epochs_done:4d}/{r.epochs_total} epochs  {r.wall_seconds or 0:6.1f} s")
            if args.markdown:
                print(render(results_table(runs), "md"))
    busy = sum(r.wall_seconds or 0 for r in runs)
    print(f"all {len(presets)} presets: {wall:.1f} s wall over {args.jobs} processes ({busy:.1f} s of training in all)")


if __name__ == "__main__":
    main()
