"""Training a list of runs in the foreground: the one place that decides how they are spread.

The CLI's ``run`` (several presets, several seeds) hands its whole queue here. Today each
item is trained alone: one after the other in this process (``jobs=1``), or over a process
pool. Several seeds of one preset could instead train together in one process through the
fused engine's multi-seed kernel; that choice belongs here, behind the same call, so the
front ends do not change when it is made.
"""

from __future__ import annotations

from pathlib import Path

from fnn_tui.core.events import RunFailed
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest
from fnn_tui.core.trainer import RunOptions, StopFlag
from fnn_tui.runs import OnEvent
from fnn_tui.runs.background import QueueItem
from fnn_tui.runs.record import RecordedRun, ResumeError, record_run, resume_run


def train_many(
    home: Path,
    items: list[QueueItem],
    options: RunOptions,
    jobs: int,
    on_event: OnEvent,
    stop: StopFlag | None = None,
) -> list[RecordedRun]:
    """Train (or resume) ``items`` and return how each ended, in the order of ``items``.

    With ``jobs`` > 1 and more than one item they go over a pool of that many processes,
    which forwards a stop signal to every one of them and sets ``stop`` with it once they
    have all stored their runs and ended (the result then lacks the items not started). Otherwise they train here
    in order, and a ``stop`` that is set ends the list after the run in progress: the
    result is then shorter than ``items``.
    """
    if jobs > 1 and len(items) > 1:
        from fnn_tui.runs.pool import run_parallel

        work = [item.resume_id if item.resume_id is not None else item.preset for item in items]
        outcome = run_parallel(home, work, options, min(jobs, len(items)), on_event)  # type: ignore[arg-type]
        if outcome.signum is not None and isinstance(stop, StopRequest):  # the pool had the signal
            stop.set(RunStatus.INTERRUPTED, outcome.signum)
        done = [RecordedRun(r.run_id, r.end) for r in outcome.results]
        # a run whose worker failed outside the trainer, or died: failed, with why
        done += [RecordedRun(x.run_id, RunFailed(x.reason, 0.0)) for x in outcome.lost if x.run_id is not None]
        unrecorded = [f"{x.preset}: {x.reason}" for x in outcome.lost if x.run_id is None]
        if unrecorded and not done:  # nothing trained at all: the reason is the answer
            raise ResumeError(unrecorded[0])
        return done
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
