"""Where tasks train: the executors.

The planner (:mod:`fnn_tui.runs.plan`) decides what trains; :func:`train_tasks` decides only
where, from the ``executor`` asked for:

- ``local``: **here** (one task after the other in this process) when there is one task or
  ``jobs`` is 1, else over the **pool** of ``jobs`` processes (:mod:`fnn_tui.runs.pool`);
- ``ray``: on the workers of a Ray cluster (:mod:`fnn_tui.runs.ray_executor`), this process
  writing what they send back.

The **background** worker (``fnn-tui worker``, which the app and ``run --detach`` start,
:mod:`fnn_tui.runs.background`) is this same call in a process of its own. Every place
trains a task with the same :mod:`fnn_tui.runs.task` functions, and the CLI's ``run`` and
``resume`` and the background worker all get back what happened, including how many
processes it took, so what they print is what was done.

Tasks that never started (a stop came first) leave nothing behind: their runs, claimed
``queued`` by the planner, are deleted again (or given back to the status they had, for a
stopped run that was to resume).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest
from fnn_tui.core.trainer import StopFlag
from fnn_tui.runs import OnEvent
from fnn_tui.runs.plan import Task
from fnn_tui.runs.record import RecordedRun, ResumeError
from fnn_tui.runs.task import train_task
from fnn_tui.store.runs import Store


@dataclass
class Outcome:
    """What training a list of tasks did."""

    results: list[RecordedRun] = field(default_factory=list)  # how each run that trained ended
    not_started: list[Task] = field(default_factory=list)  # a stop came first
    processes: int = 1  # 1: here; more: over that many pool processes
    signum: int | None = None  # the stop signal the pool had, if any


EXECUTORS = ("local", "ray")


class ExecutorError(ValueError):
    """The executor cannot start (Ray missing, no cluster at the address): one line."""


def train_tasks(home: Path, tasks: list[Task], jobs: int, on_event: OnEvent,
                stop: StopFlag | None = None, *, on_error: Callable[[Task, Exception], None] | None = None,
                executor: str = "local", address: str | None = None) -> Outcome:
    """Train ``tasks``: over a pool of up to ``jobs`` processes when there are several tasks
    and ``jobs`` > 1, else here in order. A ``stop`` that is set ends the list after the
    task in progress (here), or is forwarded to every worker (the pool's signals).

    An error outside the trainer (a full disk, a store gone) ends the list here, and is
    raised, unless ``on_error`` takes it: then the next task goes on (the background worker:
    one bad task must not take the rest of the queue with it). Over the pool it is always
    one task's, and its runs are reported as failed.

    ``executor`` ``ray`` trains on the Ray cluster at ``address`` (see :mod:`fnn_tui.runs.ray_executor`;
    ``jobs`` is then the cluster's CPUs)."""
    if executor == "ray":
        from fnn_tui.runs.ray_executor import train_on_ray

        try:
            outcome = train_on_ray(home, tasks, on_event, stop, address)
        except BaseException:
            release(home, tasks)  # what never started
            raise
    elif jobs > 1 and len(tasks) > 1:
        outcome = _over_pool(home, tasks, min(jobs, len(tasks)), on_event)
        if outcome.signum is not None and isinstance(stop, StopRequest):
            stop.set(RunStatus.INTERRUPTED, outcome.signum)
    else:
        outcome = Outcome()
        for index, task in enumerate(tasks):
            if stop is not None and stop.is_set():
                outcome.not_started = tasks[index:]
                break
            try:
                outcome.results.extend(train_task(home, task, on_event, stop))
            except Exception as exc:
                if on_error is None:
                    release(home, tasks[index + 1:])
                    raise
                release(home, [task])  # what of it never started
                on_error(task, exc)
            except BaseException:
                release(home, tasks[index + 1:])
                raise
    release(home, outcome.not_started)
    return outcome


def _over_pool(home: Path, tasks: list[Task], jobs: int, on_event: OnEvent) -> Outcome:
    from fnn_tui.runs.pool import run_parallel

    # the longest tasks first, so the last ones to finish are short (the pool hands tasks
    # out in order as processes come free)
    order = sorted(tasks, key=lambda t: t.cost, reverse=True)
    pooled = run_parallel(home, order, jobs, on_event)
    outcome = Outcome(processes=jobs, signum=pooled.signum)
    outcome.results = [RecordedRun(r.run_id, r.end) for r in pooled.results]
    outcome.not_started = pooled.not_started
    if pooled.lost:
        # a task whose worker failed outside the trainer, or died: its runs as the store has
        # them once a dead worker's runs are marked crashed
        from fnn_tui.runs.background import end_event
        from fnn_tui.runs.liveness import reap

        with Store(home) as store:
            reap(store, grace=0)
            for lost in pooled.lost:
                for rid in lost.task.run_ids:
                    record = store.get_run(rid)
                    if record is None:
                        continue
                    if record.status == RunStatus.QUEUED:
                        store.forget_queued([rid])  # never started: nothing of it to keep
                        continue
                    if record.status.active:  # still ours: it failed with its worker
                        store.end_run(rid, RunStatus.FAILED, message=lost.reason)
                        record = store.get_run(rid)
                        assert record is not None
                    outcome.results.append(RecordedRun(rid, end_event(record)))
        if not outcome.results and pooled.lost:  # nothing trained at all: the reason is the answer
            raise ResumeError(pooled.lost[0].reason)
    by_run = {rid: i for i, rid in enumerate(rid for task in tasks for rid in task.run_ids)}
    outcome.results.sort(key=lambda r: by_run.get(r.run_id, len(by_run)))
    return outcome


def release(home: Path, tasks: list[Task]) -> None:
    """Give back the runs of tasks that will not train: new ones deleted, stopped ones that
    were to resume back to interrupted (resumable, as they were)."""
    ids = [rid for task in tasks for rid in task.run_ids]
    if not ids:
        return
    with Store(home) as store:
        gone = set(store.forget_queued(ids))
        for rid in ids:
            if rid in gone:
                continue
            record = store.get_run(rid)
            if record is not None and record.status == RunStatus.QUEUED:
                store.end_run(rid, RunStatus.INTERRUPTED, message="its resumption was not started; "
                              "`fnn-tui resume` continues it")
