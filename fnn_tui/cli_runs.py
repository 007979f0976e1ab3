"""Training from the CLI: progress bars on stderr, signals turned into clean stops."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fnn_tui.batch import Progress, run_parallel, summarize
from fnn_tui.cli_render import make_progress
from fnn_tui.core.events import Event, RunCancelled, RunDiverged, RunFailed, RunStarted
from fnn_tui.core.presets import Preset
from fnn_tui.core.stopping import StopRequest, install_signal_stop
from fnn_tui.core.trainer import RunOptions
from fnn_tui.export import fmt
from fnn_tui.store.recorder import RecordedRun, record_run, resume_run


def _report_end(result: RecordedRun, err: Console, stop: StopRequest) -> int:
    """Print how a run ended (when it did not simply finish); return its exit code."""
    end, run_id = result.end, result.run_id
    if isinstance(end, RunDiverged):
        where = f"epoch {end.epoch}" + (f", step {end.step}" if end.step else "")
        err.print(f"[red]run {run_id} diverged:[/red] {end.reason} at {where}; finished epochs are kept. "
                  "Try a smaller lr or set training.clip.", markup=True)
        return 1
    if isinstance(end, RunFailed):
        err.print(f"[red]run {run_id} failed:[/red] {escape(end.error)}; finished epochs are kept, and "
                  f"`fnn-tui resume {run_id}` continues once the cause is fixed", markup=True)
        return 1
    if isinstance(end, RunCancelled):
        steps = f" and {end.state.step} steps" if end.state is not None else ""
        how = "interrupted" if stop.signum is not None else "stopped"
        err.print(f"[yellow]run {run_id} {how} after {end.epochs_done} epochs{steps}[/yellow]; "
                  f"`fnn-tui resume {run_id}` continues it", markup=True)
        return 128 + stop.signum if stop.signum is not None else 0
    return 0


def _emitter(preset: Preset, progress, task_ids: dict[str, int]):  # noqa: ANN001, ANN202
    def emit(event: Event) -> None:
        if isinstance(event, RunStarted):
            task = task_ids[preset.name]
            progress.update(task, total=event.epochs * event.steps_per_epoch,
                            completed=event.start_epoch * event.steps_per_epoch + event.start_step, epoch=event.start_epoch)
        item = summarize(preset.name, preset.training.epochs, event)
        if item is not None:
            _apply(progress, task_ids, item)

    return emit


def _apply(progress, task_ids: dict[str, int], item: Progress) -> None:  # noqa: ANN001
    task = task_ids[item.preset]
    if item.kind == "step":
        progress.update(task, total=item.epochs * item.steps, completed=(item.epoch - 1) * item.steps + item.step,
                        epoch=item.epoch)
    elif item.kind == "epoch" and item.metrics is not None:
        progress.update(task, epoch=item.epoch, loss=fmt(item.metrics.train_loss))
    elif item.kind == "end":
        progress.update(task, epoch=item.epoch)
        if item.status == "finished":
            total = progress.tasks[[t.id for t in progress.tasks].index(task)].total
            progress.update(task, completed=total)


def run_here(home: Path, presets: list[Preset], options: RunOptions, out: Console, err: Console) -> tuple[list[int], int]:
    """Train presets one after the other in this process."""
    stop = StopRequest()
    install_signal_stop(stop)
    ids: list[int] = []
    code = 0
    with make_progress(err) as progress:
        task_ids = {p.name: progress.add_task("", total=None, preset=p.name, epoch=0, epochs=p.training.epochs, loss="-")
                    for p in presets}
        for done, preset in enumerate(presets):
            if stop.is_set():
                err.print(f"[yellow]interrupted:[/yellow] {len(presets) - done} presets were not started", markup=True)
                break
            result = record_run(home, preset, options, _emitter(preset, progress, task_ids), stop, on_created=ids.append)
            code = max(code, _report_end(result, err, stop))
    if stop.signum is not None:
        return ids, 128 + stop.signum
    return ids, code


def run_in_pool(home: Path, presets: list[Preset], options: RunOptions, jobs: int, out: Console, err: Console) -> tuple[list[int], int]:
    """Train presets over ``jobs`` processes, one preset each."""
    import time

    started = time.perf_counter()
    with make_progress(err) as progress:
        task_ids = {p.name: progress.add_task("", total=None, preset=p.name, epoch=0, epochs=p.training.epochs, loss="-")
                    for p in presets}
        try:
            results = run_parallel(home, presets, options, jobs, lambda item: _apply(progress, task_ids, item))
        except KeyboardInterrupt:
            err.print("[yellow]interrupted:[/yellow] the runs are stored as interrupted; "
                      "`fnn-tui results` lists them and `fnn-tui resume RUN` continues one", markup=True)
            raise SystemExit(130) from None
    err.print(f"{len(presets)} presets in {time.perf_counter() - started:.1f} s over {jobs} processes")
    code = 0
    for name, run_id, end_name in results:
        if end_name in ("RunDiverged", "RunFailed"):
            err.print(f"[red]run {run_id} ({name}) {end_name[3:].lower()}[/red]; `fnn-tui results` has details", markup=True)
            code = 1
    return [run_id for _, run_id, _ in results], code


def resume_here(home: Path, run_id: int, device: str | None, out: Console, err: Console) -> int:
    """Resume one run in this process, with a progress bar."""
    stop = StopRequest()
    install_signal_stop(stop)
    with make_progress(err) as progress:
        task_ids: dict[str, int] = {}
        started: list[RunStarted] = []

        def emit(event: Event) -> None:
            if isinstance(event, RunStarted):
                started.append(event)
                task_ids[event.preset] = progress.add_task(
                    "", total=event.epochs * event.steps_per_epoch, completed=event.start_epoch * event.steps_per_epoch + event.start_step,
                    preset=event.preset, epoch=event.start_epoch, epochs=event.epochs, loss="-",
                )
                return
            if started:
                item = summarize(started[0].preset, started[0].epochs, event)
                if item is not None:
                    _apply(progress, task_ids, item)

        result = resume_run(home, run_id, emit, stop, device=device)
    return _report_end(result, err, stop)



def attach_here(home: Path, run_id: int, out: Console, err: Console) -> int:
    """Follow a run from the store with a progress bar until it ends; Ctrl-C detaches."""
    from fnn_tui.store.background import Update, follow
    from fnn_tui.store.runs import Store

    with Store(home) as store:
        record = store.get_run(run_id)
    if record is None:
        from fnn_tui.store.recorder import ResumeError

        raise ResumeError(f"no run with id {run_id}; `fnn-tui results` lists them")
    with make_progress(err) as progress:
        task = progress.add_task("", total=None, preset=record.preset, epoch=0, epochs=record.epochs_total, loss="-")

        def on_update(update: Update) -> None:
            r = update.record
            total = r.epochs_total * r.steps_per_epoch or None
            if update.kind == "started":
                last = update.history[-1] if update.history else None
                progress.update(task, total=total, completed=(last.epoch if last else 0) * r.steps_per_epoch,
                                epoch=last.epoch if last else 0, loss=fmt(last.train_loss) if last else "-")
            elif update.kind == "step":
                progress.update(task, total=total, completed=(update.epoch - 1) * r.steps_per_epoch + update.step,
                                epoch=update.epoch)
            elif update.kind == "epoch" and update.metrics is not None:
                progress.update(task, total=total, completed=update.metrics.epoch * r.steps_per_epoch,
                                epoch=update.metrics.epoch, loss=fmt(update.metrics.train_loss))

        try:
            final = follow(home, run_id, on_update)
        except KeyboardInterrupt:
            err.print(f"detached; run {run_id} keeps going (`fnn-tui attach {run_id}` follows it again)")
            return 0
    if final is None:
        return 2
    style = "green" if final.status == "finished" else ("red" if final.status in ("diverged", "failed", "crashed") else "yellow")
    err.print(f"run {run_id} [{style}]{final.status}[/{style}]" + (f": {final.message}" if final.message else ""), markup=True)
    return 1 if final.status in ("diverged", "failed", "crashed") else 0
