"""Running several presets at once: a process pool, one preset per single-threaded process.

Workers record their runs in the shared store themselves and send small progress
messages back over a queue, so a front end can draw one progress bar per preset.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fnn_tui.core.events import (
    EpochFinished,
    EpochMetrics,
    Event,
    RunDiverged,
    RunFailed,
    RunFinished,
    StepProgress,
)
from fnn_tui.core.presets import Preset
from fnn_tui.core.trainer import RunOptions


@dataclass(frozen=True)
class Progress:
    """A picklable summary of one event of one preset's run."""

    preset: str
    kind: str  # "step", "epoch", "end"
    epoch: int = 0
    step: int = 0
    steps: int = 0
    epochs: int = 0
    metrics: EpochMetrics | None = None
    run_id: int = 0
    status: str = ""
    message: str = ""


def summarize(name: str, epochs: int, event: Event) -> Progress | None:
    """Turn a trainer event of preset ``name`` into a :class:`Progress` (``None``: not shown)."""
    if isinstance(event, StepProgress):
        return Progress(name, "step", event.epoch, event.step, event.steps_per_epoch, epochs)
    if isinstance(event, EpochFinished):
        return Progress(name, "epoch", event.metrics.epoch, epochs=epochs, metrics=event.metrics)
    if isinstance(event, RunFinished):
        return Progress(name, "end", event.final.epoch, epochs=epochs, status="finished")
    if isinstance(event, RunDiverged):
        where = f"epoch {event.epoch}" + (f", step {event.step}" if event.step else "")
        return Progress(name, "end", event.epoch, epochs=epochs, status="diverged", message=f"{event.reason} at {where}")
    if isinstance(event, RunFailed):
        return Progress(name, "end", epochs=epochs, status="failed", message=event.error)
    return None


def _worker(home: str, preset: Preset, options: RunOptions, q: queue_mod.Queue) -> tuple[str, int, str]:
    import torch

    from fnn_tui.core.stopping import StopRequest, install_signal_stop
    from fnn_tui.store.recorder import record_run

    torch.set_num_threads(1)
    stop = StopRequest()
    install_signal_stop(stop)

    def emit(event: Event) -> None:
        item = summarize(preset.name, preset.training.epochs, event)
        if item is not None:
            q.put(item)

    result = record_run(Path(home), preset, options, emit, stop)
    return preset.name, result.run_id, type(result.end).__name__


def run_parallel(
    home: Path,
    presets: list[Preset],
    options: RunOptions,
    jobs: int,
    on_progress: Callable[[Progress], None],
) -> list[tuple[str, int, str]]:
    """Run ``presets`` over ``jobs`` processes; returns (preset, run id, end event name) each."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        q = manager.Queue()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_worker, str(home), p, options, q) for p in presets]
            while not all(f.done() for f in futures):
                try:
                    on_progress(q.get(timeout=0.1))
                except queue_mod.Empty:
                    pass
            while True:
                try:
                    on_progress(q.get_nowait())
                except queue_mod.Empty:
                    break
            return [f.result() for f in futures]
