"""Which stored runs make up each preset's study, for the report (and its figures).

A study is the runs of one preset with the same settings but the seed (the store's
``study`` column, :meth:`~fnn_tui.core.presets.Preset.study_digest`). Which study stands
for a preset:

1. the study of the preset's **current** settings (the catalog's file), when the store
   has any run of it;
2. otherwise the study of the preset's **newest run** made with its settings but the
   overrides (``--epochs 3 --samples 300``), so such a study is still reported; runs with
   other settings changed (the controlled variants of ``fnn-tui claims``, stored under the
   base preset's name) stand for it only when no such run exists; its row then says how its settings
   differ from the preset's (:attr:`StudyRuns.differs`, e.g. "samples=300, epochs=3");
3. a preset with no run at all still gets its row, with no runs.

Presets the store knows but the catalog does not (a TOML file run by path) are reported
from their newest run's study as well. Excluded runs (``fnn-tui runs exclude``) never pick
a study; they are listed beside it, never counted.

**One run per seed.** Inside a study each seed counts once (:func:`seed_roles`, the one
rule, used by the report, its figures, ``fnn-tui plot``, the runs list and the app): of the
runs with the same settings and seed that are not excluded, the **newest finished or
diverged** one is counted (both are outcomes of the recipe, and a repeat made on purpose,
``run --again``, is made to replace the older run); a seed with no such run counts its
newest run (stopped or still going: the report leaves it out and says so). Every other run
of that seed is a *duplicate*: shown as one, listed under the report, never counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from fnn_tui.core.catalog import Catalog
from fnn_tui.core.presets import Preset, PresetError, parse_preset, preset_to_dict
from fnn_tui.core.status import RunStatus
from fnn_tui.core.variants import difference
from fnn_tui.report.reproduction import Outcome, Study
from fnn_tui.store.runs import RunRecord, Store

_OUTCOMES = (RunStatus.FINISHED, RunStatus.DIVERGED)


class Role(str, Enum):
    """What a run is to its study (the rule is in the module docstring)."""

    COUNTED = "counted"
    DUPLICATE = "duplicate"  # another run of the same settings and seed is counted instead
    EXCLUDED = "excluded"  # the user left it out

    @property
    def label(self) -> str:
        """The word shown beside a run's status ("" for a counted run)."""
        return "" if self is Role.COUNTED else self.value


@dataclass(frozen=True)
class SeedRole:
    """A run's role in its study; for a duplicate, ``counted`` is the run counted for its seed."""

    role: Role
    counted: int | None = None


def _preference(record: RunRecord) -> tuple[int, int]:
    # an outcome (finished or diverged) first, then the newest (ids only grow)
    return (1 if record.status in _OUTCOMES else 0, record.id)


def seed_roles(records: Iterable[RunRecord]) -> dict[int, SeedRole]:
    """Every run's role: counted, duplicate (of which run) or excluded; the one rule by which a
    study counts each (settings, seed) once."""
    roles: dict[int, SeedRole] = {}
    by_seed: dict[tuple[str, int], list[RunRecord]] = {}
    for r in records:
        if r.excluded:
            roles[r.id] = SeedRole(Role.EXCLUDED)
        else:
            by_seed.setdefault((r.study, r.seed), []).append(r)
    for same in by_seed.values():
        counted = max(same, key=_preference)
        for r in same:
            roles[r.id] = SeedRole(Role.COUNTED) if r is counted else SeedRole(Role.DUPLICATE, counted.id)
    return roles


def counted_runs(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The runs a study counts, one per seed, oldest seed first."""
    records = list(records)
    roles = seed_roles(records)
    return sorted((r for r in records if roles[r.id].role is Role.COUNTED), key=lambda r: (r.seed, r.id))


def pick_study(records: list[RunRecord], preset: Preset | None) -> tuple[str, bool] | None:
    """The study hash that stands for a preset's runs (newest first), and whether it is the
    preset's own settings; ``None`` when there are no runs. Excluded runs pick nothing while
    any other run exists."""
    candidates = [r for r in records if not r.excluded] or records
    if not candidates:
        return None
    if preset is not None:
        wanted = preset.study_digest()
        if any(r.study == wanted for r in candidates):
            return wanted, True
        # the runs of a variant (another learning rate, say) are stored under the preset's
        # name too: they stand for it only when no study made with its settings but the
        # overrides (epochs, samples) exists
        for record in candidates:
            stored = _stored(record)
            if stored is not None and overrides_only(preset, stored):
                return record.study, False
    return candidates[0].study, False

# the sections that change what a run computes; [experiment] and [reported] are words and numbers about it
_TRAINING_SECTIONS = ("data", "model", "training")


@dataclass(frozen=True)
class StudyRuns:
    """One preset's study: the preset its settings come from, its counted runs (one per seed) and
    the :class:`~fnn_tui.report.reproduction.Study` the report is made from."""

    preset: Preset
    records: tuple[RunRecord, ...]
    study: Study
    differs: str = ""  # how the runs' settings differ from the catalog preset's; "" when they do not
    study_hash: str = ""  # the study's settings hash ("" when the preset has no runs)


def outcome(record: RunRecord) -> Outcome:
    """A stored run as the report sees it: how it ended and its last epoch's metrics."""
    f = record.final
    return Outcome(
        run_id=record.id, seed=record.seed, status=record.status.value, dead=bool(f is not None and f.dead),
        train_loss=f.train_loss if f else None, train_ratio=f.train_ratio if f else None,
        test_loss=f.test_loss if f else None, test_ratio=f.test_ratio if f else None,
        epochs_done=record.epochs_done, epochs_total=record.epochs_total, diverged_epoch=record.diverged_epoch,
    )


def differences(current: Preset, used: Preset) -> str:
    """What ``used`` changes against ``current``, in the words of ``--set`` ("lr=0.05,
    epochs=3"; :func:`fnn_tui.core.variants.difference`), the seed left out."""
    diff = difference(current, used)
    if not diff and preset_to_dict(current) != preset_to_dict(used):
        return "an earlier version of the preset file (same training settings)"
    return diff


def variant_names(catalog: Catalog, records: Iterable[RunRecord]) -> dict[int, str]:
    """Each run's difference to the catalog's preset of its name ("lr=0.05"; "" for a run
    of the preset itself, or of a preset the catalog no longer has): what the runs list,
    the results table and the app put after the preset's name."""
    known = {p.name: p for p in catalog.valid()}
    names: dict[int, str] = {}
    seen: dict[tuple[str, str], str] = {}
    for record in records:
        base = known.get(record.preset)
        if base is None:
            names[record.id] = ""
            continue
        cache = (record.preset, record.study)
        if cache not in seen:
            stored = _stored(record)
            seen[cache] = difference(base, stored) if stored is not None else ""
        names[record.id] = seen[cache]
    return names


def _stored(record: RunRecord) -> Preset | None:
    try:
        return parse_preset(record.preset_toml, source=f"run {record.id}", name=record.preset)
    except PresetError:
        return None


# what `--epochs` and `--samples` change: a study made with them still stands for its preset
OVERRIDE_KEYS = (("data", "samples"), ("training", "epochs"))


def overrides_only(current: Preset, used: Preset) -> bool:
    """Whether ``used`` differs from ``current`` in the CLI's overrides only (epochs, samples,
    and the seed), not in other settings (a controlled variant of ``fnn-tui claims``)."""
    a, b = preset_to_dict(current), preset_to_dict(used)
    for section in _TRAINING_SECTIONS:
        for key in set(a[section]) | set(b[section]):
            if (section, key) not in (*OVERRIDE_KEYS, ("data", "seed")) and a[section].get(key) != b[section].get(key):
                return False
    return True


def _study_of(preset: Preset, records: list[RunRecord], *, known: bool) -> StudyRuns:
    picked = pick_study(records, preset)
    used, differs = preset, ""
    chosen: list[RunRecord] = []
    if picked is not None:
        study_hash, own = picked
        chosen = [r for r in records if r.study == study_hash]
        if not own:
            stored = _stored(next(r for r in chosen if not r.excluded) if any(not r.excluded for r in chosen)
                             else chosen[0])
            if stored is not None:
                used = stored
                differs = differences(preset, stored) if known else ""
    roles = seed_roles(chosen)
    counted = sorted((r for r in chosen if roles[r.id].role is Role.COUNTED), key=lambda r: (r.seed, r.id))
    duplicates = tuple(sorted((r.id, r.seed, roles[r.id].counted or 0) for r in chosen
                              if roles[r.id].role is Role.DUPLICATE))
    excluded = tuple(sorted(r.id for r in chosen if roles[r.id].role is Role.EXCLUDED))
    study = Study(
        name=preset.name, number=preset.experiment.number, setting=used.setting(), notes=preset.reported,
        outcomes=tuple(outcome(r) for r in counted), differs=differs, duplicates=duplicates, excluded=excluded,
    )
    return StudyRuns(preset=used, records=tuple(counted), study=study, differs=differs,
                     study_hash=picked[0] if picked else "")


def load_studies(store: Store, catalog: Catalog, presets: list[str] | None = None) -> list[StudyRuns]:
    """One study per preset (of ``presets``, names as the catalog spells them; every preset
    when ``None``), by experiment number; the rules are in the module docstring."""
    by_name: dict[str, list[RunRecord]] = {}
    for record in store.list_runs():  # newest first
        by_name.setdefault(record.preset, []).append(record)
    result = []
    known = {p.name: p for p in catalog.valid()}
    for name, preset in known.items():
        if presets is None or name in presets:
            result.append(_study_of(preset, by_name.get(name, []), known=True))
    for name, records in by_name.items():
        if name in known or (presets is not None and name not in presets):
            continue
        stored = next((p for p in map(_stored, records) if p is not None), None)
        if stored is not None:
            result.append(_study_of(stored, records, known=False))
    return sorted(result, key=lambda s: (s.study.number, s.study.name))
