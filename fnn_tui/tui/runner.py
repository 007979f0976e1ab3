"""The body of the app's training worker: runs a queue of presets through the recorder and
turns trainer events into app messages. It runs in a thread; it only posts messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from fnn_tui.core.events import (
    EpochFinished,
    Event,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    StepProgress,
)
from fnn_tui.core.presets import Preset
from fnn_tui.core.stopping import StopRequest
from fnn_tui.core.trainer import RunOptions
from fnn_tui.store.recorder import record_run, resume_run
from fnn_tui.tui.messages import EpochDone, QueueEnded, StepAdvanced, TrainingEnded, TrainingStarted

Post = Callable[[Message], object]


def end_message(run_id: int, preset: str, event: Event, stop: StopRequest) -> TrainingEnded | None:
    """The app message for a trainer's final event."""
    if isinstance(event, RunFinished):
        return TrainingEnded(run_id, preset, "finished", f"{event.final.epoch} epochs in {event.wall_seconds:.1f} s")
    if isinstance(event, RunDiverged):
        where = f"epoch {event.epoch}" + (f", step {event.step}" if event.step else "")
        return TrainingEnded(run_id, preset, "diverged", f"{event.reason} at {where}; finished epochs are kept")
    if isinstance(event, RunCancelled):
        return TrainingEnded(run_id, preset, stop.status, f"stopped after {event.epochs_done} epochs")
    if isinstance(event, RunFailed):
        return TrainingEnded(run_id, preset, "failed", event.error)
    return None


def _emitter(post: Post, preset: Preset, run_id: list[int], index: int, size: int, stop: StopRequest) -> Callable[[Event], None]:
    def emit(event: Event) -> None:
        rid = run_id[-1]
        if isinstance(event, RunStarted):
            post(TrainingStarted(rid, event.preset, event.engine, event.device, event.epochs, event.steps_per_epoch,
                                 event.start_epoch, index, size))
        elif isinstance(event, StepProgress):
            post(StepAdvanced(rid, event.epoch, event.step, event.steps_per_epoch))
        elif isinstance(event, EpochFinished):
            post(EpochDone(rid, event.metrics, event.epochs))
        else:
            message = end_message(rid, preset.name, event, stop)
            if message is not None:
                post(message)

    return emit


def run_queue(home: Path, presets: list[Preset], options: RunOptions, stop: StopRequest, post: Post) -> None:
    """Train each preset in turn until the queue is done or a stop is asked for."""
    try:
        for index, preset in enumerate(presets):
            if stop.is_set():
                break
            run_id: list[int] = [0]  # the store's id, appended once the run row exists
            emit = _emitter(post, preset, run_id, index, len(presets), stop)
            record_run(home, preset, options, emit, stop, on_created=run_id.append)
    finally:
        post(QueueEnded())


def resume_one(home: Path, run_id: int, preset: Preset, stop: StopRequest, post: Post) -> None:
    """Resume one stored run, reporting like :func:`run_queue`."""
    try:
        resume_run(home, run_id, _emitter(post, preset, [run_id], 0, 1, stop), stop)
    finally:
        post(QueueEnded())
