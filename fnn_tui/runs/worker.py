"""The background training process (``fnn-tui worker``): trains the tasks it was handed.

The planner claimed the tasks' runs ``queued`` in the app (or ``run --detach``), and this
process trains them exactly as ``fnn-tui run`` would (:func:`fnn_tui.runs.execute.train_tasks`:
here in order, or over the pool with ``--jobs``). SIGTERM, SIGINT and SIGHUP stop it as
"interrupted" (resumable) and it exits with 128 + the signal; SIGUSR1 (``fnn-tui stop``)
stops it as "cancelled". Either way the runs of its queue that never started are deleted
again: a stopped queue leaves no empty rows. Its output, one line per event, goes to the
log file it was started with.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime
from pathlib import Path

from fnn_tui.core.events import EndEvent, EpochFinished, Event, RunStarted, end_status
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest, install_signal_stop
from fnn_tui.runs.record import end_message
from fnn_tui.store.runs import Store

LINE_LIMIT = 300  # an error's text can be long (a tensor in an exception): the log keeps one short line


def _log(message: str) -> None:
    # one line per event, even for an error whose message has several lines (a torch error),
    # and a short one: such a message can hold a whole tensor
    line = " / ".join(part.strip() for part in message.splitlines() if part.strip())
    if len(line) > LINE_LIMIT:
        line = line[: LINE_LIMIT - 1] + "…"
    print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {line}", flush=True)


def log_event(run_id: int, event: Event) -> None:
    """One line per event worth a line."""
    if isinstance(event, RunStarted):
        _log(f"run {run_id}: {event.preset} started on {event.device} ({event.engine}), "
             f"epochs {event.start_epoch + 1}..{event.epochs}"
             + (f", from step {event.start_step + 1}" if event.start_step else ""))
    elif isinstance(event, EpochFinished):
        m = event.metrics
        _log(f"run {run_id}: epoch {m.epoch} train loss {m.train_loss:.6g} test loss {m.test_loss:.6g}")
    elif isinstance(event, EndEvent):
        message = end_message(event)
        _log(f"run {run_id}: {end_status(event).label}" + (f": {message}" if message else ""))


def parse_task(arg: str) -> tuple[list[int], bool]:
    """A task as :meth:`fnn_tui.runs.plan.Task.arg` wrote it: its run ids, and whether it
    trains on the multi-seed kernel."""
    lanes_kernel = arg.startswith("g")
    try:
        ids = [int(part) for part in arg.removeprefix("g").split(",")]
    except ValueError:
        raise ValueError(f"not a task: {arg!r} (run ids joined by commas, g first for a group)") from None
    return ids, lanes_kernel


def main(home: Path, items: list[str], jobs: int = 1, *, executor: str = "local", address: str | None = None) -> int:
    """Train the tasks ``items`` (see :func:`parse_task`) here in order, over ``jobs``
    processes, or on Ray (``executor``); return the exit code."""
    from fnn_tui.runs.execute import train_tasks
    from fnn_tui.runs.plan import Task, task_of

    stop = StopRequest()
    install_signal_stop(stop)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda signum, frame: stop.set(RunStatus.CANCELLED))
    with Store(home) as store:
        tasks = [task_of(store, *parse_task(item)) for item in items]
    failed: list[Task] = []

    def on_error(task: Task, exc: Exception) -> None:  # the runs stay as the store has them: go on
        _log(f"worker: {task.label}: could not run: {exc.__class__.__name__}: {exc}")
        _fail_ours(home, list(task.run_ids), str(exc))
        failed.append(task)

    if executor == "ray":
        from fnn_tui.runs.execute import ExecutorError
        from fnn_tui.runs.ray_executor import connect

        try:
            where = connect(address)
        except ExecutorError as exc:
            _log(f"worker: could not run: {exc}")
            from fnn_tui.runs.execute import release

            release(home, tasks)
            return 2
        _log(f"worker: tasks {' '.join(t.arg() for t in tasks)} on {where}")
    else:
        _log(f"worker: tasks {' '.join(t.arg() for t in tasks)} over {min(jobs, len(tasks))} "
             f"{'process' if min(jobs, len(tasks)) == 1 else 'processes'}")
    code = 0
    try:
        outcome = train_tasks(home, tasks, jobs, log_event, stop, on_error=on_error, executor=executor, address=address)
    except Exception as exc:  # outside any task (the pool itself)
        _log(f"worker: could not run: {exc.__class__.__name__}: {exc}")
        _fail_ours(home, [rid for task in tasks for rid in task.run_ids], str(exc))
        return 1
    if failed:
        code = 1
    if outcome.not_started:
        _log(f"worker: stopped ({stop.status.label}); {sum(t.lanes for t in outcome.not_started)} queued runs "
             "never started and are not kept")
    if any(end_status(r.end).bad for r in outcome.results):
        code = 1
    if stop.status == RunStatus.INTERRUPTED and stop.signum is not None:
        _log(f"worker: stopped by signal {stop.signum}")
        return 128 + stop.signum
    return code


def _fail_ours(home: Path, run_ids: list[int], why: str) -> None:
    """Runs this process still holds after an error outside the trainer: failed, with why
    (another process may have taken one meanwhile: those are left alone)."""
    with Store(home) as store:
        store.forget_queued([rid for rid in run_ids if (r := store.get_run(rid)) is not None and r.pid == os.getpid()])
        for rid in run_ids:
            record = store.get_run(rid)
            if record is not None and record.status.active and record.pid == os.getpid():
                store.end_run(rid, RunStatus.FAILED, message=why)
