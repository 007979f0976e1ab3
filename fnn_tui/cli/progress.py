"""Training from the CLI: one progress display for every stream of the trainer's events
(a run in this process, a pool, a resumed run, a followed background run), and the line
that says how each run ended.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fnn_tui.cli.common import literal
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
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest, install_signal_stop
from fnn_tui.report.export import fmt
from fnn_tui.runs.plan import Task


class EventProgress:
    """One bar per run (epoch, loss, ETA), driven by ``(run_id, event)`` pairs only.

    The display opens with the first event, not on entering the ``with`` block: an error
    found before any work (no such run, a bad device) is then the only thing printed,
    without the blank line an empty display leaves behind.

    It keeps to the terminal's height: once there are more bars than fit, the oldest bars
    of runs that ended leave it (the results table printed afterwards lists every run).
    Otherwise ``run --all --seeds 10`` drew 110 bars, of which a terminal showed the first
    ones, long finished, and cropped the runs still training.
    """

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[preset]:<6}"),
            BarColumn(),
            TextColumn("epoch {task.fields[epoch]:>4}/{task.fields[epochs]:<4}"),
            TextColumn("loss {task.fields[loss]:<10}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=4,  # enough for runs of seconds to minutes; each redraw renders every bar
        )
        self.tasks: dict[int, TaskID] = {}
        self.steps: dict[int, int] = {}
        self.ends: dict[int, EndEvent] = {}
        self.opened = False
        self.shown: list[int] = []  # the runs whose bars are in the display, oldest first

    def __enter__(self) -> EventProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.opened:
            self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, run_id: int, event: Event) -> None:
        """Draw one event of run ``run_id``."""
        if not self.opened:
            self.progress.__enter__()
            self.opened = True
        if isinstance(event, RunStarted):
            steps = event.steps_per_epoch
            self.steps[run_id] = steps
            done = event.start_epoch * steps + event.start_step
            fields = dict(preset=literal(event.preset), epoch=event.start_epoch, epochs=event.epochs)
            if run_id in self.tasks:
                self.progress.update(self.tasks[run_id], total=event.epochs * steps or None, completed=done, **fields)
            else:
                self.tasks[run_id] = self.progress.add_task("", total=event.epochs * steps or None, completed=done,
                                                            loss="-", **fields)
            if run_id not in self.shown:
                self.progress.update(self.tasks[run_id], visible=True)
                self.shown.append(run_id)
            self.ends.pop(run_id, None)  # a resumed run is running again
            self._fit()
            return
        task = self.tasks.get(run_id)
        if task is None:
            return
        steps = self.steps.get(run_id, 0)
        if isinstance(event, StepProgress):
            self.progress.update(task, completed=(event.epoch - 1) * steps + event.step, epoch=event.epoch)
        elif isinstance(event, EpochFinished):
            m = event.metrics
            self.progress.update(task, completed=m.epoch * steps, epoch=m.epoch, loss=fmt(m.train_loss))
        elif isinstance(event, EndEvent):
            self.ends[run_id] = event
            if isinstance(event, RunFinished):
                total = self.progress.tasks[self.progress.task_ids.index(task)].total
                self.progress.update(task, completed=total)
            self._fit()

    def _fit(self) -> None:
        """Hide the oldest ended runs' bars while there are more bars than the terminal holds."""
        room = max(4, self.progress.console.height - 4)
        excess = len(self.shown) - room
        for run_id in [r for r in self.shown if r in self.ends][:max(0, excess)]:
            self.progress.update(self.tasks[run_id], visible=False)
            self.shown.remove(run_id)


END_LINES = 10  # runs whose end gets its own line; a group's others are counted in one line


def end_code(end: EndEvent) -> int:
    """The exit code a run's end asks for: 1 for a diverged or failed run, else 0."""
    return 1 if isinstance(end, RunDiverged | RunFailed) else 0


def report_ends(results: list, err: Console) -> int:
    """How the runs that did not simply finish ended: a line each for the first
    :data:`END_LINES`, then one line that counts the rest by status (a group of 1024 lanes
    stopped by Ctrl-C is not 1024 lines); return the exit code they ask for."""
    code = 0
    rest: dict[str, list[int]] = {}
    shown = 0
    for result in results:
        end = result.end
        code = max(code, end_code(end))
        if isinstance(end, RunFinished):
            continue
        if shown < END_LINES:
            report_end(result.run_id, end, err)
            shown += 1
            continue
        status = end.status if isinstance(end, RunCancelled | RunFailed) else RunStatus.DIVERGED
        rest.setdefault(status.value, []).append(result.run_id)
    if rest:
        counts = ", ".join(f"{len(ids)} {status}" for status, ids in rest.items())
        ids = sorted(i for group in rest.values() for i in group)
        which = (f"runs {ids[0]}-{ids[-1]}" if ids == list(range(ids[0], ids[-1] + 1))
                 else f"runs between {ids[0]} and {ids[-1]}")
        err.print(f"[yellow]and {len(ids)} more:[/yellow] {counts} ({which}); "
                  "`fnn-tui runs` lists them, and the same command again continues the stopped ones",
                  markup=True)
    return code


def report_end(run_id: int, end: EndEvent, err: Console) -> int:
    """Print how a run ended (when it did not simply finish); return its exit code."""
    if isinstance(end, RunDiverged):
        err.print(f"[red]run {run_id} diverged:[/red] {literal(end.reason)} at {diverged_where(end)}; "
                  "finished epochs are kept. Try a smaller lr or set training.clip.", markup=True)
        return 1
    if isinstance(end, RunFailed):
        what = "crashed" if end.status == RunStatus.CRASHED else "failed"
        err.print(f"[red]run {run_id} {what}:[/red] {literal(end.error)}; finished epochs are kept, and "
                  f"`fnn-tui resume {run_id}` continues once the cause is fixed", markup=True)
        return 1
    if isinstance(end, RunCancelled):
        steps = f" and {end.state.step} steps" if end.state is not None else ""
        how = "interrupted" if end.status == RunStatus.INTERRUPTED else "stopped"
        err.print(f"[yellow]run {run_id} {how} after {end.epochs_done} epochs{steps}[/yellow]; "
                  f"`fnn-tui resume {run_id}` continues it", markup=True)
    return 0


def train_here(home: Path, tasks: list[Task], jobs: int, err: Console, *, executor: str = "local",
               address: str | None = None) -> tuple[list[int], int]:
    """Train planned tasks through :func:`~fnn_tui.runs.execute.train_tasks`, in this process
    or over ``jobs`` processes, with one progress display; return the ids of the runs it
    trained and the exit code."""
    from fnn_tui.runs.execute import train_tasks

    stop = StopRequest()
    install_signal_stop(stop)
    started = time.perf_counter()
    with EventProgress(err) as progress:
        try:
            outcome = train_tasks(home, tasks, jobs, progress, stop, executor=executor, address=address)
        except KeyboardInterrupt:  # a second Ctrl-C: the runs in progress are stored as interrupted
            err.print("[yellow]interrupted:[/yellow] the runs are stored as interrupted; "
                      "the same command again continues them", markup=True)
            raise SystemExit(130) from None
    results = outcome.results
    if outcome.processes > 1 or executor == "ray":  # what happened, not what was asked for
        runs, n = sum(t.lanes for t in tasks), outcome.processes
        where = ("Ray worker" if executor == "ray" else "process") + ("" if n == 1 else "es" if executor != "ray" else "s")
        err.print(f"{runs} {'run' if runs == 1 else 'runs'} in {len(tasks)} {'task' if len(tasks) == 1 else 'tasks'}, "
                  f"{time.perf_counter() - started:.1f} s over {n} {where}")
    code = report_ends(results, err)
    if outcome.not_started:
        rest = sum(t.lanes for t in outcome.not_started)
        err.print(f"[yellow]interrupted:[/yellow] {rest} {'run was' if rest == 1 else 'runs were'} not started; "
                  "the same command again trains them", markup=True)
    if stop.signum is not None:
        return [r.run_id for r in results], 128 + stop.signum
    return [r.run_id for r in results], code


def resume_here(home: Path, run_id: int, device: str | None, err: Console) -> int:
    """Resume one run in this process, with a progress bar: planned as any resumption is (a
    lane of a group goes on as a lane, to the numbers of an uninterrupted run), on its own
    device or on ``device`` (:func:`fnn_tui.runs.plan.engine_on`)."""
    from fnn_tui.runs.plan import plan_resume
    from fnn_tui.store.runs import Store

    with Store(home) as store:
        planned = plan_resume(store, [run_id], device)
    return train_here(home, planned.tasks, 1, err)[1]


def attach_here(home: Path, run_id: int, err: Console) -> int:
    """Follow a run from the store with a progress bar until it ends; Ctrl-C detaches."""
    from fnn_tui.runs.background import follow
    from fnn_tui.runs.record import ResumeError
    from fnn_tui.store.runs import Store

    with Store(home) as store:
        record = store.get_run(run_id)
    if record is None:
        raise ResumeError(f"no run with id {run_id}; `fnn-tui runs` lists them")
    with EventProgress(err) as progress:
        try:
            final = follow(home, run_id, progress)
        except KeyboardInterrupt:
            err.print(f"detached; run {run_id} keeps going (`fnn-tui attach {run_id}` follows it again)")
            return 0
    if final is None:
        return 2
    style = final.status.style
    err.print(f"run {run_id} [{style}]{final.status.label}[/{style}]"
              + (f": {literal(final.message)}" if final.message else ""), markup=True)
    return 1 if final.status.bad else 0
