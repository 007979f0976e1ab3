"""Training several tasks at once: worker processes, one single-threaded task each at a time.

Workers record their runs in the shared store themselves and send the trainer's events back
over a plain multiprocessing queue (without the weights they carry, and a run's progress at
most ten times a second), so a front end draws them as it draws a run trained in its own
process. There is no manager process: a manager that died took every run's next event
with it, and the run failed on a BrokenPipeError.

Signals are the command's business, so the pool owns them while it runs: SIGTERM, SIGINT or
SIGHUP to the command is forwarded to every worker, which stops its run as interrupted at
the step it reached (checkpointed, resumable) and starts no other preset; the pool waits
until every worker has stored its state and exited, and reports the signal so the command
exits 128 + N. A worker whose command dies without a word (kill -9) gets SIGTERM from the
kernel (Linux), or sees at its next event that its parent changed, and stops the same way:
no worker outlives the command.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from fnn_tui.core.events import EndEvent, EpochFinished, Event, RunCancelled, StepProgress
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import STOP_SIGNALS, StopRequest
from fnn_tui.runs import OnEvent
from fnn_tui.runs.plan import Task

POLL_SECONDS = 0.1
# a run's progress (steps, epochs before its last) goes to the pool at most this often: the
# pool only draws it (the worker stores every epoch), and ten seeds of exp01 finish about a
# thousand epochs a second between them, each one pickled, sent and drawn
PROGRESS_SECONDS = 0.1
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# SIGUSR1 (``fnn-tui stop`` to the background worker) stops the runs as cancelled, not interrupted
CANCEL_SIGNAL = getattr(signal, "SIGUSR1", None)
FORWARDED = STOP_SIGNALS + ((CANCEL_SIGNAL,) if CANCEL_SIGNAL is not None else ())


def _mask(how: int, signals: tuple[int, ...] | set[int]) -> set[int]:
    """``signal.pthread_sigmask`` where there is one (POSIX); elsewhere nothing is blocked."""
    if hasattr(signal, "pthread_sigmask"):
        return set(signal.pthread_sigmask(how, signals))
    return set()


@dataclass(frozen=True)
class PoolResult:
    """How one run of a task ended."""

    label: str  # the task's
    run_id: int
    end: EndEvent


@dataclass(frozen=True)
class Lost:
    """A task whose worker could not train it or ended without reporting how it went."""

    task: Task
    reason: str


@dataclass
class PoolOutcome:
    """What the pool did: the runs that ended (in task order), the tasks never started
    because a signal came first, the ones lost with their worker, and that signal."""

    results: list[PoolResult] = field(default_factory=list)
    not_started: list[Task] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    signum: int | None = None


class ProgressThrottle:
    """Whether to send a run's event to the pool: every event but progress (a step, or an
    epoch before the last), which passes at most every ``PROGRESS_SECONDS`` per run."""

    def __init__(self, seconds: float = PROGRESS_SECONDS) -> None:
        self.seconds = seconds
        self.last: dict[int, float] = {}

    def __call__(self, run_id: int, event: Event) -> bool:
        progress = isinstance(event, StepProgress) or (
            isinstance(event, EpochFinished) and event.metrics.epoch < event.epochs)
        if not progress:
            return True
        now = time.monotonic()
        if now - self.last.get(run_id, float("-inf")) < self.seconds:
            return False
        self.last[run_id] = now
        return True


def _event_sender(index: int, send: Callable[[tuple[Any, ...]], None], parent_gone: Callable[[], bool]) -> OnEvent:
    """The ``on_event`` of piece ``index``: its events to the pool, progress throttled."""
    throttle = ProgressThrottle()

    def on_event(run_id: int, event: Event) -> None:
        if throttle(run_id, event):
            send(("event", index, run_id, light(event)))
        else:
            parent_gone()  # the check a sent event makes, made all the same

    return on_event


def light(event: Event) -> Event:
    """The event without the training state it may carry (weights stay in the pool process)."""
    if isinstance(event, (EpochFinished, RunCancelled)) and event.state is not None:
        return dataclasses.replace(event, state=None)
    return event


# --- the worker process -------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent dies, even by kill -9 (Linux only; elsewhere
    the parent check at every event does it)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):
        pass


def _worker(home: str, tasks: Any, events: Any, parent: int) -> None:
    """Take ``(index, task)`` pairs until the ``None`` that ends the queue or a stop, and
    train each with :func:`fnn_tui.runs.task.train_task`."""
    import torch

    from fnn_tui.runs.task import train_task

    torch.set_num_threads(1)
    stop = StopRequest()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # a second signal changes nothing: the pool decides
        if signum == CANCEL_SIGNAL:
            if not stop.is_set():
                # `fnn-tui stop RUN` names this process (the run's): the whole queue stops, so
                # the pool is told, and it tells every other worker
                stop.set(RunStatus.CANCELLED)
                try:
                    os.kill(parent, signum)
                except OSError:
                    pass
        else:
            stop.set(RunStatus.INTERRUPTED, signum)

    for signum in FORWARDED:
        signal.signal(signum, on_signal)
    _mask(getattr(signal, "SIG_UNBLOCK", 1), FORWARDED)  # blocked by the pool until now
    _die_with_parent()

    def parent_gone() -> bool:
        if os.getppid() != parent:
            # the command died: nobody is left to draw this run or to stop it, so stop it as a
            # signal would (interrupted, resumable) rather than train on as an orphan
            stop.set(RunStatus.INTERRUPTED, signal.SIGHUP)
            return True
        return False

    def send(message: tuple[Any, ...]) -> None:
        if parent_gone():
            return
        try:
            events.put(message)
        except (OSError, ValueError):  # the queue is gone with the command: as above
            stop.set(RunStatus.INTERRUPTED, signal.SIGHUP)

    while not parent_gone():
        try:
            task = tasks.get(timeout=POLL_SECONDS * 5)
        except queue_mod.Empty:
            if stop.is_set():
                break
            continue
        if task is None:
            break
        index, work = task
        if stop.is_set():
            continue  # a signal came first: this one is not started (the pool says so)
        send(("start", index))
        on_event = _event_sender(index, send, parent_gone)
        try:
            results = train_task(Path(home), work, on_event, stop)
        except Exception as exc:  # bad input found late: one task, not the pool
            send(("error", index, str(exc) or exc.__class__.__name__))
            continue
        send(("done", index, [PoolResult(work.label, r.run_id, light(r.end)) for r in results]))
    if os.getppid() == parent:
        events.close()
        events.join_thread()  # every message reaches the pool before this process ends
    else:
        events.cancel_join_thread()  # nobody reads them any more: exit anyway
    # Everything is stored and sent: end without the interpreter's teardown of torch and
    # Numba (about half a second the command would wait for, after its last run ended)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --- the pool -----------------------------------------------------------------------------


@contextmanager
def _forwarding(processes: list[Any], outcome: PoolOutcome) -> Iterator[None]:
    """While the pool runs, a stop signal to this process goes to every worker too."""

    def forward(signum: int, frame: FrameType | None) -> None:
        if outcome.signum is None and signum != CANCEL_SIGNAL:
            outcome.signum = signum
        for process in processes:
            if process.pid is not None:
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_parallel(home: Path, work: list[Task], jobs: int, on_event: OnEvent) -> PoolOutcome:
    """Train the tasks ``work`` over ``jobs`` processes, sending every event to ``on_event``.

    Returns when every worker has ended. A stop signal (SIGTERM, SIGINT, SIGHUP) stops the
    runs as interrupted (SIGUSR1: cancelled) and leaves the tasks not yet started alone: see
    the module's notes.
    """
    ctx = mp.get_context("spawn")
    tasks, events = ctx.Queue(), ctx.Queue()
    for index, task in enumerate(work):
        tasks.put((index, task))
    for _ in range(jobs):
        tasks.put(None)
    outcome = PoolOutcome()
    processes = [ctx.Process(target=_worker, args=(str(home), tasks, events, os.getpid()),
                             name=f"fnn-tui pool worker {n + 1}") for n in range(jobs)]
    started: set[int] = set()  # task indices a worker took
    ended: dict[int, list[PoolResult] | Lost] = {}

    def handle(message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        if kind == "start":
            started.add(index)
        elif kind == "event":
            on_event(message[2], message[3])
        elif kind == "done":
            ended[index] = message[2]
        elif kind == "error":
            ended[index] = Lost(work[index], message[2])

    # the workers start with the stop signals blocked (inherited) and unblock them once their
    # handlers are in place, so a signal during their start-up is kept for them, not fatal
    blocked = _mask(getattr(signal, "SIG_BLOCK", 0), FORWARDED)
    try:
        with _forwarding(processes, outcome):
            try:
                for process in processes:
                    process.start()
            finally:
                _mask(getattr(signal, "SIG_SETMASK", 2), blocked)
            while any(p.is_alive() for p in processes):
                try:
                    handle(events.get(timeout=POLL_SECONDS))
                except queue_mod.Empty:
                    pass
            while True:  # what the last workers sent before they ended
                try:
                    handle(events.get(timeout=POLL_SECONDS))
                except queue_mod.Empty:
                    break
    finally:
        _mask(getattr(signal, "SIG_SETMASK", 2), blocked)
        for process in processes:
            process.join()
        tasks.cancel_join_thread()  # tasks left in the queue (after a stop) are dropped
        tasks.close()
        events.close()
    for index, task in enumerate(work):
        if index in ended:
            item = ended[index]
            if isinstance(item, list):
                outcome.results.extend(item)
            else:
                outcome.lost.append(item)
        elif index in started:
            outcome.lost.append(Lost(task, "its worker process ended without a word"))
        else:
            outcome.not_started.append(task)
    return outcome
