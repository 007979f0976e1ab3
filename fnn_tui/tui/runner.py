"""The bodies of the app's training worker: launch a background batch, or reattach to runs
already going, and follow them through the store. They run in a thread and only post
messages; training itself happens in the background process, which outlives the app."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from fnn_tui.core.trainer import RunOptions
from fnn_tui.store.background import QueueItem, Update, follow, launch
from fnn_tui.store.runs import Store
from fnn_tui.tui.messages import (
    EpochDone,
    Following,
    QueueEnded,
    StepAdvanced,
    TrainingEnded,
    TrainingStarted,
)

Post = Callable[[Message], object]


def _follow_one(home: Path, run_id: int, index: int, size: int, post: Post, detach: threading.Event,
                process: subprocess.Popen[bytes] | None) -> None:
    def on_update(update: Update) -> None:
        r = update.record
        if update.kind == "started":
            post(TrainingStarted(run_id, r.preset, r.engine, r.device, r.epochs_total, r.steps_per_epoch,
                                 index, size, list(update.history)))
        elif update.kind == "step":
            post(StepAdvanced(run_id, update.epoch, update.step, r.steps_per_epoch))
        elif update.kind == "epoch" and update.metrics is not None:
            post(EpochDone(run_id, update.metrics, r.epochs_total))
        elif update.kind == "ended":
            if r.status == "finished":
                message = f"{r.epochs_done} epochs in {r.wall_seconds or 0:.1f} s"
            else:
                message = r.message or r.status
            post(TrainingEnded(run_id, r.preset, r.status, message))

    follow(home, run_id, on_update, detach.is_set, process)


def run_batch(home: Path, items: list[QueueItem], options: RunOptions, post: Post, detach: threading.Event) -> None:
    """Start a background batch and follow its runs until they end or the app lets go."""
    try:
        launched = launch(home, items, options)
        post(Following(launched.run_ids))
        for index, run_id in enumerate(launched.run_ids):
            if detach.is_set():
                break
            _follow_one(home, run_id, index, len(launched.run_ids), post, detach, launched.process)
    finally:
        post(QueueEnded())


def reattach(home: Path, post: Post, detach: threading.Event) -> None:
    """Follow the runs that are queued or training in the store (from an earlier session);
    ends with :class:`QueueEnded` either way, so the app knows it is free."""
    try:
        with Store(home) as store:
            store.mark_stale_as_crashed()
            active = [r.id for r in store.active_runs()]
        if not active:
            return
        post(Following(active))
        for index, run_id in enumerate(active):
            if detach.is_set():
                break
            _follow_one(home, run_id, index, len(active), post, detach, None)
    finally:
        post(QueueEnded())
