"""Running a preset *and* keeping it: the trainer's events written to the store as they come.

Each finished epoch is first checkpointed (atomically), then stored with the run's new
epoch count in one transaction, so a killed process loses at most the epoch in progress;
a run stopped by a signal or the user inside an epoch also checkpoints the step it reached.
Every front end trains through :func:`record_run` and :func:`resume_run`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from fnn_tui.core.events import (
    EndEvent,
    EpochFinished,
    Event,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    StepProgress,
    diverged_where,
)
from fnn_tui.core.grid import encode
from fnn_tui.core.presets import Preset, PresetError, parse_preset
from fnn_tui.core.state import (
    CheckpointError,
    TrainState,
    load_latest_checkpoint,
    previous_path,
    save_checkpoint,
)
from fnn_tui.core.status import RESUMABLE, RunStatus
from fnn_tui.core.trainer import RunOptions, StopFlag, resolve, train
from fnn_tui.runs import OnEvent
from fnn_tui.runs.liveness import reap
from fnn_tui.store.db import StoreReplacedError
from fnn_tui.store.runs import RunRecord, Store

HEARTBEAT_SECONDS = 1.0


@dataclass(frozen=True)
class RecordedRun:
    """The stored run's id and how it ended."""

    run_id: int
    end: EndEvent


class ResumeError(ValueError):
    """A run cannot be resumed (wrong status, checkpoint missing or not matching)."""


def end_message(event: EndEvent) -> str:
    """The message stored with a run that ended this way (empty when it finished)."""
    if isinstance(event, RunDiverged):
        return f"{event.reason} at {diverged_where(event)}"
    if isinstance(event, RunFailed):
        return event.error
    if isinstance(event, RunCancelled):
        where = f" at epoch {event.state.epoch + 1}, step {event.state.step}" if event.state is not None else ""
        if event.status == RunStatus.INTERRUPTED:
            return f"interrupted by a signal{where}; `fnn-tui resume` continues it"
        return f"stopped by the user{where}"
    return ""


class Recorder:
    """Writes one run's events to the store (and its checkpoints to its folder)."""

    def __init__(self, store: Store, run_id: int, folder: Path) -> None:
        self.store = store
        self.run_id = run_id
        self.checkpoint = folder / "checkpoint.pt"
        self.last_beat = time.monotonic()

    def __call__(self, event: Event) -> None:
        store, run_id = self.store, self.run_id
        if isinstance(event, RunStarted):
            store.start_run(run_id, steps_per_epoch=event.steps_per_epoch)
        elif isinstance(event, EpochFinished):
            assert event.state is not None
            save_checkpoint(event.state, self.checkpoint)
            store.add_epoch(run_id, event.metrics, None if event.fit is None else encode(event.fit))
            self.last_beat = time.monotonic()
        elif isinstance(event, StepProgress):
            if time.monotonic() - self.last_beat > HEARTBEAT_SECONDS:
                store.heartbeat(run_id, event.epoch, event.step)
                self.last_beat = time.monotonic()
        elif isinstance(event, RunFinished):
            store.end_run(run_id, RunStatus.FINISHED, wall_seconds=event.wall_seconds)
        elif isinstance(event, RunDiverged):
            store.end_run(run_id, RunStatus.DIVERGED, wall_seconds=event.wall_seconds,
                          message=end_message(event), diverged_at=(event.epoch, event.step))
        elif isinstance(event, RunCancelled):
            if event.state is not None:  # stopped inside an epoch: keep that position too
                save_checkpoint(event.state, self.checkpoint)
            store.end_run(run_id, event.status, wall_seconds=event.wall_seconds, message=end_message(event))
        elif isinstance(event, RunFailed):
            store.end_run(run_id, event.status, wall_seconds=event.wall_seconds, message=event.error)


def record_run(
    home: Path,
    preset: Preset,
    options: RunOptions,
    on_event: OnEvent | None = None,
    stop_event: StopFlag | None = None,
    *,
    run_id: int | None = None,
) -> RecordedRun:
    """Train ``preset`` and store the run; bad input raises before anything is written.

    ``run_id`` names a run already queued in the store (by a background process) to train.
    ``on_event`` gets every event once it is stored, with the run's id.
    """
    resolved = resolve(preset, options)
    with Store(home) as store:
        if run_id is None:
            run_id = store.create_run(preset, engine=resolved.engine, device=resolved.device)
        options = RunOptions(resolved.device, resolved.engine)
        return _train_recorded(store, run_id, preset, options, on_event, stop_event, None)


def _train_recorded(
    store: Store,
    run_id: int,
    preset: Preset,
    options: RunOptions,
    on_event: OnEvent | None,
    stop_event: StopFlag | None,
    resume: TrainState | None,
) -> RecordedRun:
    """Train with every event written to the store; an exception leaves the run interrupted."""
    record = store.get_run(run_id)
    assert record is not None
    recorder = Recorder(store, run_id, record.folder)
    lost: list[str] = []  # why the store can no longer be written, once it cannot

    def emit(event: Event) -> None:
        if not lost:  # once the store file is gone or another one, nothing more is written anywhere
            try:
                recorder(event)
            except StoreReplacedError:
                lost.append(f"the run store {store.path} was removed or replaced while run {run_id} trained; "
                            f"its checkpoint is kept in {recorder.checkpoint}")
                raise StoreReplacedError(lost[0]) from None
        if on_event is not None:
            on_event(run_id, event)

    try:
        end = train(preset, options, emit, stop_event, resume=resume)
    except BaseException:
        if lost:
            raise StoreReplacedError(lost[0]) from None
        # an interrupt (Ctrl-C) or a crash below the trainer: keep what was finished
        now = store.get_run(run_id)
        if now is not None and now.status == RunStatus.RUNNING:
            store.end_run(run_id, RunStatus.INTERRUPTED, message="interrupted; `fnn-tui resume` continues it")
        raise
    if lost:  # the trainer made it a failed run, which cannot be stored: the caller says why
        raise StoreReplacedError(lost[0])
    return RecordedRun(run_id, end)


def stored_preset(record: RunRecord) -> Preset:
    """The fully resolved preset a run was made with."""
    try:
        return parse_preset(record.preset_toml, source=f"run {record.id}", name=record.preset)
    except PresetError as exc:
        raise ResumeError(f"run {record.id}'s stored preset no longer validates: {exc.first_line()}") from None


def prepare_resume(store: Store, run_id: int, *, queued: bool = False) -> tuple[RunRecord, Preset, TrainState | None]:
    """Check that a run can be resumed and load its last good checkpoint.

    A run stopped before its first epoch has none and starts again from the beginning
    (``None``), which is exact; a run with finished epochs and no readable checkpoint is an
    error, never a silent fresh start. ``queued`` accepts a run handed to a background process.
    """
    reap(store)
    record = store.get_run(run_id)
    if record is None:
        raise ResumeError(f"no run with id {run_id}; `fnn-tui results` lists them")
    allowed = (*RESUMABLE, RunStatus.QUEUED) if queued else RESUMABLE
    if record.status not in allowed:
        names = ", ".join(s.label for s in RESUMABLE)
        raise ResumeError(f"run {run_id} is {record.status.label}; only {names} runs can be resumed")
    preset = stored_preset(record)
    paths = (record.checkpoint_path, previous_path(record.checkpoint_path))
    if record.epochs_done == 0 and not any(p.exists() for p in paths):
        return record, preset, None  # stopped before its first epoch: the start is exact
    try:
        state, _ = load_latest_checkpoint(record.checkpoint_path)
    except CheckpointError as exc:
        raise ResumeError(f"cannot resume run {run_id}: {exc}") from None
    if state.preset_hash != record.preset_hash or state.preset_hash != preset.digest():
        raise ResumeError(f"cannot resume run {run_id}: its checkpoint was made from a different preset")
    if state.engine != record.engine:
        raise ResumeError(f"cannot resume run {run_id}: checkpoint engine {state.engine} != run engine {record.engine}")
    if state.epoch >= preset.training.epochs:
        raise ResumeError(f"cannot resume run {run_id}: its checkpoint is already at the last epoch")
    return record, preset, state


def resume_run(
    home: Path,
    run_id: int,
    on_event: OnEvent | None = None,
    stop_event: StopFlag | None = None,
    *,
    device: str | None = None,
    queued: bool = False,
) -> RecordedRun:
    """Continue an interrupted, crashed, cancelled or failed run from its last good checkpoint."""
    with Store(home) as store:
        record, preset, state = prepare_resume(store, run_id, queued=queued)
        resolved = resolve(preset, RunOptions(device or record.device, record.engine))  # device still there?
        options = RunOptions(resolved.device, resolved.engine)
        store.reopen_run(run_id, from_epoch=state.epoch if state is not None else 0, device=resolved.device)
        return _train_recorded(store, run_id, preset, options, on_event, stop_event, state)
