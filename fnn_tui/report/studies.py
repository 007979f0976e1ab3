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
   differ from the preset's (:attr:`StudyRuns.differs`, e.g. "3 epochs, 300 samples");
3. a preset with no run at all still gets its row, with no runs.

Presets the store knows but the catalog does not (a TOML file run by path) are reported
from their newest run's study as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from fnn_tui.core.catalog import Catalog
from fnn_tui.core.presets import Preset, PresetError, parse_preset, preset_to_dict
from fnn_tui.report.reproduction import Outcome, Study
from fnn_tui.store.runs import RunRecord, Store

# the sections that change what a run computes; [experiment] and [reported] are words and numbers about it
_TRAINING_SECTIONS = ("data", "model", "training")


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
    """What ``used`` changes against ``current``, in the words of the CLI's overrides where
    there are some ("3 epochs, 300 samples"), else ``section.key value``; the seed is left out."""
    a, b = preset_to_dict(current), preset_to_dict(used)
    named = {("training", "epochs"): "epochs", ("data", "samples"): "samples"}
    parts = []
    for section in _TRAINING_SECTIONS:
        for key in sorted(set(a[section]) | set(b[section])):
            if key == "seed" and section == "data":
                continue
            if a[section].get(key) != b[section].get(key):
                value = b[section].get(key, "none")
                word = named.get((section, key))
                if word and value == 1:
                    word = word.removesuffix("s")
                parts.append(f"{value} {word}" if word else f"{section}.{key} {value}")
    if not parts and (a != b):
        return "an earlier version of the preset file (same training settings)"
    return ", ".join(parts)


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


def _newest_study(preset: Preset, records: list[RunRecord]) -> RunRecord:
    """The newest run made with the preset's settings but the overrides, else the newest run:
    the runs of a variant (another learning rate, say) are stored under the preset's name
    too, and stand for it only when nothing else does."""
    for record in records:
        stored = _stored(record)
        if stored is not None and overrides_only(preset, stored):
            return record
    return records[0]


def _study_of(preset: Preset, records: list[RunRecord], *, known: bool) -> StudyRuns:
    wanted = preset.study_digest()
    chosen = [r for r in records if r.study == wanted]
    used, differs = preset, ""
    if not chosen and records:
        newest = _newest_study(preset, records) if known else records[0]
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
