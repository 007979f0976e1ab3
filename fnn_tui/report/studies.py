"""Which stored runs make up each preset's study, for the report (and its figures).

A study is the runs of one preset with the same settings but the seed (the store's
``study`` column, :meth:`~fnn_tui.core.presets.Preset.study_digest`). Which study stands
for a preset:

1. the study of the preset's **current** settings (the catalog's file), when the store
   has any run of it;
2. otherwise the study of the preset's **newest run**, so a study made with overrides
   (``--epochs 3 --samples 300``) is still reported; its row then says how its settings
   differ from the preset's (:attr:`StudyRuns.differs`, e.g. "samples=300, epochs=3");
3. a preset with no run at all still gets its row, with no runs.

Presets the store knows but the catalog does not (a TOML file run by path) are reported
from their newest run's study as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fnn_tui.core.catalog import Catalog
from fnn_tui.core.presets import Preset, PresetError, parse_preset, preset_to_dict
from fnn_tui.core.variants import difference
from fnn_tui.report.reproduction import Outcome, Study
from fnn_tui.store.runs import RunRecord, Store


@dataclass(frozen=True)
class StudyRuns:
    """One preset's study: the preset its settings come from, its runs (newest first) and
    the :class:`~fnn_tui.report.reproduction.Study` the report is made from."""

    preset: Preset
    records: tuple[RunRecord, ...]
    study: Study
    differs: str = ""  # how the runs' settings differ from the catalog preset's; "" when they do not


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


def _study_of(preset: Preset, records: list[RunRecord], *, known: bool) -> StudyRuns:
    wanted = preset.study_digest()
    chosen = [r for r in records if r.study == wanted]
    used, differs = preset, ""
    if not chosen and records:
        newest = records[0]
        chosen = [r for r in records if r.study == newest.study]
        stored = _stored(newest)
        if stored is not None:
            used = stored
            differs = differences(preset, stored) if known else ""
    study = Study(
        name=preset.name, number=preset.experiment.number, setting=used.setting(), notes=preset.reported,
        outcomes=tuple(outcome(r) for r in sorted(chosen, key=lambda r: (r.seed, r.id))), differs=differs,
    )
    return StudyRuns(preset=used, records=tuple(chosen), study=study, differs=differs)


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
