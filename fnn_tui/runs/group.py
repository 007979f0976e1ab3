"""Runs trained together (one SIMD lane each: seeds of one study, or of several presets or
variants that share the kernel) and kept as separate runs.

:func:`fnn_tui.core.group.train_lanes` steps K lanes in one kernel call; here each lane is
an ordinary stored run, with its own row, epochs, checkpoints and status, so it can be
listed, stopped, resumed (on this kernel again, so the numbers are an uninterrupted run's)
and reported like any other. The per-epoch work is per group: the lanes' epochs go into
the store in one transaction and their heartbeats in one more, and the checkpoints are
written every few seconds rather than every epoch (see :data:`CHECKPOINT_SECONDS`).
"""

from __future__ import annotations

import dataclasses
import time

from fnn_tui.core.events import (
    EndEvent,
    Event,
    GroupEpochFinished,
    RunStarted,
    StepProgress,
)
from fnn_tui.core.grid import encode
from fnn_tui.core.presets import Preset
from fnn_tui.core.state import TrainState
from fnn_tui.core.trainer import RunOptions, StopFlag
from fnn_tui.runs import OnEvent
from fnn_tui.runs.record import HEARTBEAT_SECONDS, RecordedRun, Recorder, mark_interrupted
from fnn_tui.store.runs import Store, run_folder

# A group writes K checkpoints an epoch (each fsynced): every epoch, that cost ~20 ms an
# epoch for 10 lanes, as much as exp01's kernel time. Every few seconds is enough: a run
# killed between two resumes from the older checkpoint and retrains the epochs after it,
# to the same numbers (the store's rows of those epochs are replaced).
CHECKPOINT_SECONDS = 5.0


def record_lanes(
    store: Store,
    run_ids: list[int],
    presets: list[Preset],
    options: RunOptions,
    on_event: OnEvent | None,
    stop_event: StopFlag | None,
    resume: list[TrainState | None] | None,
) -> list[RecordedRun]:
    """Train stored runs ``run_ids`` (one lane key, claimed and at one position:
    ``resume`` holds each one's checkpoint, ``None`` when all start from the beginning) as
    lanes of one kernel call, with every event written to the store."""
    from fnn_tui.core.group import train_lanes

    sink = LanesSink(store, run_ids, presets, on_event)
    try:
        ends = train_lanes(presets, options, sink, stop_event, resume)
    except BaseException:
        sink.broken()  # an interrupt (Ctrl-C) or a crash below the trainer
        raise
    return [RecordedRun(rid, end) for rid, end in zip(run_ids, ends)]


class CheckpointClock:
    """When a group's epoch is checkpointed: every :data:`CHECKPOINT_SECONDS`, and at the
    last epoch. A remote worker asks the same clock which epochs' states to send back."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.last = float("-inf")

    def due(self, epoch: int) -> bool:
        now = time.monotonic()
        if now - self.last >= CHECKPOINT_SECONDS or epoch == self.epochs:
            self.last = now
            return True
        return False


class LanesSink:
    """Where a group's events go, wherever it trains: each lane's run in the store (one
    transaction per group epoch, checkpoints when the :class:`CheckpointClock` says), then
    ``on_event``. The trainer calls it here; the Ray executor feeds it what a remote worker
    sent back, saying itself which epochs carry checkpoints."""

    def __init__(self, store: Store, run_ids: list[int], presets: list[Preset], on_event: OnEvent | None) -> None:
        store.set_grouped(run_ids)
        self.store, self.run_ids, self.on_event = store, run_ids, on_event
        self.recorders = [Recorder(store, rid, run_folder(store.home, rid)) for rid in run_ids]
        self.live = set(range(len(run_ids)))
        self.last_beat = time.monotonic()
        self.clock = CheckpointClock(presets[0].training.epochs)

    def tell(self, lane: int, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(self.run_ids[lane], event)

    def __call__(self, event: Event, checkpoint: bool | None = None) -> None:
        """Store ``event``; a group epoch is checkpointed when ``checkpoint`` says (``None``:
        when the clock says)."""
        store, run_ids = self.store, self.run_ids
        if isinstance(event, GroupEpochFinished):
            # checkpoints first (every few seconds, and at the last epoch: resume from an
            # older one retrains the epochs after it to the same numbers), then every
            # lane's epoch in one transaction
            if checkpoint if checkpoint is not None else self.clock.due(event.epoch):
                for item in event.lanes:
                    self.recorders[item.lane].save_epoch(dataclasses.replace(item, state=event.state(item.lane)))
            store.add_epochs([(run_ids[item.lane], item.metrics, None if item.fit is None else encode(item.fit))
                              for item in event.lanes])
            self.last_beat = time.monotonic()
            for item in event.lanes:
                self.tell(item.lane, item)
        elif isinstance(event, StepProgress):
            if time.monotonic() - self.last_beat > HEARTBEAT_SECONDS:
                store.heartbeat([run_ids[i] for i in sorted(self.live)], event.epoch, event.step)
                self.last_beat = time.monotonic()
            for lane in sorted(self.live):
                self.tell(lane, event)
        elif isinstance(event, (RunStarted, EndEvent)):  # a lane's epochs come in the group's event
            self.recorders[event.lane](event)
            if isinstance(event, EndEvent):
                self.live.discard(event.lane)
            self.tell(event.lane, event)

    def broken(self) -> None:
        """Training ended with an exception: the lanes still running are interrupted."""
        mark_interrupted(self.store, self.run_ids)
