"""The notes' conclusions judged from the store: one verdict per conclusion, as the notes
drew it and controlled, with the statistic behind each (the rules are
:mod:`fnn_tui.report.claims`'s). It reads stored runs only; training what is missing is the
caller's (``fnn-tui claims``), so the report and the app can show the same verdicts from
whatever the store holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from fnn_tui.core.catalog import Catalog
from fnn_tui.core.presets import Preset, PresetError, parse_preset
from fnn_tui.report.claims import (
    Conclusion,
    Sides,
    Verdict,
    describe_changes,
    load_conclusions,
    sides,
    verdict,
)
from fnn_tui.report.compare import (
    MetricComparison,
    Side,
    compare_metric,
    epoch_text,
    metric_json,
    side_json,
    side_runs,
    study_records,
)
from fnn_tui.report.reproduction import TITLES
from fnn_tui.report.studies import differences, overrides_only
from fnn_tui.store.runs import Store

JSON_FORMAT = "fnn-tui-claims"
JSON_VERSION = 1
FORMATS = ("md", "json")


@dataclass(frozen=True)
class Test:
    """One comparison of a conclusion: its two sides, the statistics and the verdict."""

    a: Side
    b: Side
    comparison: MetricComparison
    verdict: Verdict


@dataclass(frozen=True)
class ClaimResult:
    """A conclusion with its verdict as the notes drew it, and controlled when confounded."""

    conclusion: Conclusion
    notes: Test
    controlled: Test | None
    changes: str  # what the controlled variant changes, e.g. "model.hidden=[40, 40]"


def claim_sides(conclusions: Sequence[Conclusion], catalog: Catalog, *, epochs: int | None = None,
                samples: int | None = None) -> list[Sides]:
    """The presets of each conclusion, with the overrides applied to every row."""
    def row(name: str) -> Preset:
        return catalog.get(name).with_overrides(epochs=epochs, samples=samples)

    return [sides(c, row(c.a), row(c.b)) for c in conclusions]


def presets_to_train(all_sides: Sequence[Sides]) -> list[Preset]:
    """Every study the conclusions need, each once, in order."""
    seen: dict[str, Preset] = {}
    for s in all_sides:
        for p in s.presets():
            seen.setdefault(p.study_digest(), p)
    return list(seen.values())


def _side(store: Store, preset: Preset, label: str, epoch: int | None, seeds: Sequence[int] | None) -> Side:
    records, not_counted = study_records(store, preset, seeds)
    return Side(label, preset, side_runs(store, records, epoch), not_counted)


def _test(store: Store, c: Conclusion, a: Preset, b: Preset, labels: tuple[str, str],
          seeds: Sequence[int] | None, resamples: int) -> Test:
    sa = _side(store, a, labels[0], c.epoch, seeds)
    sb = _side(store, b, labels[1], c.epoch, seeds)
    m = compare_metric(sa, sb, c.metric, c.epoch, resamples=resamples)
    return Test(sa, sb, m, verdict(c.direction, c.margin, m))


def judge(store: Store, conclusions: Sequence[Conclusion], all_sides: Sequence[Sides], *,
          seeds: Sequence[int] | None = None, resamples: int = 10_000) -> list[ClaimResult]:
    """Each conclusion's verdicts from the stored runs (of ``seeds`` only, when given)."""
    results = []
    for c, s in zip(conclusions, all_sides):
        notes = _test(store, c, s.a, s.b, (c.a, c.b), seeds, resamples)
        controlled = None
        changes = describe_changes(s.changes)
        if s.controlled_a is not None and s.controlled_b is not None:
            base = c.a if c.base == "a" else c.b
            variant = f"{base} + {changes}"
            labels = (base, variant) if c.base == "a" else (variant, base)
            controlled = _test(store, c, s.controlled_a, s.controlled_b, labels, seeds, resamples)
        results.append(ClaimResult(c, notes, controlled, changes))
    return results


def row_preset(store: Store, preset: Preset) -> Preset:
    """The settings a row is judged with: the preset's own when the store has runs of them,
    else those of its newest runs that differ from them in the overrides only (epochs,
    samples), so runs of ``claims --epochs 3`` are judged together. A controlled variant's
    runs are stored under the base row's name: they never stand for the row itself."""
    records = store.list_runs(preset.name)  # newest first
    if not records or any(r.study == preset.study_digest() for r in records):
        return preset
    seen: set[str] = set()
    for r in records:
        if r.study in seen:
            continue
        seen.add(r.study)
        try:
            stored = parse_preset(r.preset_toml, source=f"run {r.id}", name=r.preset)
        except PresetError:
            continue
        if overrides_only(preset, stored):
            return stored
    return preset


def counted_run_ids(results: Sequence[ClaimResult]) -> list[int]:
    """The stored runs the verdicts stand on (every side of every test, each seed once)."""
    return [r.run_id for result in results for test in (result.notes, result.controlled) if test is not None
            for side in (test.a, test.b) for r in side.counted()]


def judge_store(store: Store, catalog: Catalog) -> tuple[list[ClaimResult], str]:
    """The verdicts from every stored run of the conclusions' studies (the report's section
    and the app's view: nothing is trained), and how the settings differ from the notes'
    (:func:`row_preset` picks each row's settings; the controlled variants are made from them).
    """
    conclusions = load_conclusions()
    names = sorted({n for c in conclusions for n in (c.a, c.b)})
    rows = {name: row_preset(store, catalog.get(name)) for name in names}
    all_sides = [sides(c, rows[c.a], rows[c.b]) for c in conclusions]
    differs = "; ".join(f"{name}: {differences(catalog.get(name), rows[name])}" for name in names
                        if rows[name] is not catalog.get(name) and differences(catalog.get(name), rows[name]))
    return judge(store, conclusions, all_sides, seeds=None), differs


# --- text --------------------------------------------------------------------------------


def _direction(c: Conclusion) -> str:
    if c.direction == "equal":
        return f"{c.a} ≈ {c.b} (P within 0.5 ± {c.margin:g})"
    return f"{c.a} {'<' if c.direction == 'better' else '>'} {c.b}"


def render_markdown(results: Sequence[ClaimResult], *, differs: str = "", heading: str = "##") -> str:
    """The verdicts table, then each conclusion's sentence, reading and statistics."""
    lines = [f"{heading} Does the notes' reasoning hold?", ""]
    if differs:
        lines += [f"**Not the notes' settings**: {differs}.", ""]
    lines += ["| # | conclusion | test | notes' rows | controlled | n |", "|---|---|---|---|---|---|"]
    for r in results:
        c = r.conclusion
        ctrl = "— (no confound)" if r.controlled is None else r.controlled.verdict.text
        n = f"{r.notes.comparison.a.n}/{r.notes.comparison.b.n}"
        test = f"{TITLES[c.metric]}, {_direction(c)}"
        lines.append(f"| {c.number} | {c.key} | {test} | {r.notes.verdict.text} | {ctrl} | {n} |")
    lines += ["", "Verdicts on P(A better than B) (lower loss) with a seeded bootstrap 95% interval: supported "
              "when it lies beyond 0.5 the claimed way, contradicted when beyond it the other way; needs about N "
              "seeds when the observed effect points the claimed way and N seeds a side would show it at 80% "
              "power; not shown otherwise. Controlled: the base row against itself with only the named factor "
              "changed, over the same seeds. Dead runs keep their numbers; a diverged run ranks worst."]
    for r in results:
        c = r.conclusion
        lines += ["", f"{heading}# {c.number}. {c.key}", "", f"> {c.notes}", "", f"{c.claim}", "",
                  f"Reading: {c.reading}", "",
                  f"- test: {TITLES[c.metric]} at the {epoch_text(c.epoch)}, {_direction(c)}; factor "
                  f"{', '.join(c.factor)}; confounds {', '.join(c.confounds) or 'none'}",
                  f"- notes' rows ({r.notes.a.label} against {r.notes.b.label}): **{r.notes.verdict.text}**: "
                  f"{r.notes.verdict.why}"]
        if r.controlled is not None:
            t = r.controlled
            lines.append(f"- controlled ({t.a.label} against {t.b.label}): **{t.verdict.text}**: {t.verdict.why}")
    return "\n".join(lines) + "\n"


def _test_json(t: Test | None) -> dict[str, object] | None:
    if t is None:
        return None
    return {"a": side_json(t.a), "b": side_json(t.b), "verdict": {"kind": t.verdict.kind.value, "text": t.verdict.text,
            "why": t.verdict.why}, "statistics": metric_json(t.comparison)}


def render_json(results: Sequence[ClaimResult], *, differs: str = "") -> str:
    doc = {"format": JSON_FORMAT, "version": JSON_VERSION, "differs": differs, "conclusions": [
        {"number": r.conclusion.number, "key": r.conclusion.key, "notes": r.conclusion.notes,
         "claim": r.conclusion.claim, "reading": r.conclusion.reading, "a": r.conclusion.a, "b": r.conclusion.b,
         "metric": r.conclusion.metric, "epoch": r.conclusion.epoch, "direction": r.conclusion.direction,
         "margin": r.conclusion.margin, "factor": list(r.conclusion.factor),
         "confounds": list(r.conclusion.confounds), "changes": r.changes,
         "notes_test": _test_json(r.notes), "controlled_test": _test_json(r.controlled)}
        for r in results]}
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render(results: Sequence[ClaimResult], fmt: str, *, differs: str = "") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return render_markdown(results, differs=differs) if fmt == "md" else render_json(results, differs=differs)
