"""Several seeds of one preset trained together (one SIMD lane each) and kept as separate runs.

:func:`fnn_tui.core.group.train_group` steps K seeds in one kernel call; here each lane is
an ordinary stored run, with its own row, epochs, checkpoints and status, so it can be
listed, stopped, resumed (alone, by the single-seed engine: the checkpoints are the same)
and reported like any other. The per-epoch work is per group: the lanes' epochs go into
the store in one transaction and their heartbeats in one more.
"""

from __future__ import annotations

import time
from pathlib import Path

from fnn_tui.core.events import (
    EndEvent,
    EpochFinished,
    Event,
    GroupEpochFinished,
    RunStarted,
    StepProgress,
    end_status,
)
from fnn_tui.core.grid import encode
from fnn_tui.core.presets import Preset
from fnn_tui.core.state import save_checkpoint
from fnn_tui.core.status import RunStatus
from fnn_tui.core.trainer import RunOptions, StopFlag, resolve
from fnn_tui.runs import OnEvent
from fnn_tui.runs.record import HEARTBEAT_SECONDS, RecordedRun, Recorder
from fnn_tui.store.runs import Store


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
    from fnn_tui.core.group import train_group

    resolved = resolve(presets[0], options)
    options = RunOptions(resolved.device, resolved.engine)
    seeds = [p.data.seed for p in presets]
    with Store(home) as store:
        run_ids = [store.create_run(p, engine=resolved.engine, device=resolved.device) for p in presets]
        records = [store.get_run(rid) for rid in run_ids]
        recorders = [Recorder(store, rid, r.folder) for rid, r in zip(run_ids, records) if r is not None]
        live = set(range(len(run_ids)))
        last_beat = [time.monotonic()]

        def tell(lane: int, event: Event) -> None:
            if on_event is not None:
                on_event(run_ids[lane], event)

        def emit(event: Event) -> None:
            if isinstance(event, GroupEpochFinished):
                # checkpoints first, then every lane's epoch in one transaction
                for item in event.lanes:
                    assert item.state is not None
                    save_checkpoint(item.state, recorders[item.lane].checkpoint)
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
            elif isinstance(event, (RunStarted, EpochFinished)) or isinstance(event, EndEvent):
                recorders[event.lane](event)
                if isinstance(event, EndEvent):
                    live.discard(event.lane)
                tell(event.lane, event)

        try:
            ends = train_group(presets[0], seeds, options, emit, stop_event)
        except BaseException:
            # an interrupt (Ctrl-C) or a crash below the trainer: keep what was finished
            for rid in run_ids:
                now = store.get_run(rid)
                if now is not None and now.status == RunStatus.RUNNING:
                    store.end_run(rid, RunStatus.INTERRUPTED, message="interrupted; `fnn-tui resume` continues it")
            raise
    return [RecordedRun(rid, end) for rid, end in zip(run_ids, ends)]


def summary(results: list[RecordedRun]) -> str:
    """``3 finished, 1 diverged``: how a group's runs ended."""
    counts: dict[str, int] = {}
    for r in results:
        label = end_status(r.end).label
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n} {label}" for label, n in counts.items())
