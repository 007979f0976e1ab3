"""Several seeds of one preset trained together (one SIMD lane each) and kept as separate runs.

:func:`fnn_tui.core.group.train_group` steps K seeds in one kernel call; here each lane is
an ordinary stored run, with its own row, epochs, checkpoints and status, so it can be
listed, stopped, resumed (alone, by the single-seed engine: the checkpoints are the same)
and reported like any other. The per-epoch work is per group: the lanes' epochs go into
the store in one transaction and their heartbeats in one more, and the checkpoints are
written every few seconds rather than every epoch (see :data:`CHECKPOINT_SECONDS`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

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
from fnn_tui.core.trainer import RunOptions, StopFlag, resolve
from fnn_tui.runs import OnEvent
from fnn_tui.runs.record import HEARTBEAT_SECONDS, RecordedRun, Recorder, mark_interrupted
from fnn_tui.store.runs import Store, run_folder

# A group writes K checkpoints an epoch (each fsynced): every epoch, that cost ~20 ms an
# epoch for 10 lanes, as much as exp01's kernel time. Every few seconds is enough: a run
# killed between two resumes from the older checkpoint and retrains the epochs after it,
# to the same numbers (the store's rows of those epochs are replaced).
CHECKPOINT_SECONDS = 5.0


def can_group(presets: list[Preset], options: RunOptions) -> bool:
    """Whether these runs can train as one group: two or more seeds of the same settings on
    the fused engine on the CPU."""
    if len(presets) < 2:
        return False
    first = presets[0]
    if any(p.name != first.name or p.study_digest() != first.study_digest() for p in presets):
        return False
    if len({p.data.seed for p in presets}) != len(presets):
        return False
    run = resolve(first, options)
    return run.engine == "fused" and run.device == "cpu"


def record_group(
    home: Path,
    presets: list[Preset],
    options: RunOptions,
    on_event: OnEvent | None = None,
    stop_event: StopFlag | None = None,
) -> list[RecordedRun]:
    """Train the seeds ``presets`` (one preset's settings, one seed each; :func:`can_group`)
    together, each stored as its own run; return how each ended, in order."""
    resolved = resolve(presets[0], options)
    options = RunOptions(resolved.device, resolved.engine)
    with Store(home) as store:
        run_ids = [store.create_run(p, engine=resolved.engine, device=resolved.device) for p in presets]
        return _train_lanes(store, run_ids, presets, options, on_event, stop_event, None)


def train_queued_group(
    home: Path,
    run_ids: list[int],
    on_event: OnEvent | None = None,
    stop_event: StopFlag | None = None,
) -> list[RecordedRun]:
    """Train runs queued in the store (by a background process's launch), seeds of one
    preset's settings, together."""
    from fnn_tui.runs.record import stored_preset

    with Store(home) as store:
        records = [store.get_run(rid) for rid in run_ids]
        assert all(r is not None for r in records)
        presets = [stored_preset(r) for r in records]  # type: ignore[arg-type]
        options = RunOptions(records[0].device, records[0].engine)  # type: ignore[union-attr]
        return _train_lanes(store, run_ids, presets, options, on_event, stop_event, None)


def resume_group(
    home: Path,
    run_ids: list[int],
    on_event: OnEvent | None = None,
    stop_event: StopFlag | None = None,
) -> list[RecordedRun]:
    """Continue stopped runs of one study together, from their checkpoints, as the group they
    were (the same lanes, so the numbers are an uninterrupted group's); runs that cannot join
    (other settings, another position) are resumed one by one."""
    from fnn_tui.runs.record import prepare_resume, resume_run

    with Store(home) as store:
        prepared = [prepare_resume(store, rid) for rid in run_ids]
        records = [p[0] for p in prepared]
        presets = [p[1] for p in prepared]
        states = [p[2] for p in prepared]
        positions = {None if st is None else (st.epoch, st.step) for st in states}
        resolved = resolve(presets[0], RunOptions(records[0].device, records[0].engine))
        options = RunOptions(resolved.device, resolved.engine)
        together = len(positions) == 1 and can_group(presets, options)
        if together:
            return _resume_lanes(store, records, presets, states, options, on_event, stop_event)
    return [resume_run(home, rid, on_event, stop_event) for rid in run_ids]


def _resume_lanes(store: Store, records: list, presets: list[Preset], states: list[TrainState | None],
                  options: RunOptions, on_event: OnEvent | None, stop_event: StopFlag | None) -> list[RecordedRun]:
    from fnn_tui.runs.record import take_for_resume

    for record, state in zip(records, states):
        take_for_resume(store, record, state, options.device)
    resume = None if states[0] is None else states
    return _train_lanes(store, [r.id for r in records], presets, options, on_event, stop_event, resume)


def _train_lanes(
    store: Store,
    run_ids: list[int],
    presets: list[Preset],
    options: RunOptions,
    on_event: OnEvent | None,
    stop_event: StopFlag | None,
    resume: list[TrainState | None] | None,
) -> list[RecordedRun]:
    """Train the lanes of stored runs ``run_ids`` with every event written to the store."""
    from fnn_tui.core.group import train_group

    seeds = [p.data.seed for p in presets]
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
        ends = train_group(presets[0], seeds, options, emit, stop_event, resume)
    except BaseException:
        mark_interrupted(store, run_ids)  # an interrupt (Ctrl-C) or a crash below the trainer
        raise
    return [RecordedRun(rid, end) for rid, end in zip(run_ids, ends)]

