"""The bodies of the app's training worker: launch a background process, or reattach to runs
already going, and follow them through the store. They run in a thread and only post
messages; training itself happens in the background process, which outlives the app."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from fnn_tui.core.events import Event
from fnn_tui.runs.background import follow_many, launch
from fnn_tui.runs.liveness import reap
from fnn_tui.runs.plan import Task
from fnn_tui.store.runs import Store
from fnn_tui.tui.messages import Following, QueueEnded, RunEvent

Post = Callable[[Message], object]


def _follow_all(home: Path, run_ids: list[int], post: Post, detach: threading.Event,
                process: subprocess.Popen[bytes] | None) -> None:
    def on_event(run_id: int, event: Event) -> None:
        post(RunEvent(run_id, event))

    follow_many(home, run_ids, on_event, detach.is_set, process)


def run_tasks(home: Path, tasks: list[Task], post: Post, detach: threading.Event, *, executor: str = "local",
              address: str | None = None) -> None:
    """Start a background process for the planned tasks (over the cores, as ``run --jobs 0``
    trains, or on Ray) and follow their runs until they end or the app lets go."""
    try:
        launched = launch(home, tasks, os.cpu_count() or 1, executor=executor, address=address)
        post(Following(launched.run_ids))
        _follow_all(home, launched.run_ids, post, detach, launched.process)
    finally:
        post(QueueEnded())


def reattach(home: Path, post: Post, detach: threading.Event) -> None:
    """Follow the runs that are queued or training in the store (from an earlier session);
    ends with :class:`QueueEnded` either way, so the app knows it is free."""
    try:
        with Store(home) as store:
            reap(store)
            active = [r.id for r in store.active_runs()]
        if not active:
            return
        post(Following(active))
        _follow_all(home, active, post, detach, None)
    finally:
        post(QueueEnded())
