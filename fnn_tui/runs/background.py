"""Runs that outlive the terminal: launched as their own process session, followed through the store.

A background process (``fnn-tui worker``, :mod:`fnn_tui.runs.worker`) is started with
``start_new_session=True``, so the SIGHUP of a dropped SSH session never reaches it. Its
tasks are planned (their runs claimed queued in the store) first; the process trains them
as ``fnn-tui run`` would, writing epochs, progress and a heartbeat. Anyone (the app, ``fnn-tui attach``) follows a run by polling
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
from fnn_tui.core.status import RunStatus
from fnn_tui.runs import OnEvent
from fnn_tui.runs.liveness import pid_alive, reap
from fnn_tui.runs.plan import Task
from fnn_tui.store.runs import RunRecord, Store

POLL_SECONDS = 0.2
STOP_SIGNAL = getattr(signal, "SIGUSR1", signal.SIGTERM)


@dataclass(frozen=True)
class Launched:
    """A background process and the runs it will train, in order."""

    process: subprocess.Popen[bytes]
    run_ids: list[int]


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


def launch(home: Path, tasks: list[Task], jobs: int = 1, *, executor: str = "local",
           address: str | None = None) -> Launched:
    """Start one background process to train ``tasks`` (planned, their runs claimed queued
    by :func:`fnn_tui.runs.plan.plan`), here in order or over ``jobs`` processes.

    Should the process not start, the tasks' runs are given back before the error is raised.
    """
    from fnn_tui.runs.execute import release

    run_ids = [rid for task in tasks for rid in task.run_ids]
    try:
        with Store(home) as store:
            first = store.get_run(run_ids[0])
            assert first is not None
            args = [f"--jobs={max(1, jobs)}", f"--executor={executor}",
                    *([f"--ray-address={address}"] if address else []), *(task.arg() for task in tasks)]
            process = _spawn(home, args, first.folder / "worker.log")
            store.set_pid(run_ids, process.pid)
    except BaseException:
        release(home, tasks)
        raise
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
        # the trainer's own words, stored as such (runs stored before they were: from the message)
        reason = record.reason or (record.message or "the loss became NaN or infinite").split(" at epoch")[0]
        return RunDiverged(record.diverged_epoch or record.epochs_done + 1, record.diverged_step or 0, reason, wall)
    if status in (RunStatus.CANCELLED, RunStatus.INTERRUPTED):
        return RunCancelled(record.epochs_done, wall, status=status)
    return RunFailed(record.message or status.label, wall,
                     status=status if status == RunStatus.CRASHED else RunStatus.FAILED)


class _Follower:
    """One run's events read back from the store, a poll at a time."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.started = False
        self.seen = 0
        self.position = (0, 0)
        self.record: RunRecord | None = None
        self.ended = False

    def poll(self, store: Store, on_event: OnEvent) -> None:
        run_id = self.run_id
        record = self.record = store.get_run(run_id)
        if record is None:  # a queued run of a stopped queue, deleted again: nothing to follow
            self.ended = True
            return
        if record.status == RunStatus.QUEUED:
            return
        if not self.started:
            on_event(run_id, RunStarted(
                preset=record.preset, engine=record.engine, device=record.device, seed=record.seed,
                epochs=record.epochs_total, steps_per_epoch=record.steps_per_epoch,
                start_epoch=0, start_step=0))
            self.started = True
        new = store.epochs(run_id, after=self.seen)
        fits = dict(store.fits(run_id, after=self.seen)) if new else {}  # y_hat, for the app's plot
        for metrics in new:
            blob = fits.get(metrics.epoch)
            on_event(run_id, EpochFinished(metrics, record.epochs_total, fit=None if blob is None else decode(blob)))
            self.seen = metrics.epoch
        if (record.progress_epoch, record.progress_step) != self.position and record.status == RunStatus.RUNNING:
            self.position = (record.progress_epoch, record.progress_step)
            if self.position[0] > self.seen:
                on_event(run_id, StepProgress(self.position[0], self.position[1], record.steps_per_epoch))
        if not record.status.active:
            on_event(run_id, end_event(record))
            self.ended = True


def follow_many(
    home: Path,
    run_ids: list[int],
    on_event: OnEvent,
    should_stop: Callable[[], bool] = lambda: False,
    process: subprocess.Popen[bytes] | None = None,
) -> dict[int, RunRecord | None]:
    """Send the events of several runs, read from the store, until they all end (or
    ``should_stop``); return each one's last record (``None``: it is gone).

    The events are the trainer's own, per run: :class:`RunStarted` once it leaves the queue,
    an :class:`EpochFinished` for every stored epoch (those stored before it started
    following first), :class:`StepProgress` inside an epoch, then its end event. Runs that
    train at once (over the pool) are followed at once. ``process`` is the background
    process when this side started it: polling it reaps it, so an ended process is never
    mistaken for a live one.
    """
    followers = [_Follower(rid) for rid in run_ids]
    with Store(home) as store:
        last_check = 0.0
        while True:
            if process is not None:
                process.poll()
            now = time.monotonic()
            if now - last_check > 2.0:
                reap(store)
                last_check = now
            for follower in followers:
                if not follower.ended:
                    follower.poll(store, on_event)
            if all(f.ended for f in followers) or should_stop():
                return {f.run_id: f.record for f in followers}
            time.sleep(POLL_SECONDS)


def follow(
    home: Path,
    run_id: int,
    on_event: OnEvent,
    should_stop: Callable[[], bool] = lambda: False,
    process: subprocess.Popen[bytes] | None = None,
) -> RunRecord | None:
    """:func:`follow_many` for one run: its last record, ``None`` when there is no such run."""
    return follow_many(home, [run_id], on_event, should_stop, process)[run_id]
