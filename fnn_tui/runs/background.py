"""Runs that outlive the terminal: launched as their own process session, followed through the store.

A background process (``fnn-tui worker``, :mod:`fnn_tui.runs.worker`) is started with
``start_new_session=True``, so the SIGHUP of a dropped SSH session never reaches it. Its
runs are queued in the store first; the process trains them in order, writing epochs,
progress and a heartbeat. Anyone (the app, ``fnn-tui attach``) follows a run by polling
the store and gets the same typed events the trainer emits; ``fnn-tui stop`` sends the
process SIGUSR1, which cancels cleanly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fnn_tui.core.events import (
    EndEvent,
    EpochFinished,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    StepProgress,
)
from fnn_tui.core.grid import decode
from fnn_tui.core.presets import Preset
from fnn_tui.core.status import RunStatus
from fnn_tui.core.trainer import RunOptions, resolve
from fnn_tui.runs import OnEvent
from fnn_tui.runs.liveness import pid_alive, reap
from fnn_tui.runs.record import claim, prepare_resume
from fnn_tui.store.runs import RunRecord, Store

POLL_SECONDS = 0.2
STOP_SIGNAL = getattr(signal, "SIGUSR1", signal.SIGTERM)


@dataclass(frozen=True)
class Launched:
    """A background process and the runs it will train, in order."""

    process: subprocess.Popen[bytes]
    run_ids: list[int]


@dataclass(frozen=True)
class QueueItem:
    """One entry of a background queue: a new run of ``preset`` or the resumption of ``resume_id``."""

    preset: Preset | None = None
    resume_id: int | None = None


def _spawn(home: Path, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fnn_tui", "--home", str(home), "worker", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def launch(home: Path, items: list[QueueItem], options: RunOptions) -> Launched:
    """Queue the items in the store and start one background process to train them.

    Bad input (device, engine, a run that cannot be resumed) raises before anything starts.
    """
    args: list[str] = []
    run_ids: list[int] = []
    with Store(home) as store:
        records = {item.resume_id: prepare_resume(store, item.resume_id)[0]
                   for item in items if item.resume_id is not None}
        claimed: list[RunRecord] = []
        try:
            for record in records.values():
                claim(store, record, RunStatus.QUEUED)  # one resumer only: another may have it now
                claimed.append(record)
        except ValueError:
            for record in claimed:  # give back what this launch took
                store.end_run(record.id, record.status, message=record.message)
            raise
        for item in items:
            if item.resume_id is not None:
                args.append(f"r{item.resume_id}")
                run_ids.append(item.resume_id)
            else:
                assert item.preset is not None
                resolved = resolve(item.preset, options)
                rid = store.create_run(item.preset, engine=resolved.engine, device=resolved.device,
                                       status=RunStatus.QUEUED)
                args.append(str(rid))
                run_ids.append(rid)
        first = store.get_run(run_ids[0])
        assert first is not None
        process = _spawn(home, args, first.folder / "worker.log")
        store.set_pid(run_ids, process.pid)
    return Launched(process, run_ids)


class NotRunningError(ValueError):
    """The run is not queued or training, so there is nothing to stop."""


def stop_run(home: Path, run_id: int) -> str:
    """Ask a background run's process to stop cleanly (the run becomes "cancelled")."""
    with Store(home) as store:
        reap(store)
        record = store.get_run(run_id)
        if record is None:
            raise NotRunningError(f"no run with id {run_id}; `fnn-tui runs` lists the active ones")
        if not record.status.active:
            raise NotRunningError(f"run {run_id} is {record.status.label}, not running")
        if record.host != socket.gethostname():
            raise NotRunningError(f"run {run_id} trains on {record.host}; stop it there")
        if not record.pid or not pid_alive(record.pid):
            reap(store, grace=0)
            raise NotRunningError(f"run {run_id}'s process is gone; it is now marked crashed")
        if record.pid == os.getpid():
            raise NotRunningError(f"run {run_id} trains in this process")
        os.kill(record.pid, STOP_SIGNAL)
    return f"asked run {run_id} (pid {record.pid}) to stop"


# --- following --------------------------------------------------------------------------


def end_event(record: RunRecord) -> EndEvent:
    """The trainer's end event that a stored run's final status stands for."""
    wall = record.wall_seconds or 0.0
    status = record.status
    if status == RunStatus.FINISHED and record.final is not None:
        return RunFinished(record.final, wall)
    if status == RunStatus.DIVERGED:
        reason = (record.message or "the loss became NaN or infinite").split(" at epoch")[0]
        return RunDiverged(record.diverged_epoch or record.epochs_done + 1, record.diverged_step or 0, reason, wall)
    if status in (RunStatus.CANCELLED, RunStatus.INTERRUPTED):
        return RunCancelled(record.epochs_done, wall, status=status)
    return RunFailed(record.message or status.label, wall,
                     status=status if status == RunStatus.CRASHED else RunStatus.FAILED)


def follow(
    home: Path,
    run_id: int,
    on_event: OnEvent,
    should_stop: Callable[[], bool] = lambda: False,
    process: subprocess.Popen[bytes] | None = None,
) -> RunRecord | None:
    """Send a run's events, read from the store, until it ends (or ``should_stop``); return
    its last record.

    The events are the trainer's own: :class:`RunStarted` (``start_epoch`` = epochs already
    stored), an :class:`EpochFinished` for every stored epoch (those stored before it
    started following first), :class:`StepProgress` inside an epoch, then the end event.
    ``process`` is the background process when this side started it: polling it reaps it,
    so an ended process is never mistaken for a live one.
    """
    with Store(home) as store:
        started = False
        seen = 0
        position = (0, 0)
        last_check = 0.0
        while True:
            if process is not None:
                process.poll()
            now = time.monotonic()
            if now - last_check > 2.0:
                reap(store)
                last_check = now
            record = store.get_run(run_id)
            if record is None:
                return None
            if record.status != RunStatus.QUEUED:
                if not started:
                    on_event(run_id, RunStarted(
                        preset=record.preset, engine=record.engine, device=record.device, seed=record.seed,
                        epochs=record.epochs_total, steps_per_epoch=record.steps_per_epoch,
                        start_epoch=0, start_step=0))
                    started = True
                new = store.epochs(run_id, after=seen)
                fits = dict(store.fits(run_id, after=seen)) if new else {}  # y_hat, for the app's plot
                for metrics in new:
                    blob = fits.get(metrics.epoch)
                    on_event(run_id, EpochFinished(metrics, record.epochs_total,
                                                   fit=None if blob is None else decode(blob)))
                    seen = metrics.epoch
                if (record.progress_epoch, record.progress_step) != position and record.status == RunStatus.RUNNING:
                    position = (record.progress_epoch, record.progress_step)
                    if position[0] > seen:
                        on_event(run_id, StepProgress(position[0], position[1], record.steps_per_epoch))
                if not record.status.active:
                    on_event(run_id, end_event(record))
                    return record
            if should_stop():
                return record
            time.sleep(POLL_SECONDS)


def plan_run_all(home: Path, presets: list[Preset], options: RunOptions) -> tuple[list[QueueItem], list[str]]:
    """What "Run all" should do: skip presets already finished with the same settings (resolved
    preset and engine), resume the newest interrupted or crashed run of one, start the rest.

    Returns the queue and the names skipped.
    """
    items: list[QueueItem] = []
    skipped: list[str] = []
    with Store(home) as store:
        reap(store)
        for preset in presets:
            engine = resolve(preset, options).engine
            same = [r for r in store.list_runs(preset.name) if r.preset_hash == preset.digest() and r.engine == engine]
            if any(r.status == RunStatus.FINISHED for r in same):
                skipped.append(preset.name)
                continue
            unfinished = [r for r in same if r.status in (RunStatus.INTERRUPTED, RunStatus.CRASHED)]
            resumable = None
            for record in unfinished:  # newest first
                try:
                    prepare_resume(store, record.id)
                except ValueError:
                    continue
                resumable = record.id
                break
            items.append(QueueItem(resume_id=resumable) if resumable is not None else QueueItem(preset=preset))
    return items, skipped
