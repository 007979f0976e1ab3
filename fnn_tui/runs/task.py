"""Training one task (:class:`fnn_tui.runs.plan.Task`): the one function every place that
trains calls, in this process, in a pool worker or in the background worker.

A task's runs are in the store, claimed ``queued`` by the planner. Each one starts where the
store says: a new run from the beginning, a stopped one from the checkpoint that agrees with
its stored epochs (:func:`fnn_tui.runs.record.prepare_resume`). One run trains alone through
the trainer; several train as lanes of one kernel call (:mod:`fnn_tui.runs.group`).
"""

from __future__ import annotations

from pathlib import Path

from fnn_tui.core.group import task_run
from fnn_tui.core.status import RunStatus
from fnn_tui.core.trainer import RunOptions, StopFlag
from fnn_tui.runs import OnEvent
from fnn_tui.runs.plan import Task
from fnn_tui.runs.record import RecordedRun, ResumeError, prepare_resume, take_for_resume, train_recorded
from fnn_tui.store.runs import Store


def train_task(home: Path, task: Task, on_event: OnEvent | None = None,
               stop: StopFlag | None = None) -> list[RecordedRun]:
    """Train ``task``'s runs and return how each ended, in the task's order; ``on_event``
    gets every event once it is stored, with its run's id."""
    from fnn_tui.runs.group import record_lanes

    with Store(home) as store:
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
            return [train_recorded(store, first.id, presets[0], options, on_event, stop, states[0])]
        resume = None if all(s is None for s in states) else states
        return record_lanes(store, [r.id for r in records], presets, options, on_event, stop, resume)
