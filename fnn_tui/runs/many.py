"""Training a list of runs in the foreground: the one place that decides how they are spread.

The CLI's ``run`` (several presets, several seeds) hands its whole queue here. New runs that
are seeds of one preset with the same settings train together, up to
:func:`~fnn_tui.core.group.default_lanes` at a time, through the fused engine's multi-seed
kernel (one seed per SIMD lane: :mod:`fnn_tui.runs.group`); the rest train alone. The work
goes one piece after the other in this process (``jobs=1``) or over a process pool.
"""

from __future__ import annotations

from pathlib import Path

from fnn_tui.core.events import RunFailed
from fnn_tui.core.presets import Preset
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
    work = pieces(items, options, studies=_studies_of(home, items))
    if jobs > 1 and len(work) > 1:
        from fnn_tui.runs.pool import run_parallel

        # the longest pieces first, so the last ones to finish are short (the pool takes
        # pieces in order as processes come free)
        work.sort(key=_cost, reverse=True)
        outcome = run_parallel(home, work, options, min(jobs, len(work)), on_event)
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
    for piece in work:
        if stop is not None and stop.is_set():
            break
        done.extend(train_piece(home, piece, options, on_event, stop))
    return done


def _cost(piece: Work) -> float:
    """A rough measure of a piece's training time: lanes x steps x parameters (resumed runs,
    whose remaining work is not known here, count as one full run of nothing: they go last)."""
    from fnn_tui.core.group import padded_lanes

    if isinstance(piece, int) or (isinstance(piece, list) and isinstance(piece[0], int)):
        return 0.0
    presets = piece if isinstance(piece, list) else [piece]
    p = presets[0]
    sizes = p.model.sizes
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    lanes = padded_lanes(len(presets)) if isinstance(piece, list) else 8  # one seed alone: no lanes
    return lanes * p.training.epochs * p.data.n_train * params


def train_piece(home: Path, piece: Work, options: RunOptions, on_event: OnEvent | None,
                stop: StopFlag | None) -> list[RecordedRun]:
    """Train one piece of work in this process: a group of seeds (new, or stopped runs to go
    on together), a run to resume or a new run."""
    if isinstance(piece, list):
        from fnn_tui.runs.group import record_group, resume_group

        if all(isinstance(p, int) for p in piece):
            return resume_group(home, piece, on_event, stop)  # type: ignore[arg-type]
        return record_group(home, piece, options, on_event, stop)  # type: ignore[arg-type]
    if isinstance(piece, int):
        return [resume_run(home, piece, on_event, stop)]
    return [record_run(home, piece, options, on_event, stop)]


Work = Preset | int | list[Preset] | list[int]
"""One piece of work: a new run, a run to resume (its id), seeds that train together (new
ones, or stopped runs that go on together)."""


def _studies_of(home: Path, items: list[QueueItem]) -> dict[int, tuple[str, str, str, int]]:
    """For each run to resume: its preset, study, engine and epochs done (what decides whether
    stopped runs can go on together)."""
    ids = [item.resume_id for item in items if item.resume_id is not None]
    if len(ids) < 2:
        return {}
    from fnn_tui.store.runs import Store

    with Store(home) as store:
        records = [store.get_run(rid) for rid in ids]
    return {r.id: (r.preset, r.study, r.engine, r.epochs_done) for r in records if r is not None}


def pieces(items: list[QueueItem], options: RunOptions, lanes: int | None = None,
           studies: dict[int, tuple[str, str, str, int]] | None = None) -> list[Work]:
    """The queue cut into pieces of work: new runs that are seeds of one preset's settings
    go together, ``lanes`` at most in a piece (groups of one train alone), and so do stopped
    fused runs of one study at the same epoch (``studies``: see :func:`_studies_of`); the
    order of first appearance is kept."""
    from fnn_tui.core.group import default_lanes
    from fnn_tui.runs.group import can_group

    lanes = lanes or default_lanes()
    studies = studies or {}
    by_study: dict[tuple[str, str], list[Preset]] = {}
    stopped: dict[tuple[str, str, str, int], list[int]] = {}
    order: list[tuple[str, str] | int | tuple[str, str, str, int]] = []
    for item in items:
        if item.resume_id is not None:
            key4 = studies.get(item.resume_id)
            if key4 is None or key4[2] != "fused":
                order.append(item.resume_id)
                continue
            if key4 not in stopped:
                stopped[key4] = []
                order.append(key4)
            stopped[key4].append(item.resume_id)
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
        if len(key) == 4:
            ids = stopped[key]  # type: ignore[index]
            for start in range(0, len(ids), lanes):
                chunk = ids[start : start + lanes]
                work.append(chunk if len(chunk) > 1 else chunk[0])
            continue
        presets = by_study[key]  # type: ignore[index]
        if not can_group(presets, options):
            work.extend(presets)
            continue
        for start in range(0, len(presets), lanes):
            chunk = presets[start : start + lanes]
            work.append(chunk if len(chunk) > 1 else chunk[0])
    return work
