"""Is one setting better than another? Two studies compared with statistics, per metric.

Each side is a study (the runs of one preset's settings over several seeds). For a metric
at an epoch (the last one unless asked), a run counts as:

- **finished** (it has the epoch's numbers), and of those **dead** when that epoch's network
  predicted (nearly) a constant: a dead network is a real outcome of the recipe, so its
  numbers stay in;
- **diverged** (it diverged at or before that epoch): no numbers; in the rank statistics it
  is worse than every finished run and tied with the other diverged ones;
- left out otherwise (cancelled, failed, running, or it never reached the epoch).

"Better" means a lower score: a loss as it is, a ratio (mean |ŷ/y|) by its distance to 1.
Per metric the comparison gives the counts with Wilson intervals on the dead and diverged
rates, the median and IQR of the finished runs, the difference of medians with a bootstrap
interval, P(A better than B) with its bootstrap interval, Welch's t-test on the finished
runs' scores, Fisher's exact tests on the dead and the diverged counts, a paired analysis
when the seeds pair (same data and same initial weights: the same data settings and layer
widths, so seed s draws the same samples and weights on both sides), and a power note.
The statistics are :mod:`fnn_tui.report.stats`'s; this module only gathers the values.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fnn_tui.core.catalog import Catalog
from fnn_tui.core.presets import Preset
from fnn_tui.core.status import RunStatus
from fnn_tui.report import stats
from fnn_tui.report.reproduction import METRICS, TITLES
from fnn_tui.report.studies import counted_runs, load_studies
from fnn_tui.store.runs import RunRecord, Store

FORMATS = ("md", "csv", "json")
COUNTED = (RunStatus.FINISHED, RunStatus.DIVERGED)
JSON_FORMAT = "fnn-tui-comparison"
JSON_VERSION = 1


def score(metric: str, value: float) -> float:
    """The value as a score where lower is better: a loss as it is, a ratio's distance to 1."""
    return abs(value - 1.0) if metric.endswith("_ratio") else value


@dataclass(frozen=True)
class SideRun:
    """One run of a side at the compared epoch."""

    run_id: int
    seed: int
    state: RunStatus | None  # FINISHED (numbers at the epoch), DIVERGED, or None: left out
    dead: bool
    values: dict[str, float]  # metric -> value at the epoch (finished runs only)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: what it is called, its settings and its runs."""

    label: str
    preset: Preset
    runs: tuple[SideRun, ...]
    # runs of the study left out before any statistic: duplicates of a counted seed and
    # excluded runs (each seed counts once, by the report's rule)
    not_counted: tuple[int, ...] = ()

    def counted(self) -> list[SideRun]:
        """The runs the statistics count: finished (at the epoch) or diverged."""
        return [r for r in self.runs if r.state in COUNTED]


def side_runs(store: Store, records: Sequence[RunRecord], epoch: int | None = None) -> tuple[SideRun, ...]:
    """The records as a side's runs at ``epoch`` (1-based; ``None``: the run's last epoch)."""
    result = []
    for r in sorted(records, key=lambda r: (r.seed, r.id)):
        if epoch is None:
            m = r.final if r.status == RunStatus.FINISHED else None
            diverged = r.status == RunStatus.DIVERGED
        else:
            diverged = r.status == RunStatus.DIVERGED and r.diverged_epoch is not None and r.diverged_epoch <= epoch
            m = None if diverged else next((e for e in store.epochs(r.id, after=epoch - 1) if e.epoch == epoch), None)
        if m is not None:
            values = {k: float(getattr(m, k)) for k in METRICS if math.isfinite(getattr(m, k))}
            result.append(SideRun(r.id, r.seed, RunStatus.FINISHED, bool(m.dead), values))
        else:
            result.append(SideRun(r.id, r.seed, RunStatus.DIVERGED if diverged else None, False, {}))
    return tuple(result)


def study_records(store: Store, preset: Preset,
                  seeds: Sequence[int] | None = None) -> tuple[list[RunRecord], tuple[int, ...]]:
    """The runs of ``preset``'s settings (its study) that count, one per seed by the report's
    rule (:func:`~fnn_tui.report.studies.seed_roles`), of ``seeds`` only when given; and the
    ids of its other runs (duplicates of a counted seed, excluded runs)."""
    wanted = preset.study_digest()
    records = [r for r in store.list_runs(preset.name) if r.study == wanted and (seeds is None or r.seed in seeds)]
    counted = counted_runs(records)
    kept = {r.id for r in counted}
    return counted, tuple(sorted(r.id for r in records if r.id not in kept))


def preset_side(store: Store, catalog: Catalog, name: str, changes: dict[str, Any] | None = None, *,
                epochs: int | None = None, samples: int | None = None, epoch: int | None = None) -> Side:
    """One side of ``compare A B``: the preset ``name`` (a name, number or file the catalog
    knows), as the report shows its study (its current settings, else its newest), or, with
    ``changes`` (full keys, as :func:`fnn_tui.core.variants.parse_settings` gives them) or
    ``epochs``/``samples``, the study of exactly those settings."""
    from fnn_tui.core.variants import apply_settings
    from fnn_tui.report.claims import describe_changes  # (claims imports this module)

    preset = catalog.get(name)
    label = preset.name
    if changes or epochs is not None or samples is not None:
        preset = preset.with_overrides(epochs=epochs, samples=samples)
        if changes:
            preset = apply_settings(preset, changes)
            label += f" + {describe_changes(changes)}"
        records, not_counted = study_records(store, preset)
    else:
        (study,) = load_studies(store, catalog, [preset.name]) or [None]
        records = list(study.records) if study else []
        not_counted = tuple(sorted([d[0] for d in study.study.duplicates] + list(study.study.excluded))) if study else ()
        preset = study.preset if study else preset
    return Side(label, preset, side_runs(store, records, epoch), not_counted)


def seeds_pair(a: Preset, b: Preset) -> bool:
    """Seed s draws the same data and the same initial weights on both sides."""
    return dataclasses.replace(b.data, seed=a.data.seed) == a.data and a.model.hidden == b.model.hidden


@dataclass(frozen=True)
class Counts:
    n: int  # finished + diverged
    finished: int
    dead: int
    diverged: int
    other: int
    dead_rate: stats.Interval | None
    diverged_rate: stats.Interval | None
    quartiles: tuple[float, float, float] | None  # median, q1, q3 of the finished runs' values


@dataclass(frozen=True)
class Paired:
    pairs: int
    median_difference: float  # of the scores, A − B
    p: float  # Wilcoxon signed-rank, two-sided


@dataclass(frozen=True)
class MetricComparison:
    """Every statistic of one metric between sides A and B."""

    metric: str
    epoch: int | None
    a: Counts
    b: Counts
    median_difference: stats.Interval | None  # of the values, A − B (finished runs)
    p_better: stats.Interval | None  # P(A better than B); the value alone when a side has one run
    p_better_value: float | None
    welch: tuple[float, float] | None  # t, p on the finished runs' scores
    mann_whitney_p: float | None
    fisher_dead: float | None
    fisher_diverged: float | None
    paired: Paired | None
    smallest_d: float | None  # seen at 80% power with these n
    observed_d: float | None  # from P(A better than B)
    seeds_needed: int | None  # a side, to see observed_d at 80% power
    resamples: int


def _counts(side: Side, metric: str) -> Counts:
    runs = side.counted()
    finished = [r for r in runs if r.state is RunStatus.FINISHED]
    dead = sum(1 for r in finished if r.dead)
    diverged = len(runs) - len(finished)
    values = [r.values[metric] for r in finished if metric in r.values]
    return Counts(n=len(runs), finished=len(finished), dead=dead, diverged=diverged,
                  other=len(side.runs) - len(runs), dead_rate=stats.wilson(dead, len(runs)),
                  diverged_rate=stats.wilson(diverged, len(runs)), quartiles=stats.quartiles(values))


def _scores(side: Side, metric: str) -> list[float]:
    """Scores of the counted runs: a diverged run is ``inf`` (the worst)."""
    return [score(metric, r.values[metric]) if metric in r.values else math.inf
            for r in side.counted() if r.state is RunStatus.DIVERGED or metric in r.values]


def compare_metric(a: Side, b: Side, metric: str, epoch: int | None = None, *,
                   resamples: int = stats.RESAMPLES, seed: int = stats.BOOTSTRAP_SEED) -> MetricComparison:
    """All the statistics of ``metric`` between ``a`` and ``b`` (see the module docstring)."""
    ca, cb = _counts(a, metric), _counts(b, metric)
    sa, sb = _scores(a, metric), _scores(b, metric)
    fa = [r.values[metric] for r in a.counted() if metric in r.values]
    fb = [r.values[metric] for r in b.counted() if metric in r.values]
    p_value = stats.prob_lower(sa, sb) if sa and sb else None
    p_ci = stats.prob_lower_ci(sa, sb, resamples=resamples, seed=seed)
    paired = None
    if seeds_pair(a.preset, b.preset):
        by_seed = {r.seed: score(metric, r.values[metric]) for r in a.counted() if metric in r.values}
        common = [(by_seed[r.seed], score(metric, r.values[metric])) for r in b.counted()
                  if metric in r.values and r.seed in by_seed]
        result = stats.wilcoxon_paired([x for x, _ in common], [y for _, y in common]) if common else None
        if result is not None:
            paired = Paired(len(common), result[0], result[1])
    observed = None if p_value is None or math.isnan(p_value) else stats.effect_from_probability(p_value)
    return MetricComparison(
        metric=metric, epoch=epoch, a=ca, b=cb,
        median_difference=stats.median_difference_ci(fa, fb, resamples=resamples, seed=seed),
        p_better=p_ci, p_better_value=p_value,
        welch=stats.welch([score(metric, v) for v in fa], [score(metric, v) for v in fb]),
        mann_whitney_p=stats.mann_whitney_p(sa, sb),
        fisher_dead=stats.fisher(ca.dead, ca.n, cb.dead, cb.n),
        fisher_diverged=stats.fisher(ca.diverged, ca.n, cb.diverged, cb.n),
        paired=paired, smallest_d=stats.smallest_effect(ca.n, cb.n), observed_d=observed,
        seeds_needed=None if observed is None else stats.seeds_needed(observed), resamples=resamples,
    )


@dataclass(frozen=True)
class Comparison:
    """Sides A and B and one :class:`MetricComparison` per metric asked for."""

    a: Side
    b: Side
    metrics: tuple[MetricComparison, ...]
    paired: bool


def compare(a: Side, b: Side, metrics: Sequence[str] = METRICS, epoch: int | None = None, *,
            resamples: int = stats.RESAMPLES) -> Comparison:
    """Compare two sides over ``metrics`` at ``epoch``."""
    return Comparison(a, b, tuple(compare_metric(a, b, m, epoch, resamples=resamples) for m in metrics),
                      seeds_pair(a.preset, b.preset))


# --- text --------------------------------------------------------------------------------


def num(value: float | None, digits: int = 3) -> str:
    """A number for a table: significant digits, ``—`` for none, ``inf`` spelled out."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def interval(i: stats.Interval | None, digits: int = 3) -> str:
    """``value [low, high]``, or ``—``."""
    return "—" if i is None else f"{num(i.value, digits)} [{num(i.low, digits)}, {num(i.high, digits)}]"


def _rate(i: stats.Interval | None, k: int, n: int) -> str:
    return "—" if i is None else f"{k}/{n} [{i.low:.2f}, {i.high:.2f}]"


def _iqr(c: Counts) -> str:
    if c.quartiles is None:
        return "—"
    med, q1, q3 = c.quartiles
    return f"{num(med)} ({num(q1)}–{num(q3)})"


def epoch_text(epoch: int | None) -> str:
    return "last epoch" if epoch is None else f"epoch {epoch}"


def power_note(m: MetricComparison) -> str:
    """One line: the smallest effect these n show at 80% power, and what the observed one needs."""
    if m.smallest_d is None:
        return f"power: n = {m.a.n} and {m.b.n}: too few runs for a power estimate (at least 2 a side)"
    text = f"power: with n = {m.a.n} and {m.b.n}, only an effect of d ≥ {m.smallest_d:.2f} is seen at 80% power"
    if m.observed_d is not None and math.isfinite(m.observed_d):
        need = (f"about {m.seeds_needed} seeds a side" if m.seeds_needed is not None
                else f"more than {stats.MAX_SEEDS_NEEDED} seeds a side")
        text += f"; the observed one (d ≈ {abs(m.observed_d):.2f}, from P) needs {need}"
    elif m.observed_d is not None:
        text += "; the observed one is total (no overlap at all)"
    return text


def metric_lines(c: Comparison, m: MetricComparison) -> list[str]:
    """The Markdown block of one metric."""
    a, b = c.a.label, c.b.label
    scored = " (scored as |ratio − 1|)" if m.metric.endswith("_ratio") else ""
    rows = [
        ["runs counted (finished + diverged)", str(m.a.n), str(m.b.n)],
        ["left out (stopped, failed, short)", str(m.a.other), str(m.b.other)],
        *([["not counted (duplicate or excluded)", _ids(c.a.not_counted), _ids(c.b.not_counted)]]
          if c.a.not_counted or c.b.not_counted else []),
        ["dead (Wilson 95%)", _rate(m.a.dead_rate, m.a.dead, m.a.n), _rate(m.b.dead_rate, m.b.dead, m.b.n)],
        ["diverged (Wilson 95%)", _rate(m.a.diverged_rate, m.a.diverged, m.a.n),
         _rate(m.b.diverged_rate, m.b.diverged, m.b.n)],
        ["median (IQR) of finished", _iqr(m.a), _iqr(m.b)],
    ]
    lines = [f"### {TITLES[m.metric]}, {epoch_text(m.epoch)}", "", f"| | A: {a} | B: {b} |", "|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    welch = "—" if m.welch is None else f"t = {m.welch[0]:.3g}, p = {m.welch[1]:.3g}"
    p_text = interval(m.p_better, 2) if m.p_better is not None else (
        f"{num(m.p_better_value, 2)} (no interval: a side has one run)")
    lines += [
        "",
        f"- difference of medians A − B: {interval(m.median_difference)} (bootstrap 95%, {m.resamples} resamples)",
        f"- P(A better than B){scored}: {p_text}",
        f"- Mann–Whitney U: p = {num(m.mann_whitney_p)}; Welch's t{scored}: {welch}",
        f"- Fisher's exact: dead p = {num(m.fisher_dead)}, diverged p = {num(m.fisher_diverged)}",
    ]
    if c.paired:
        lines.append("- paired (same seed: same data and initial weights): " + (
            "no pairs with a difference" if m.paired is None else
            f"{m.paired.pairs} pairs, median A − B {num(m.paired.median_difference)}, Wilcoxon p = {num(m.paired.p)}"))
    lines.append(f"- {power_note(m)}")
    return lines


def _ids(ids: tuple[int, ...]) -> str:
    """Run ids as a cell: "2: runs 1, 13" (the first five, then how many more)."""
    if not ids:
        return "0"
    shown = ", ".join(map(str, ids[:5])) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return f"{len(ids)}: run{'s' if len(ids) > 1 else ''} {shown}"


def render_markdown(c: Comparison) -> str:
    lines = [f"## {c.a.label} (A) against {c.b.label} (B)", "",
             f"A: {c.a.preset.setting()}; B: {c.b.preset.setting()}."]
    for m in c.metrics:
        lines += ["", *metric_lines(c, m)]
    lines += ["", "Better = lower: a loss as it is, a ratio by its distance to 1. A diverged run ranks worst; "
              "dead runs keep their numbers. Intervals are seeded bootstraps: the same runs give the same digits."]
    return "\n".join(lines) + "\n"


def _interval_json(i: stats.Interval | None) -> dict[str, float] | None:
    return None if i is None else {"value": _finite(i.value), "low": _finite(i.low), "high": _finite(i.high)}


def _finite(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


def _counts_json(c: Counts) -> dict[str, object]:
    q = c.quartiles
    return {"n": c.n, "finished": c.finished, "dead": c.dead, "diverged": c.diverged, "other": c.other,
            "dead_rate": _interval_json(c.dead_rate), "diverged_rate": _interval_json(c.diverged_rate),
            "median": q and q[0], "q1": q and q[1], "q3": q and q[2]}


def metric_json(m: MetricComparison) -> dict[str, object]:
    return {
        "metric": m.metric, "epoch": m.epoch, "a": _counts_json(m.a), "b": _counts_json(m.b),
        "median_difference": _interval_json(m.median_difference), "p_a_better": _interval_json(m.p_better),
        "p_a_better_value": _finite(m.p_better_value),
        "welch": None if m.welch is None else {"t": _finite(m.welch[0]), "p": _finite(m.welch[1])},
        "mann_whitney_p": m.mann_whitney_p, "fisher_dead_p": m.fisher_dead, "fisher_diverged_p": m.fisher_diverged,
        "paired": None if m.paired is None else asdict(m.paired),
        "power": {"smallest_d": m.smallest_d, "observed_d": _finite(m.observed_d), "seeds_needed": m.seeds_needed},
        "resamples": m.resamples,
    }


def side_json(s: Side) -> dict[str, object]:
    return {"label": s.label, "preset": s.preset.name, "study": s.preset.study_digest(),
            "not_counted": list(s.not_counted),
            "runs": [{"run_id": r.run_id, "seed": r.seed, "state": r.state.value if r.state else "left out", "dead": r.dead,
                      **{k: _finite(v) for k, v in r.values.items()}} for r in s.runs]}


def render_json(c: Comparison) -> str:
    doc = {"format": JSON_FORMAT, "version": JSON_VERSION, "a": side_json(c.a), "b": side_json(c.b),
           "seeds_pair": c.paired, "metrics": [metric_json(m) for m in c.metrics]}
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _flat(prefix: str, value: object, out: dict[str, object]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}_{k}" if prefix else k, v, out)
    else:
        out[prefix] = "" if value is None else value


def render_csv(c: Comparison) -> str:
    rows = []
    for m in c.metrics:
        row: dict[str, object] = {"a": c.a.label, "b": c.b.label}
        _flat("", metric_json(m), row)
        rows.append(row)
    fields: dict[str, None] = {"a": None, "b": None}
    for row in rows:  # a statistic that is missing in one metric (no interval) is a column of its own
        fields |= dict.fromkeys(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def render(c: Comparison, fmt: str) -> str:
    """The comparison in ``md``, ``csv`` or ``json``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return {"md": render_markdown, "csv": render_csv, "json": render_json}[fmt](c)
