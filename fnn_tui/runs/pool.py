"""Training several presets at once: a process pool, one run per single-threaded process.

Pool processes record their runs in the shared store themselves and send the trainer's
events back over a queue (without the weights they carry), so a front end draws them as
it draws a run trained in its own process.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import queue as queue_mod
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fnn_tui.core.events import EndEvent, EpochFinished, Event, RunCancelled
from fnn_tui.core.presets import Preset
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs import OnEvent


@dataclass(frozen=True)
class PoolResult:
    """How one preset's run ended."""

    preset: str
    run_id: int
    end: EndEvent


def light(event: Event) -> Event:
    """The event without the training state it may carry (weights stay in the pool process)."""
    if isinstance(event, (EpochFinished, RunCancelled)) and event.state is not None:
        return dataclasses.replace(event, state=None)
    return event


def _train_one(home: str, preset: Preset | int, options: RunOptions, q: queue_mod.Queue) -> PoolResult:
    """Train a preset, or resume the run whose id is given, in this pool process."""
    import torch

    from fnn_tui.core.stopping import StopRequest, install_signal_stop
    from fnn_tui.runs.record import record_run, resume_run

    torch.set_num_threads(1)
    stop = StopRequest()
    install_signal_stop(stop)

    def on_event(run_id: int, event: Event) -> None:
        q.put((run_id, light(event)))

    if isinstance(preset, int):
        result = resume_run(Path(home), preset, on_event, stop)
        name = ""  # the caller knows which run it asked to resume
    else:
        result = record_run(Path(home), preset, options, on_event, stop)
        name = preset.name
    return PoolResult(name, result.run_id, light(result.end))  # type: ignore[arg-type]


def run_parallel(
    home: Path,
    presets: list[Preset | int],
    options: RunOptions,
    jobs: int,
    on_event: OnEvent,
) -> list[PoolResult]:
    """Train ``presets`` over ``jobs`` processes, sending every event to ``on_event``; an
    ``int`` in ``presets`` is the id of a stopped run to resume."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        q = manager.Queue()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_train_one, str(home), p, options, q) for p in presets]
            while not all(f.done() for f in futures):
                try:
                    on_event(*q.get(timeout=0.1))
                except queue_mod.Empty:
                    pass
            while True:
                try:
                    on_event(*q.get_nowait())
                except queue_mod.Empty:
                    break
            return [f.result() for f in futures]
