"""Training a list of runs in the foreground: the one place that decides how they are spread.

The CLI's ``run`` (several presets, several seeds) hands its whole queue here. Today each
item is trained alone: one after the other in this process (``jobs=1``), or over a process
pool. Several seeds of one preset could instead train together in one process through the
fused engine's multi-seed kernel; that choice belongs here, behind the same call, so the
front ends do not change when it is made.
"""

from __future__ import annotations

from pathlib import Path

from fnn_tui.core.trainer import RunOptions, StopFlag
from fnn_tui.runs import OnEvent
from fnn_tui.runs.background import QueueItem
from fnn_tui.runs.record import RecordedRun, record_run, resume_run


def train_many(
    home: Path,
    items: list[QueueItem],
    options: RunOptions,
    jobs: int,
    on_event: OnEvent,
    stop: StopFlag | None = None,
) -> list[RecordedRun]:
    """Train (or resume) ``items`` and return how each ended, in the order of ``items``.

    With ``jobs`` > 1 and more than one item they go over a pool of that many processes
    (each stops on its own signals; a Ctrl-C reaches them all). Otherwise they train here
    in order, and a ``stop`` that is set ends the list after the run in progress: the
    result is then shorter than ``items``.
    """
    if jobs > 1 and len(items) > 1:
        from fnn_tui.runs.pool import run_parallel

        work = [item.resume_id if item.resume_id is not None else item.preset for item in items]
        results = run_parallel(home, work, options, min(jobs, len(items)), on_event)  # type: ignore[arg-type]
        return [RecordedRun(r.run_id, r.end) for r in results]
    done: list[RecordedRun] = []
    for item in items:
        if stop is not None and stop.is_set():
            break
        if item.resume_id is not None:
            done.append(resume_run(home, item.resume_id, on_event, stop))
        else:
            assert item.preset is not None
            done.append(record_run(home, item.preset, options, on_event, stop))
    return done
