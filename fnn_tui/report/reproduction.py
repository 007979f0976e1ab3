"""Do we reproduce the notes? Each preset's runs over several seeds, set beside the notes.

One run per row cannot answer that: the same recipe ends dead in some seeds and fine in
others. This module takes every run of a preset (a study) and says, per metric, where the
notes' number falls against the spread of our finished runs. It is pure: the caller maps
store records to :class:`Outcome` and presets to :class:`Study`; nothing here reads the
store or trains.

Verdict rules, per metric (train loss, train ratio, test loss, test ratio):

- Our numbers are the final metrics of the **finished** runs, dead ones included: a dead
  network is a real outcome of the recipe. Diverged runs have no final numbers; they are
  counted, as are the runs left out (cancelled, failed, running: any other status).
- ``not reported``: the notes give no number for this metric (this wins over ``no runs``).
- ``no runs``: no finished run has the metric ("all N diverged" when every run diverged).
- ``within``: the notes' value lies in [our min, our max], both ends inclusive.
- ``below`` / ``above``: it lies under our min / over our max. For **losses** the gap is a
  factor to our nearest run (our min / notes, or notes / our max: "49× under our lowest of
  10"). For **ratios** (mean |y_hat / y|, 1 is perfect) a factor between numbers near 1
  says little, so the gap is the difference notes - nearest run ("0.073 under").
- A note of the form "train acc 15.x" (the notes' row 4) is read as the half-open range
  [15, 16) for that metric: "15.x" states the integer part and hides the decimals, so the
  range is exactly what it claims. It is within when it meets [our min, our max], and
  below or above when it lies wholly outside; gaps are taken from its nearest end. Any
  other note is shown, not interpreted.

Medians are :func:`statistics.median` (the mean of the middle two for an even count). Each
median has a percentile-bootstrap 95% interval (seeded: the same runs give the same digits;
two runs or more), and the notes' number its percentile among our finished runs (0: under
every run, 100: over every run, ties count one half; for a number, not a range such as 15.x). A
"live" summary beside each metric leaves the dead runs out, to show what the recipe gives
when the network does not die; verdicts never use it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from fnn_tui.core.dead import DEAD_STD_FRACTION
from fnn_tui.core.presets import Reported
from fnn_tui.core.status import RunStatus
from fnn_tui.report.provenance import Provenance, csv_comment, front_matter
from fnn_tui.report.stats import Interval, median_ci, percentile_of

METRICS = ("train_loss", "train_ratio", "test_loss", "test_ratio")
TITLES = {"train_loss": "train loss", "train_ratio": "train ratio", "test_loss": "test loss",
          "test_ratio": "test ratio"}
FORMATS = ("md", "csv", "json")
JSON_FORMAT = "fnn-tui-reproduction"
JSON_VERSION = 1

_NOTE_RANGE = re.compile(r"^\s*(train|test)\s+(acc|loss)\s+(\d+)\.x\s*$", re.IGNORECASE)
_NOTE_METRIC = {"acc": "ratio", "loss": "loss"}


# --- input -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One run of a study: how it ended and its last epoch's metrics (``None`` if none)."""

    run_id: int
    seed: int
    status: str  # "finished" and "diverged" are used; any other is counted and left out
    dead: bool  # its last epoch predicted (nearly) a constant
    train_loss: float | None
    train_ratio: float | None
    test_loss: float | None
    test_ratio: float | None
    epochs_done: int
    epochs_total: int
    diverged_epoch: int | None = None


@dataclass(frozen=True)
class Study:
    """A preset's identity, what the notes report for it, and all its runs."""

    name: str
    number: int
    setting: str
    notes: Reported
    outcomes: tuple[Outcome, ...] = ()  # one per seed: the runs counted
    differs: str = ""  # how the runs' settings differ from the preset file's ("" when they do not)
    duplicates: tuple[tuple[int, int, int], ...] = ()  # (run id, seed, the run counted instead): not counted
    excluded: tuple[int, ...] = ()  # run ids the user left out: not counted


# --- output ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """Count, median and range of a set of values (all ``None`` when empty)."""

    n: int
    median: float | None
    min: float | None
    max: float | None


class VerdictKind(str, Enum):
    """Where the notes' number falls against our runs."""

    WITHIN = "within"
    BELOW = "below"
    ABOVE = "above"
    NOT_REPORTED = "not reported"
    NO_RUNS = "no runs"


@dataclass(frozen=True)
class NotesValue:
    """What the notes give for a metric: a number (low == high, a closed point) or a range
    [low, high) read from a note such as "15.x"; ``text`` as the notes print it."""

    low: float
    high: float
    text: str

    @property
    def exact(self) -> float | None:
        """The number, when the notes give one rather than a range."""
        return self.low if self.low == self.high else None


@dataclass(frozen=True)
class Verdict:
    """The comparison of one metric; ``factor`` for losses, ``difference`` for ratios."""

    kind: VerdictKind
    text: str  # the full sentence, e.g. "below, 49× under our lowest of 10"
    label: str  # the table's short form, e.g. "49× below"
    factor: float | None = None  # >= 1: how many times apart from our nearest run
    difference: float | None = None  # notes - our nearest run (negative when below)


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one preset: our runs, the notes, the verdict."""

    metric: str
    all: Spread  # finished runs, dead included: what the verdict uses
    live: Spread  # finished runs that are not dead
    notes: NotesValue | None
    verdict: Verdict
    median_ci: Interval | None = None  # bootstrap 95% interval of ``all``'s median (two runs or more)
    notes_percentile: float | None = None  # where the notes' number falls among ``all``'s runs, 0-100


@dataclass(frozen=True)
class PresetReport:
    """One row of the reproduction table."""

    name: str
    number: int
    setting: str
    note: str  # the notes' free text for this row, if any
    finished: int
    dead: int  # finished runs whose last epoch was dead
    diverged: int
    other: int  # cancelled, failed, running: left out
    metrics: tuple[MetricSummary, ...]  # in METRICS order
    runs: tuple[Outcome, ...]
    differs: str = ""  # the study's settings against the preset file's, as in :class:`Study`
    duplicates: tuple[tuple[int, int, int], ...] = ()  # as in :class:`Study`
    excluded: tuple[int, ...] = ()

    def metric(self, name: str) -> MetricSummary:
        """The summary of ``name`` (one of :data:`METRICS`)."""
        return self.metrics[METRICS.index(name)]


# --- statistics and verdicts -------------------------------------------------------------


def _status(outcome: Outcome) -> str:
    # a str-valued enum (the store's RunStatus) compares by its value
    return str(getattr(outcome.status, "value", outcome.status))


def spread_of(values: list[float]) -> Spread:
    """Count, median, min and max of ``values``."""
    if not values:
        return Spread(0, None, None, None)
    return Spread(len(values), statistics.median(values), min(values), max(values))


def notes_value(notes: Reported, metric: str) -> NotesValue | None:
    """The notes' number for ``metric``, or the range a note like "train acc 15.x" states."""
    value = getattr(notes, metric)
    if value is not None:
        return NotesValue(float(value), float(value), repr(float(value)))  # as the preset gives it
    match = _NOTE_RANGE.match(notes.note or "")
    if match and f"{match[1].lower()}_{_NOTE_METRIC[match[2].lower()]}" == metric:
        whole = int(match[3])
        return NotesValue(float(whole), float(whole + 1), f"{whole}.x")
    return None


def _times(factor: float) -> str:
    return f"{factor:.0f}" if factor >= 10 else f"{factor:.2g}"


def verdict(metric: str, notes: NotesValue | None, ours: Spread, *, diverged: int = 0, other: int = 0) -> Verdict:
    """Compare the notes with our finished runs by the rules in the module docstring."""
    if notes is None:
        return Verdict(VerdictKind.NOT_REPORTED, "not reported", "")
    if ours.n == 0 or ours.min is None or ours.max is None:
        if diverged and not other:
            why = f"all {diverged} diverged"
        elif diverged or other:
            why = ", ".join(p for p in (f"{diverged} diverged" if diverged else "",
                                        f"{other} left out" if other else "") if p)
        else:
            why = ""
        return Verdict(VerdictKind.NO_RUNS, f"no runs: {why}" if why else "no runs", why or "no runs")
    lo, hi = ours.min, ours.max
    is_range = notes.exact is None  # [low, high): the high end itself is outside
    below = notes.high <= lo if is_range else notes.high < lo
    above = notes.low > hi
    if not below and not above:
        text = "within: equals our only run" if ours.n == 1 else f"within our {ours.n} runs"
        return Verdict(VerdictKind.WITHIN, text, "within")
    kind = VerdictKind.BELOW if below else VerdictKind.ABOVE
    ref = "our only run" if ours.n == 1 else f"our {'lowest' if below else 'highest'} of {ours.n}"
    side = "under" if below else "over"
    if metric.endswith("_ratio"):
        diff = notes.high - lo if below else notes.low - hi
        gap = f"{abs(diff):.3g}"
        return Verdict(kind, f"{kind.value}, {gap} {side} {ref}", f"{gap} {kind.value}", difference=diff)
    near, far = (notes.high, lo) if below else (hi, notes.low)
    if near <= 0:  # a factor to or from zero means nothing
        return Verdict(kind, f"{kind.value} {ref}", kind.value)
    factor = far / near
    return Verdict(kind, f"{kind.value}, {_times(factor)}× {side} {ref}", f"{_times(factor)}× {kind.value}",
                   factor=factor)


def summarize(study: Study) -> PresetReport:
    """Counts, per-metric summaries and verdicts of one study."""
    finished = [o for o in study.outcomes if _status(o) == RunStatus.FINISHED.value]
    diverged = sum(1 for o in study.outcomes if _status(o) == RunStatus.DIVERGED.value)
    other = len(study.outcomes) - len(finished) - diverged
    summaries = []
    for metric in METRICS:
        # a NaN cannot be ordered, so it is left out (a finished run should have none)
        values = [(v, o.dead) for o in finished if (v := getattr(o, metric)) is not None and not math.isnan(v)]
        ours = spread_of([v for v, _ in values])
        live = spread_of([v for v, dead in values if not dead])
        notes = notes_value(study.notes, metric)
        all_values = [v for v, _ in values]
        percentile = None if notes is None or notes.exact is None else percentile_of(notes.exact, all_values)
        summaries.append(MetricSummary(metric, ours, live, notes,
                                       verdict(metric, notes, ours, diverged=diverged, other=other),
                                       median_ci=median_ci(all_values), notes_percentile=percentile))
    return PresetReport(
        name=study.name, number=study.number, setting=study.setting, note=study.notes.note,
        finished=len(finished), dead=sum(1 for o in finished if o.dead), diverged=diverged, other=other,
        metrics=tuple(summaries), runs=tuple(study.outcomes), differs=study.differs,
        duplicates=study.duplicates, excluded=study.excluded,
    )


# a miss this close is a near one (yellow), a farther one far (red): a factor for losses,
# a difference for ratios
NEAR_FACTOR = 2.0
NEAR_DIFFERENCE = 0.1


def verdict_style(m: MetricSummary) -> str:
    """The colour the front ends give a verdict (its words say it without colour): green
    within, yellow a near miss, red a far one, dim nothing to compare."""
    v = m.verdict
    if v.kind == VerdictKind.WITHIN:
        return "green"
    if v.kind in (VerdictKind.NO_RUNS, VerdictKind.NOT_REPORTED):
        return "dim"
    near = (v.factor is not None and v.factor <= NEAR_FACTOR) or (
        v.difference is not None and abs(v.difference) <= NEAR_DIFFERENCE)
    return "yellow" if near else "red"


def reproduction(studies: Iterable[Study]) -> list[PresetReport]:
    """One report per study, by experiment number then name."""
    return sorted((summarize(s) for s in studies), key=lambda r: (r.number, r.name))


# --- renderers ---------------------------------------------------------------------------


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def _cell(s: Spread) -> str:
    if s.n == 0:
        return "—"
    if s.n == 1 or s.min == s.max:
        return _num(s.median)
    return f"{_num(s.median)} ({_num(s.min)}–{_num(s.max)})"


def _notes_cell(m: MetricSummary) -> str:
    if m.notes is None:
        return "—"
    return f"{m.notes.text} ({m.verdict.label})"


def _ci_cell(m: MetricSummary) -> str:
    if m.median_ci is None:
        return "—"
    cell = f"{_num(m.median_ci.value)} [{_num(m.median_ci.low)}, {_num(m.median_ci.high)}]"
    if m.notes_percentile is not None:
        cell += f", notes at {m.notes_percentile:.0f}%"
    return cell


def _counts(r: PresetReport) -> str:
    left = f" +{r.other} left out" if r.other else ""
    return f"{r.finished}/{r.dead}/{r.diverged}{left}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def render_markdown(reports: list[PresetReport], provenance: Provenance | None = None) -> str:
    """A lab-report table: one row per preset, our median (min–max) beside the notes; the
    provenance as YAML front matter."""
    header = ["#", "preset", "setting", "runs n/dead/div"]
    for metric in METRICS:
        header += [TITLES[metric], "notes"]
    rows = []
    for r in reports:
        row = [str(r.number), r.name + ("*" if r.differs else ""), r.setting, _counts(r)]
        for m in r.metrics:
            row += [_cell(m.all), _notes_cell(m)]
        rows.append(row)
    lines = _table(header, rows)
    lines += [
        "",
        "Our cells: median (min–max) of the finished runs' last epoch, dead runs included; "
        "n/dead/div: finished, of them dead, diverged. Notes: the notes' number and where it falls "
        "against our min–max: within, or below/above by a factor (losses) or a difference (ratios) "
        "to our nearest run. Ratio = mean |ŷ/y|, 1 is perfect. Dead: the network predicts a "
        f"constant (std of ŷ under {DEAD_STD_FRACTION:.0%} of the test targets').",
    ]
    differ = [f"{r.name}: {r.differs}" for r in reports if r.differs]
    if differ:
        lines += ["", "\\* Runs made with settings other than the preset file's (no run has its current "
                  "settings): " + "; ".join(differ) + "."]
    if not_counted_text(reports):
        lines += ["", not_counted_text(reports)]
    with_ci = [r for r in reports if any(m.median_ci is not None for m in r.metrics)]
    if with_ci:
        header = ["#", "preset"] + [TITLES[m] for m in METRICS]
        rows = [[str(r.number), r.name] + [_ci_cell(m) for m in r.metrics] for r in with_ci]
        lines += ["", "Medians with a bootstrap 95% interval, and where the notes' number falls among our "
                  "runs (its percentile, 0: under all, 100: over all):", "", *_table(header, rows)]
    with_dead = [r for r in reports if r.dead]
    if with_dead:
        header = ["#", "preset", "live n"] + [TITLES[m] for m in METRICS]
        rows = [[str(r.number), r.name, str(r.finished - r.dead)] + [_cell(m.live) for m in r.metrics]
                for r in with_dead]
        lines += ["", "Without the dead runs (presets that had some):", "", *_table(header, rows)]
    notes = [f"{r.number} {r.name}: {r.note}" for r in reports if r.note]
    if notes:
        lines += ["", "The notes' remarks: " + "; ".join(notes) + "."]
    return front_matter(provenance) + "\n".join(lines) + "\n"


def not_counted_text(reports: list[PresetReport]) -> str:
    """The line under a report that names the runs it did not count; "" when it counted all."""
    left_out = [f"{r.name}: {_left_out(r)}" for r in reports if r.duplicates or r.excluded]
    if not left_out:
        return ""
    return "Not counted (each seed counts once; excluded runs never): " + "; ".join(left_out) + "."


def _left_out(r: PresetReport) -> str:
    parts = []
    if r.duplicates:
        runs = ", ".join(f"run {rid} (seed {seed}, run {of} counted)" for rid, seed, of in r.duplicates)
        parts.append(f"{len(r.duplicates)} duplicate{'s' if len(r.duplicates) != 1 else ''}: {runs}")
    if r.excluded:
        parts.append(f"excluded run{'s' if len(r.excluded) != 1 else ''} {', '.join(map(str, r.excluded))}")
    return ", ".join(parts)


def _csv_value(value: object) -> object:
    return "" if value is None else value


def csv_row(r: PresetReport) -> dict[str, object]:
    """A report as one flat row; numbers at full precision."""
    row: dict[str, object] = {
        "number": r.number, "preset": r.name, "setting": r.setting, "finished": r.finished, "dead": r.dead,
        "diverged": r.diverged, "other": r.other, "duplicates": len(r.duplicates), "excluded": len(r.excluded),
        "note": r.note, "differs": r.differs,
    }
    for m in r.metrics:
        p = m.metric
        for part, s in (("", m.all), ("_live", m.live)):
            row |= {f"{p}{part}_n": s.n, f"{p}{part}_median": s.median, f"{p}{part}_min": s.min,
                    f"{p}{part}_max": s.max}
        row |= {
            f"{p}_notes": m.notes.exact if m.notes else None,
            f"{p}_notes_low": m.notes.low if m.notes else None,
            f"{p}_notes_high": m.notes.high if m.notes else None,
            f"{p}_notes_text": m.notes.text if m.notes else "",
            f"{p}_verdict": m.verdict.kind.value,
            f"{p}_verdict_text": m.verdict.text,
            f"{p}_factor": m.verdict.factor,
            f"{p}_difference": m.verdict.difference,
            f"{p}_median_ci_low": m.median_ci.low if m.median_ci else None,
            f"{p}_median_ci_high": m.median_ci.high if m.median_ci else None,
            f"{p}_notes_percentile": m.notes_percentile,
        }
    return {k: _csv_value(v) for k, v in row.items()}


def render_csv(reports: list[PresetReport], provenance: Provenance | None = None) -> str:
    """One row per preset with a header of flat column names, after a ``#`` provenance line."""
    rows = [csv_row(r) for r in reports]
    fields = list(rows[0]) if rows else list(csv_row(summarize(Study("", 0, "", Reported()))))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return csv_comment(provenance) + out.getvalue()


def _finite(value: float | None) -> float | None:
    # JSON has no NaN or infinity
    return value if value is None or math.isfinite(value) else None


def _spread_json(s: Spread) -> dict[str, object]:
    return {"n": s.n, "median": _finite(s.median), "min": _finite(s.min), "max": _finite(s.max)}


def _outcome_json(o: Outcome) -> dict[str, object]:
    return {
        "run_id": o.run_id, "seed": o.seed, "status": _status(o), "dead": o.dead,
        **{m: _finite(getattr(o, m)) for m in METRICS},
        "epochs_done": o.epochs_done, "epochs_total": o.epochs_total, "diverged_epoch": o.diverged_epoch,
    }


def report_json(r: PresetReport) -> dict[str, object]:
    """A report as plain data: counts, every summary and every run."""
    return {
        "number": r.number, "preset": r.name, "setting": r.setting, "note": r.note, "differs": r.differs,
        "counts": {"finished": r.finished, "dead": r.dead, "diverged": r.diverged, "other": r.other,
                   "duplicates": len(r.duplicates), "excluded": len(r.excluded)},
        "metrics": {
            m.metric: {
                "all": _spread_json(m.all), "live": _spread_json(m.live),
                "notes": None if m.notes is None else {"text": m.notes.text, "low": m.notes.low,
                                                       "high": m.notes.high, "exact": m.notes.exact},
                "verdict": {"kind": m.verdict.kind.value, "text": m.verdict.text,
                            "factor": _finite(m.verdict.factor), "difference": _finite(m.verdict.difference)},
                "median_ci": None if m.median_ci is None else {"low": _finite(m.median_ci.low),
                                                                "high": _finite(m.median_ci.high)},
                "notes_percentile": m.notes_percentile,
            }
            for m in r.metrics
        },
        "runs": [_outcome_json(o) for o in r.runs],
        "duplicates": [{"run_id": rid, "seed": seed, "counted": of} for rid, seed, of in r.duplicates],
        "excluded": list(r.excluded),
    }


def render_json(reports: list[PresetReport], provenance: Provenance | None = None) -> str:
    """Every preset with its summaries and every run, so others can redo the statistics."""
    doc: dict[str, object] = {"format": JSON_FORMAT, "version": JSON_VERSION}
    if provenance is not None:
        doc["provenance"] = provenance.fields()
    doc |= {"dead_std_fraction": DEAD_STD_FRACTION, "presets": [report_json(r) for r in reports]}
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render(reports: list[PresetReport], fmt: str, provenance: Provenance | None = None) -> str:
    """The reproduction table in ``md``, ``csv`` or ``json``, with its provenance when given."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return {"md": render_markdown, "csv": render_csv, "json": render_json}[fmt](reports, provenance)
