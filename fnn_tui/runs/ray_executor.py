"""The Ray executor: tasks trained on a Ray cluster, every event written here.

The unit sent to Ray is a piece (:class:`fnn_tui.runs.task.Piece`): one run, or one group of
lanes, for all its epochs, seconds of work. Each Ray worker is an actor that trains one
piece at a time with :func:`fnn_tui.runs.task.train_piece` and keeps the events; this
command pulls them in batches and feeds them to the same sinks that write a local run
(:func:`fnn_tui.runs.task.sink_for`). Workers never open the store, so the cluster needs
no shared file system and the store has one writer, this process.

- **Where.** A CPU task goes to a worker of one CPU (one per CPU of the cluster), a task
  for a CUDA device to a worker of one GPU and no CPU (one per GPU), which trains on the GPU
  Ray gave it as its ``cuda:0``; GPU tasks and a cluster without a GPU: one line, no work.
- **Progress and stop.** Events come back as they do from the pool (progress at most ten
  times a second per piece; every epoch, every end). A stop (the app's ``s``, Ctrl-C,
  SIGTERM: the command's :class:`~fnn_tui.core.stopping.StopRequest`) is sent to every
  busy worker, which stops its piece at the step it reached, checkpointed, as the pool's
  workers do; pieces not yet sent are given back.
- **A worker or node lost mid-piece.** Its runs are interrupted at what the store holds
  and planned again (:func:`fnn_tui.runs.plan.plan_resume`): the piece goes on from the
  last checkpoint written here, on a worker still alive, and the epochs after that
  checkpoint are trained again to the same numbers (their rows replaced). A piece is
  retried :data:`MAX_ATTEMPTS` times in all.
- **This command killed.** Its runs are interrupted (a signal) or crashed (kill -9: their
  pid is dead), and ``run`` again goes on; the Ray workers of a dead driver are ended by Ray.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fnn_tui.core.events import EndEvent, Event, GroupEpochFinished, StepProgress
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest
from fnn_tui.core.trainer import StopFlag
from fnn_tui.runs import OnEvent
from fnn_tui.runs.execute import ExecutorError, Outcome
from fnn_tui.runs.plan import Task, plan_resume, task_of
from fnn_tui.runs.record import RecordedRun
from fnn_tui.store.runs import Store

INSTALL = "pip install 'fnn-tui[ray]'"
MAX_ATTEMPTS = 3  # a piece lost with its worker this many times fails
DRAIN_SECONDS = 0.5  # how long a worker holds a pull for events to come
CONNECT_SECONDS = 5.0  # how long an address may take to answer before it is called unreachable
# what a local Ray's workers need from this process's environment (the kernel cache, the simulator)
PASSED_ENV = ("FNN_TUI_", "NUMBA_", "OMP_NUM_THREADS", "PYTHONPATH")


def check(address: str | None = None) -> None:
    """What can be checked without starting Ray: it is installed, and an address answers."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ExecutorError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    address = (address or os.environ.get("RAY_ADDRESS") or "").strip() or None
    if address is not None and address != "auto":
        _check_reachable(address)


def connect(address: str | None = None) -> str:
    """Connect this process to Ray (once): the cluster at ``address`` (or ``$RAY_ADDRESS``),
    else a local Ray started for this command. Returns what it connected to, in words."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    if not ray.is_initialized():
        address = (address or os.environ.get("RAY_ADDRESS") or "").strip() or None
        if address is not None and address != "auto":
            _check_reachable(address)
        env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
        try:
            # no address: a Ray of our own ("local"), not whatever cluster was started here last
            ray.init(address=address or "local", logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False,
                     configure_logging=True, runtime_env={"env_vars": env} if env else None)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"at {address}" if address else "here"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise ExecutorError(f"could not start or reach Ray {where}: {first}") from None
    cpus = int(ray.cluster_resources().get("CPU", 0))
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return f"Ray: {nodes} {'node' if nodes == 1 else 'nodes'}, {cpus} CPUs"


def _check_reachable(address: str) -> None:
    """A TCP connect to ``host:port`` first: Ray itself retries an address that does not
    answer for minutes before it gives up."""
    bare = address.split("://", 1)[-1]
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"--ray-address {address}: expected HOST:PORT (the head's address, e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as exc:
        raise ExecutorError(f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
                            "`ray start --head`, or check --ray-address / RAY_ADDRESS") from None


# --- the worker side ----------------------------------------------------------------------


class _Shipper:
    """A remote piece's sink: its events kept for the command to pull, group checkpoints at
    the times a local group takes them (the states go only with those epochs), progress
    at most every :data:`~fnn_tui.runs.pool.PROGRESS_SECONDS`."""

    def __init__(self, epochs: int, put: Any) -> None:
        from fnn_tui.runs.group import CheckpointClock
        from fnn_tui.runs.pool import ProgressThrottle

        self.clock = CheckpointClock(epochs)
        self.throttle = ProgressThrottle()
        self.put = put

    def __call__(self, event: Event) -> None:
        if isinstance(event, GroupEpochFinished):
            states = {item.lane: event.state(item.lane) for item in event.lanes} if self.clock.due(event.epoch) else None
            self.put(("group", event.epoch, event.lanes, states))
        elif isinstance(event, StepProgress):
            if self.throttle(0, event):
                self.put(("event", event))
        else:
            self.put(("event", event))


class Trainer:
    """A Ray actor (one CPU) that trains one piece at a time, in a thread of its own, while
    the command pulls its events and may ask it to stop."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        self.cond = threading.Condition()
        self.messages: list[tuple[Any, ...]] = []
        self.stop_request = StopRequest()

    def _put(self, message: tuple[Any, ...]) -> None:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def train(self, piece: Any) -> None:
        from fnn_tui.runs.pool import light
        from fnn_tui.runs.task import train_piece

        self.stop_request = StopRequest()
        if piece.options.device.startswith("cuda"):
            import ray

            if ray.get_gpu_ids():  # the one GPU Ray gave this worker is its cuda:0
                piece = replace(piece, options=replace(piece.options, device="cuda:0"))
        try:
            ends = train_piece(piece, _Shipper(piece.epochs, self._put), self.stop_request)
        except Exception as exc:  # bad input found late: this piece, not the study
            self._put(("error", f"{exc.__class__.__name__}: {exc}"))
            return
        self._put(("done", [light(end) for end in ends]))

    def drain(self, timeout: float) -> list[tuple[Any, ...]]:
        """The events since the last pull, waiting up to ``timeout`` for one."""
        with self.cond:
            if not self.messages:
                self.cond.wait(timeout)
            out, self.messages = self.messages, []
            return out

    def stop(self, status: RunStatus, signum: int | None) -> None:
        self.stop_request.set(status, signum)

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


# --- the command's side -------------------------------------------------------------------


@dataclass
class _Job:
    actor: Any
    task: Task
    piece: Any
    sink: Any
    attempt: int


def _apply(sink: Any, message: tuple[Any, ...]) -> None:
    if message[0] == "group":
        _, epoch, lanes, states = message

        def state(lane: int) -> Any:
            assert states is not None
            return states[lane]

        sink(GroupEpochFinished(epoch, lanes, state), checkpoint=states is not None)
    else:
        sink(message[1])


def train_on_ray(home: Path, tasks: list[Task], on_event: OnEvent, stop: StopFlag | None = None,
                 address: str | None = None) -> Any:
    """Train ``tasks`` on Ray workers (one per CPU of the cluster, at most one per task),
    longest first; returns an :class:`fnn_tui.runs.execute.Outcome`."""
    import ray
    from ray.exceptions import RayActorError

    from fnn_tui.runs.task import prepare_piece, sink_for

    connect(address)
    resources = ray.cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    on_gpu = [t for t in tasks if _kind(t) == "gpu"]
    if on_gpu and gpus == 0:
        raise ExecutorError(f"{len(on_gpu)} {'task is' if len(on_gpu) == 1 else 'tasks are'} for a GPU "
                            f"({on_gpu[0].device}) and the Ray cluster has none: --device cpu, or --executor "
                            "local on this machine's GPU")
    queue: deque[tuple[Task, int]] = deque((t, 1) for t in sorted(tasks, key=lambda t: t.cost, reverse=True))
    classes = {
        "cpu": ray.remote(num_cpus=1, max_concurrency=4, max_restarts=0)(Trainer),
        # a GPU task's worker: one GPU of its own (Ray sets CUDA_VISIBLE_DEVICES), no CPU of
        # the count the CPU workers are made from (it mostly waits for its device)
        "gpu": ray.remote(num_cpus=0, num_gpus=1, max_concurrency=4, max_restarts=0)(Trainer),
    }
    wanted = {"cpu": min(cpus, len(tasks) - len(on_gpu)), "gpu": min(gpus, len(on_gpu))}
    idle = {kind: [classes[kind].remote() for _ in range(n)] for kind, n in wanted.items()}
    outcome = Outcome(processes=sum(wanted.values()))
    busy: dict[Any, _Job] = {}
    ended: dict[int, EndEvent] = {}
    stopping = False
    try:
        with Store(home) as store:
            while queue or busy:
                if stop is not None and stop.is_set() and not stopping:
                    stopping = True
                    status = getattr(stop, "status", RunStatus.CANCELLED)
                    for job in busy.values():
                        job.actor.stop.remote(status, getattr(stop, "signum", None))
                while not stopping and (found := _next(queue, idle)) is not None:
                    task, attempt = found
                    piece = prepare_piece(store, task)
                    actor = idle[_kind(task)].pop()
                    job = _Job(actor, task, piece, sink_for(store, piece, on_event), attempt)
                    actor.train.remote(piece)
                    busy[actor.drain.remote(DRAIN_SECONDS)] = job
                if stopping and not busy:
                    break
                if not busy:
                    if queue:  # every worker of the next task's kind was lost
                        kind = _kind(queue[0][0])
                        idle[kind].append(_replacement(classes[kind]))
                    continue
                ready, _ = ray.wait(list(busy), num_returns=1, timeout=DRAIN_SECONDS)
                for ref in ready:
                    job = busy.pop(ref)
                    try:
                        messages = ray.get(ref)
                    except RayActorError as exc:
                        queue.extendleft(reversed(_lost(store, job, exc, ended)))
                        continue
                    finished = False
                    for message in messages:
                        if message[0] == "done":
                            finished = True
                            ended.update(zip(job.piece.run_ids, message[1]))
                        elif message[0] == "error":
                            finished = True
                            _failed(store, job, message[1], ended)
                        else:
                            _apply(job.sink, message)
                    if finished:
                        idle[_kind(job.task)].append(job.actor)
                    else:
                        busy[job.actor.drain.remote(DRAIN_SECONDS)] = job
            outcome.not_started = [task for task, _ in queue]
    except BaseException:
        with Store(home) as store:
            for job in busy.values():
                job.actor.stop.remote(RunStatus.INTERRUPTED, None)
                job.sink.broken()  # interrupted at what is stored
        raise
    finally:
        for actor in [*idle["cpu"], *idle["gpu"], *(job.actor for job in busy.values())]:
            ray.kill(actor)
    order = [rid for task in tasks for rid in task.run_ids]
    outcome.results = [RecordedRun(rid, ended[rid]) for rid in order if rid in ended]
    outcome.results += [RecordedRun(rid, end) for rid, end in ended.items() if rid not in set(order)]
    return outcome


def _kind(task: Task) -> str:
    """Which workers train ``task``: ``gpu`` (a GPU of their own) for a CUDA device, else ``cpu``."""
    return "gpu" if task.device.startswith("cuda") else "cpu"


def _next(queue: deque[tuple[Task, int]], idle: dict[str, list[Any]]) -> tuple[Task, int] | None:
    """The first queued task (the longest) that an idle worker of its kind can take, taken out."""
    for index, (task, attempt) in enumerate(queue):
        if idle[_kind(task)]:
            del queue[index]
            return task, attempt
    return None


def _replacement(actor_class: Any) -> Any:
    """A new worker once every one was lost, if the cluster has room for it within a minute."""
    import ray

    actor = actor_class.remote()
    ready, _ = ray.wait([actor.node.remote()], timeout=60)
    if not ready:
        ray.kill(actor)
        raise ExecutorError("every Ray worker was lost and the cluster has no room left for a new one; "
                            "`fnn-tui run` again goes on from the stored checkpoints")
    return actor


def _lost(store: Store, job: _Job, exc: Exception, ended: dict[int, EndEvent]) -> list[tuple[Task, int]]:
    """A worker (or its node) died with ``job``'s piece: its runs interrupted at what the
    store holds, and planned again to go on from there (while attempts are left)."""
    from fnn_tui.runs.background import end_event

    job.sink.broken()
    queued, stopped = [], []
    for rid in job.piece.run_ids:
        record = store.get_run(rid)
        if record is None:
            continue
        if record.status == RunStatus.QUEUED:
            queued.append(rid)  # never started: the same again
        elif record.status.final:
            ended[rid] = end_event(record)
        else:
            stopped.append(rid)
    why = f"its Ray worker was lost ({exc.__class__.__name__})"
    if job.attempt >= MAX_ATTEMPTS:
        for rid in queued + stopped:
            store.end_run(rid, RunStatus.FAILED, message=f"{why} {job.attempt} times; `fnn-tui resume {rid}` continues it")
            record = store.get_run(rid)
            assert record is not None
            ended[rid] = end_event(record)
        return []
    again: list[tuple[Task, int]] = []
    if queued:
        again.append((task_of(store, queued, job.task.lanes_kernel), job.attempt + 1))
    where = "the beginning"
    if stopped:
        planned = plan_resume(store, stopped)
        again += [(t, job.attempt + 1) for t in planned.tasks]
        start = min(preset.training.epochs - left for preset, left in planned.todo)
        where = f"epoch {start + 1}" if start else "the beginning"
    print(f"{job.task.label}: lost its Ray worker ({exc.__class__.__name__}); goes on from {where} "
          "on another worker", file=sys.stderr, flush=True)
    return again


def _failed(store: Store, job: _Job, why: str, ended: dict[int, EndEvent]) -> None:
    """A piece that failed on its worker outside the trainer: its runs still going fail."""
    from fnn_tui.runs.background import end_event

    for rid in job.piece.run_ids:
        record = store.get_run(rid)
        if record is None:
            continue
        if record.status == RunStatus.QUEUED:
            store.forget_queued([rid])
            continue
        if record.status.active:
            store.end_run(rid, RunStatus.FAILED, message=why)
            record = store.get_run(rid)
            assert record is not None
        ended[rid] = end_event(record)

