"""Training one task (:class:`fnn_tui.runs.plan.Task`): the one function every place that
trains calls, in this process, in a pool worker, in the background worker, or (split in
two) on a Ray worker and in the command that writes its events.

A task's runs are in the store, claimed ``queued`` by the planner. :func:`prepare_piece`
takes them from the store: each one starts where the store says, a new run from the
beginning, a stopped one from the checkpoint that agrees with its stored epochs
(:func:`fnn_tui.runs.record.prepare_resume`). The :class:`Piece` it returns needs no store:
:func:`train_piece` trains it (one run alone through the trainer, several as lanes of one
kernel call) and hands every event to a sink. Here the sink is the store
(:func:`sink_for`); a remote worker's sink sends the events back to the command, which
feeds them to the same sink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fnn_tui.core.events import EndEvent, Event
from fnn_tui.core.group import task_run
from fnn_tui.core.presets import Preset
from fnn_tui.core.state import TrainState
from fnn_tui.core.status import RunStatus
from fnn_tui.core.trainer import RunOptions, StopFlag
from fnn_tui.runs import OnEvent
from fnn_tui.runs.plan import Task
from fnn_tui.runs.record import RecordedRun, ResumeError, RunSink, prepare_resume, take_for_resume
from fnn_tui.store.runs import Store


@dataclass(frozen=True)
class Piece:
    """A task taken from the store, ready to train anywhere: its runs' ids, presets, the
    engine and device they train on, and where each starts (``resume``: one checkpoint
    per run, or ``None`` when all start from the beginning). It pickles."""

    label: str
    run_ids: tuple[int, ...]
    presets: tuple[Preset, ...]
    options: RunOptions
    resume: tuple[TrainState | None, ...] | None
    lanes_kernel: bool

    @property
    def epochs(self) -> int:
        return self.presets[0].training.epochs


def prepare_piece(store: Store, task: Task) -> Piece:
    """Take ``task``'s runs (claimed queued by the planner) for training in this command's
    name, each reopened at its checkpoint."""
    prepared = [prepare_resume(store, rid, queued=True) for rid in task.run_ids]
    records = [p[0] for p in prepared]
    presets = [p[1] for p in prepared]
    states = [p[2] for p in prepared]
    first = records[0]
    resolved = task_run(presets[0], RunOptions(first.device, first.engine), len(records), task.lanes_kernel)
    options = RunOptions(resolved.device, resolved.engine)
    if len({None if s is None else (s.epoch, s.step) for s in states}) > 1:
        raise ResumeError(f"the runs of {task.label} are at different positions and cannot train together")
    for record, state in zip(records, states):
        if not (record.status == RunStatus.QUEUED and record.epochs_done == 0 and state is None):
            take_for_resume(store, record, state, resolved.device, queued=True)
    if not task.lanes_kernel:
        assert len(records) == 1
    resume = None if all(s is None for s in states) else tuple(states)
    return Piece(task.label, tuple(r.id for r in records), tuple(presets), options, resume, task.lanes_kernel)


Sink = Callable[[Event], None]


def train_piece(piece: Piece, sink: Sink, stop: StopFlag | None = None) -> list[EndEvent]:
    """Train ``piece`` and return how each of its runs ended; every event goes to ``sink``
    (lanes' events carry their lane). Needs no store: this is what a remote worker runs."""
    if not piece.lanes_kernel:
        from fnn_tui.core.trainer import train

        return [train(piece.presets[0], piece.options, sink, stop,
                      resume=None if piece.resume is None else piece.resume[0])]
    from fnn_tui.core.group import train_lanes

    return train_lanes(list(piece.presets), piece.options, sink, stop,
                       None if piece.resume is None else list(piece.resume))


def sink_for(store: Store, piece: Piece, on_event: OnEvent | None):
    """The store's side of ``piece``: a :class:`~fnn_tui.runs.record.RunSink` for a run alone,
    a :class:`~fnn_tui.runs.group.LanesSink` for lanes. It has ``broken()`` (training ended
    with an exception: the runs still going are interrupted)."""
    if not piece.lanes_kernel:
        return RunSink(store, piece.run_ids[0], on_event)
    from fnn_tui.runs.group import LanesSink

    return LanesSink(store, list(piece.run_ids), list(piece.presets), on_event)


def train_task(home: Path, task: Task, on_event: OnEvent | None = None,
               stop: StopFlag | None = None) -> list[RecordedRun]:
    """Train ``task``'s runs here and return how each ended, in the task's order;
    ``on_event`` gets every event once it is stored, with its run's id."""
    with Store(home) as store:
        piece = prepare_piece(store, task)
        sink = sink_for(store, piece, on_event)
        try:
            ends = train_piece(piece, sink, stop)
        except BaseException:
            sink.broken()
            raise
        if isinstance(sink, RunSink):
            sink.check()
        return [RecordedRun(rid, end) for rid, end in zip(piece.run_ids, ends)]
