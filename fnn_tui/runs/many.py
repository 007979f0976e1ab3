"""Training a list of runs in the foreground: the one place that decides how they are spread.

The CLI's ``run`` (several presets, several seeds) hands its whole queue here. New runs that
are seeds of one preset with the same settings train together, up to
:func:`~fnn_tui.core.group.default_lanes` at a time, through the fused engine's multi-seed
kernel (one seed per SIMD lane: :mod:`fnn_tui.runs.group`); the rest train alone. The work
goes one piece after the other in this process (``jobs=1``) or over a process pool.
"""

from __future__ import annotations

from pathlib import Path

from fnn_tui.core.presets import Preset
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
    for work in pieces(items, options):
        if stop is not None and stop.is_set():
            break
        if isinstance(work, list):
            from fnn_tui.runs.group import record_group

            done.extend(record_group(home, work, options, on_event, stop))
        elif isinstance(work, int):
            done.append(resume_run(home, work, on_event, stop))
        else:
            done.append(record_run(home, work, options, on_event, stop))
    return done


Work = Preset | int | list[Preset]
"""One piece of work: a new run, a run to resume (its id), or seeds that train together."""


def pieces(items: list[QueueItem], options: RunOptions, lanes: int | None = None) -> list[Work]:
    """The queue cut into pieces of work: new runs that are seeds of one preset's settings
    go together, ``lanes`` at most in a piece (groups of one train alone); the order of
    first appearance is kept."""
    from fnn_tui.core.group import default_lanes
    from fnn_tui.runs.group import can_group

    lanes = lanes or default_lanes()
    by_study: dict[tuple[str, str], list[Preset]] = {}
    order: list[tuple[str, str] | int] = []
    for item in items:
        if item.resume_id is not None:
            order.append(item.resume_id)
            continue
        assert item.preset is not None
        key = (item.preset.name, item.preset.study_digest())
        if key not in by_study:
            by_study[key] = []
            order.append(key)
        by_study[key].append(item.preset)
    work: list[Work] = []
    for key in order:
        if isinstance(key, int):
            work.append(key)
            continue
        presets = by_study[key]
        if not can_group(presets, options):
            work.extend(presets)
            continue
        for start in range(0, len(presets), lanes):
            chunk = presets[start : start + lanes]
            work.append(chunk if len(chunk) > 1 else chunk[0])
    return work
