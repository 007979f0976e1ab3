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

    store.set_grouped(run_ids)
    recorders = [Recorder(store, rid, run_folder(store.home, rid)) for rid in run_ids]
    live = set(range(len(run_ids)))
    last_beat = [time.monotonic()]
    last_checkpoint = [float("-inf")]

    def tell(lane: int, event: Event) -> None:
        if on_event is not None:
            on_event(run_ids[lane], event)

    def emit(event: Event) -> None:
        if isinstance(event, GroupEpochFinished):
            # checkpoints first (every few seconds, and at the last epoch: resume from an
            # older one retrains the epochs after it to the same numbers), then every
            # lane's epoch in one transaction
            now = time.monotonic()
            if now - last_checkpoint[0] >= CHECKPOINT_SECONDS or event.epoch == presets[0].training.epochs:
                for item in event.lanes:
                    recorders[item.lane].save_epoch(dataclasses.replace(item, state=event.state(item.lane)))
                last_checkpoint[0] = now
            store.add_epochs([(run_ids[item.lane], item.metrics, None if item.fit is None else encode(item.fit))
                              for item in event.lanes])
            last_beat[0] = time.monotonic()
            for item in event.lanes:
                tell(item.lane, item)
        elif isinstance(event, StepProgress):
            if time.monotonic() - last_beat[0] > HEARTBEAT_SECONDS:
                store.heartbeat([run_ids[i] for i in sorted(live)], event.epoch, event.step)
                last_beat[0] = time.monotonic()
            for lane in sorted(live):
                tell(lane, event)
        elif isinstance(event, (RunStarted, EndEvent)):  # a lane's epochs come in the group's event
            recorders[event.lane](event)
            if isinstance(event, EndEvent):
                live.discard(event.lane)
            tell(event.lane, event)

    try:
        ends = train_lanes(presets, options, emit, stop_event, resume)
    except BaseException:
        mark_interrupted(store, run_ids)  # an interrupt (Ctrl-C) or a crash below the trainer
        raise
    return [RecordedRun(rid, end) for rid, end in zip(run_ids, ends)]

