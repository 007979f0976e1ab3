"""Seeds as a dimension of a request: which seeds to train, and which of them are still to do.

``fnn-tui run exp08 --seeds 10`` and the app's seeds field name a list of seeds; each seed
is an ordinary stored run of ``preset.with_overrides(seed=s)``. Asking again must not train
again what is already there, so :func:`plan_seeds` looks at the store first: a seed whose
run with the same settings (the same ``study``, the settings hash without the seed) has
finished or diverged is done (a diverged run is a real outcome of the recipe); one that is
queued or training is left to its process; a stopped one (interrupted, crashed, cancelled
or failed) is resumed; the rest are started. The CLI and the app both plan here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fnn_tui.core.presets import MAX_SEED, Preset
from fnn_tui.core.status import RESUMABLE, RunStatus
from fnn_tui.runs.background import QueueItem
from fnn_tui.runs.liveness import reap
from fnn_tui.runs.record import prepare_resume
from fnn_tui.store.runs import Store

MAX_SEEDS = 1000  # one request; far above the 10 seeds the reproduction study uses

_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


class SeedsError(ValueError):
    """A seeds text that cannot be read; the message is one line saying what is accepted."""


def parse_seeds(text: str) -> list[int]:
    """Read ``N`` (seeds 0..N-1), a list ``3,7,11``, a range ``0-9``, or a mix of lists and
    ranges (``0-4,10``); the seeds come back sorted, each once."""
    text = text.strip()
    accepted = "give N (seeds 0..N-1), a list such as 3,7,11 or a range such as 0-9"
    if not text:
        raise SeedsError(f"no seeds given: {accepted}")
    if text.isdigit() and "," not in text:
        count = int(text)
        if not 1 <= count <= MAX_SEEDS:
            raise SeedsError(f"--seeds {text}: the number of seeds must be from 1 to {MAX_SEEDS}")
        return list(range(count))
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = _RANGE.match(part)
        if match:
            low, high = int(match[1]), int(match[2])
            if low > high:
                raise SeedsError(f"--seeds {text}: the range {part} runs backwards; write {high}-{low}")
            if high - low + 1 > MAX_SEEDS:
                raise SeedsError(f"--seeds {text}: at most {MAX_SEEDS} seeds at once")
            seeds.update(range(low, high + 1))
        elif part.isdigit():
            seeds.add(int(part))
        else:
            raise SeedsError(f"--seeds {text}: cannot read {part!r}; {accepted}")
        if len(seeds) > MAX_SEEDS:
            raise SeedsError(f"--seeds {text}: at most {MAX_SEEDS} seeds at once")
    too_big = [s for s in seeds if s > MAX_SEED]
    if too_big:
        raise SeedsError(f"--seeds {text}: seed {too_big[0]} is above the largest seed, {MAX_SEED}")
    return sorted(seeds)


@dataclass
class Plan:
    """What a request for some seeds of some presets comes to."""

    todo: list[QueueItem] = field(default_factory=list)  # new runs and resumptions, in order
    done: list[int] = field(default_factory=list)  # run ids of seeds already finished or diverged
    active: list[int] = field(default_factory=list)  # run ids of seeds queued or training elsewhere
    resumed: list[int] = field(default_factory=list)  # run ids among ``todo`` that continue

    def summary(self) -> str:
        """One line: what is skipped, and why (empty when nothing is)."""
        parts = []
        if self.done:
            parts.append(f"{len(self.done)} {'seed' if len(self.done) == 1 else 'seeds'} done with these settings")
        if self.active:
            parts.append(f"{len(self.active)} training now")
        if self.resumed:
            parts.append(f"resuming {len(self.resumed)} stopped (run {', '.join(map(str, self.resumed))})")
        return "; ".join(parts)


def plan_seeds(store: Store, presets: list[Preset], seeds: list[int]) -> Plan:
    """The queue that trains every seed of every preset that is not done yet.

    ``presets`` carry their overrides (epochs, samples) already; the seed is set here. The
    engine is not part of "the same settings": the report puts every engine's runs of a
    study in one row, so a seed done with either engine is done.
    """
    plan = Plan()
    reap(store)
    for preset in presets:
        runs = store.list_runs(preset.name)  # newest first
        for seed in seeds:
            run = preset.with_overrides(seed=seed)
            study = run.study_digest()
            same = [r for r in runs if r.study == study and r.seed == seed]
            final = next((r for r in same if r.status in (RunStatus.FINISHED, RunStatus.DIVERGED)), None)
            if final is not None:
                plan.done.append(final.id)
                continue
            going = next((r for r in same if r.status.active), None)
            if going is not None:
                plan.active.append(going.id)
                continue
            resumable = None
            for record in (r for r in same if r.status in RESUMABLE):
                try:
                    prepare_resume(store, record.id)
                except ValueError:
                    continue  # no usable checkpoint: this one cannot go on, a new run can
                resumable = record.id
                break
            if resumable is not None:
                plan.todo.append(QueueItem(resume_id=resumable))
                plan.resumed.append(resumable)
            else:
                plan.todo.append(QueueItem(preset=run))
    return plan
