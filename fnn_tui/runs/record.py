"""Running a preset *and* keeping it: the trainer's events written to the store as they come.

Each finished epoch is first checkpointed (atomically, with the epoch's metrics and fit),
then stored with the run's new epoch count in one transaction, so a killed process loses at
most the epoch in progress; a run stopped by a signal or the user inside an epoch also
checkpoints the step it reached. A process killed between the two writes leaves the
checkpoint one epoch ahead of the store: resume stores that epoch's row from the checkpoint,
or goes back to the kept previous checkpoint, so no epoch is ever skipped.

Resuming claims the run first (one conditional UPDATE), so two ``fnn-tui resume`` started
together never both train it. Every front end trains through :func:`record_run` and
:func:`resume_run`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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
    check_state,
    load_checkpoint,
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
        state = event.state
        where = f" at epoch {state.epoch + 1}, step {state.step}" if state is not None and state.step else ""
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

    def save_epoch(self, event: EpochFinished) -> None:
        """The epoch's checkpoint, carrying the epoch's metrics and fit (so resume can restore
        the epoch's row should the process die before the row is stored)."""
        assert event.state is not None
        fit = None if event.fit is None else torch.from_numpy(np.array(event.fit, dtype=np.float32))
        save_checkpoint(dataclasses.replace(event.state, metrics=event.metrics, fit=fit), self.checkpoint)

    def __call__(self, event: Event) -> None:
        store, run_id = self.store, self.run_id
        if isinstance(event, RunStarted):
            store.start_run(run_id, steps_per_epoch=event.steps_per_epoch)
            self.last_beat = time.monotonic()  # start_run is a heartbeat too
        elif isinstance(event, EpochFinished):
            self.save_epoch(event)
            # a kill here leaves the checkpoint one epoch ahead: prepare_resume stores the row from it
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
                          message=end_message(event), diverged_at=(event.epoch, event.step), reason=event.reason)
        elif isinstance(event, RunCancelled):
            if event.state is not None:  # keep the position it stopped at (inside an epoch, say)
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
        return train_recorded(store, run_id, preset, options, on_event, stop_event, None)


def train_recorded(
    store: Store,
    run_id: int,
    preset: Preset,
    options: RunOptions,
    on_event: OnEvent | None,
    stop_event: StopFlag | None,
    resume: TrainState | None,
) -> RecordedRun:
    """Train with every event written to the store; an exception leaves the run interrupted."""
    sink = RunSink(store, run_id, on_event)
    try:
        end = train(preset, options, sink, stop_event, resume=resume)
    except BaseException:
        sink.broken()
        raise
    sink.check()
    return RecordedRun(run_id, end)


class RunSink:
    """Where one run's events go, wherever it trains: the store (through a :class:`Recorder`),
    then ``on_event``. The trainer calls it in this process; the Ray executor feeds it the
    events a remote worker sent back, so the command stays the only writer of the store."""

    def __init__(self, store: Store, run_id: int, on_event: OnEvent | None) -> None:
        record = store.get_run(run_id)
        assert record is not None
        self.store, self.run_id, self.on_event = store, run_id, on_event
        self.recorder = Recorder(store, run_id, record.folder)
        self.lost: list[str] = []  # why the store can no longer be written, once it cannot

    def __call__(self, event: Event) -> None:
        if not self.lost:  # once the store file is gone or another one, nothing more is written anywhere
            try:
                self.recorder(event)
            except StoreReplacedError:
                self.lost.append(f"the run store {self.store.path} was removed or replaced while run "
                                 f"{self.run_id} trained; its checkpoint is kept in {self.recorder.checkpoint}")
                raise StoreReplacedError(self.lost[0]) from None
        if self.on_event is not None:
            self.on_event(self.run_id, event)

    def broken(self) -> None:
        """Training ended with an exception (an interrupt, a crash below the trainer, a lost
        worker): the run is interrupted, its finished epochs kept."""
        if self.lost:
            raise StoreReplacedError(self.lost[0]) from None
        mark_interrupted(self.store, [self.run_id])

    def check(self) -> None:
        """After training: the trainer made a lost store a failed run, which cannot be stored;
        the caller says why."""
        if self.lost:
            raise StoreReplacedError(self.lost[0])


def stored_preset(record: RunRecord) -> Preset:
    """The fully resolved preset a run was made with."""
    try:
        return parse_preset(record.preset_toml, source=f"run {record.id}", name=record.preset)
    except PresetError as exc:
        raise ResumeError(f"run {record.id}'s stored preset no longer validates: {exc.first_line()}") from None


def prepare_resume(store: Store, run_id: int, *, queued: bool = False) -> tuple[RunRecord, Preset, TrainState | None]:
    """Check that a run can be resumed and choose the checkpoint to continue from.

    The checkpoint must agree with the store's epochs (:func:`resume_point`). A run with no
    stored epoch and no usable checkpoint starts again from the beginning (``None``), which
    is exact; a run with stored epochs and no usable checkpoint is an error, never a silent
    fresh start. ``queued`` accepts a run handed to a background process. Nothing is written
    but the crashed mark of runs whose process is gone: :func:`claim` takes the run.
    """
    reap(store, grace=0)  # a dead pid on this host is proof: resume right after a kill -9 works
    record = store.get_run(run_id)
    if record is None:
        raise ResumeError(f"no run with id {run_id}; `fnn-tui runs` lists them")
    allowed = (*RESUMABLE, RunStatus.QUEUED) if queued else RESUMABLE
    if record.status not in allowed:
        if record.status.active:
            raise ResumeError(busy(record))
        names = ", ".join(s.label for s in RESUMABLE)
        raise ResumeError(f"run {run_id} is {record.status.label}; only {names} runs can be resumed")
    preset = stored_preset(record)
    return record, preset, resume_point(record, preset)


def resume_point(record: RunRecord, preset: Preset) -> TrainState | None:
    """The checkpoint that agrees with the store's ``epochs_done`` = S: the latest, else the
    kept previous one.

    A checkpoint at epoch C <= S continues from C (the stored epochs after C are trained
    again, to the same numbers); one at C = S + 1 that carries epoch C's metrics (the process
    died between the checkpoint and the epoch's row) continues from C once :func:`resume_run`
    has stored that row. Anything else would skip an epoch, so it is not used.
    """
    stored, epochs = record.epochs_done, preset.training.epochs
    problems: list[str] = []
    for path in (record.checkpoint_path, previous_path(record.checkpoint_path)):
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if state.preset_hash != record.preset_hash or state.preset_hash != preset.digest():
            raise ResumeError(f"cannot resume run {record.id}: its checkpoint was made from a different preset")
        try:
            check_state(state, preset)  # damaged tensors: try the previous checkpoint
        except CheckpointError as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        carried = state.epoch == stored + 1 and state.metrics is not None
        if state.epoch >= epochs:
            problems.append(f"{path.name} is already at the last epoch")
        elif state.epoch <= stored or carried:
            return state
        else:
            problems.append(f"{path.name} is at epoch {state.epoch} but the store has {stored} epochs")
    if stored == 0:
        return None  # no epoch is stored: starting again from the beginning is exact
    raise ResumeError(f"cannot resume run {record.id}: {problems[0]}")


def busy(record: RunRecord) -> str:
    """Why an active run cannot be resumed: who has it."""
    pid = f" by pid {record.pid}" if record.pid else ""
    if record.status == RunStatus.QUEUED:
        return (f"run {record.id} is already being trained{pid} (queued there, not started yet); "
                f"`fnn-tui attach {record.id}` follows it")
    return f"run {record.id} is already being trained{pid}; `fnn-tui attach {record.id}` follows it"


def claim(store: Store, record: RunRecord, status: RunStatus, *, queued: bool = False) -> None:
    """Take a resumable run for this process (``status`` running) or a background one (queued),
    atomically: of two processes resuming it at once, the second gets a :class:`ResumeError`
    naming the first. The run must still have the epochs :func:`prepare_resume` saw."""
    allowed = (*RESUMABLE, RunStatus.QUEUED) if queued else RESUMABLE
    if not store.claim_run(record.id, allowed, status=status, epochs_done=record.epochs_done):
        now = store.get_run(record.id)
        if now is not None and now.status.active:
            raise ResumeError(busy(now))
        raise ResumeError(f"run {record.id} changed while it was being resumed; try again")


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
        if device is None:
            resolved = resolve(preset, RunOptions(record.device, record.engine))  # device still there?
        else:
            resolved = resolve(preset, RunOptions(device, single_engine_on(record, preset, device)))
        options = RunOptions(resolved.device, resolved.engine)
        take_for_resume(store, record, state, resolved.device, queued=queued)
        if resolved.engine != record.engine:
            store.move_run(run_id, device=resolved.device, engine=resolved.engine)
        return train_recorded(store, run_id, preset, options, on_event, stop_event, state)


def single_engine_on(record: RunRecord, preset: Preset, device: str) -> str:
    """The engine a run trained alone continues with on ``device``: its own where that
    engine runs there, else the one ``auto`` picks (a lane of the GPU group engine, or a
    fused run sent to a GPU). Checkpoints are engine-neutral, so any engine takes them."""
    from fnn_tui.core.engines import EngineError

    try:
        resolve(preset, RunOptions(device, record.engine))
    except EngineError:
        return "auto"
    return record.engine


def take_for_resume(store: Store, record: RunRecord, state: TrainState | None, device: str, *,
                    queued: bool = False) -> None:
    """Claim a run prepared by :func:`prepare_resume` and reopen it at its checkpoint: the epoch
    row a checkpoint one epoch ahead carries is stored, the rows after it dropped."""
    claim(store, record, RunStatus.RUNNING, queued=queued)
    restore = None
    if state is not None and state.epoch == record.epochs_done + 1:
        assert state.metrics is not None  # resume_point only returns such a state with them
        restore = (state.metrics, None if state.fit is None else encode(state.fit.numpy()))
    store.reopen_run(record.id, from_epoch=state.epoch if state is not None else 0, device=device, restore=restore)


def mark_interrupted(store: Store, run_ids: list[int]) -> None:
    """After an interrupt (Ctrl-C) or a crash below the trainer, runs still marked running are
    interrupted, their finished epochs kept."""
    for run_id in run_ids:
        now = store.get_run(run_id)
        if now is not None and now.status == RunStatus.RUNNING:
            store.end_run(run_id, RunStatus.INTERRUPTED, message="interrupted; `fnn-tui resume` continues it")
