"""The report, by preset: one row per preset over all its seeds, beside the notes.

The runs list's other mode (key ``b``). A row is three lines, so that every column fits 80
columns: per metric our median, the notes' number, and the verdict in words (so it reads
without colour, ``NO_COLOR``; colour only repeats it: within green, near misses yellow, far
misses red, nothing to compare dim). The spread (min–max) and the settings of the
highlighted row are said in the view's hint (:func:`row_hint`); the saved report has all.
The rows are built off the UI thread (in the store worker); this widget only shows them.
"""

from __future__ import annotations

from rich.text import Text

from fnn_tui.report.reproduction import (
    METRICS,
    TITLES,
    MetricSummary,
    PresetReport,
    Spread,
    VerdictKind,
    verdict_style,
)
from fnn_tui.tui.widgets.sideways import SidewaysTable

COLUMNS = [("preset", "preset"), ("runs", "runs"), ("what", "")]
COLUMNS += [(metric, TITLES[metric]) for metric in METRICS]
LABELS = Text("median\nnotes\nverdict", style="dim")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _range(s: Spread) -> str:
    if s.n == 0:
        return "—"
    if s.n == 1 or s.min == s.max:
        return _num(s.median)
    return f"{s.min:.2g}–{s.max:.2g}"


def verdict_word(m: MetricSummary, row: PresetReport | None = None) -> str:
    """The verdict in at most a dozen characters: "within", "53× below", "0.025 below";
    without a finished run, from ``row``'s counts: "all diverged", "none finished" (some
    diverged or stopped) or "no runs" ("—" when the notes give no number)."""
    v = m.verdict
    if m.notes is None:
        return "—"
    if v.kind == VerdictKind.NO_RUNS:
        if row is not None and row.diverged and not row.other:
            return "all diverged"
        if row is not None and (row.diverged or row.other):
            return "none finished"
        return "no runs"
    if v.difference is not None:
        return f"{abs(v.difference):.2g} {v.kind.value}"
    return v.label or v.kind.value


def metric_cell(m: MetricSummary, row: PresetReport | None = None) -> Text:
    """Three lines: our median, the notes' number, the verdict word."""
    median = _num(m.all.median) if m.all.n else "—"
    notes = m.notes.text if m.notes is not None else "—"
    return Text.assemble(f"{median}\n{notes}\n", (verdict_word(m, row), verdict_style(m)), justify="right")


def report_cells(r: PresetReport) -> list[object]:
    """One preset's row: its name, its runs (finished ``n``, ``+k`` left out, dead, diverged)
    and per metric :func:`metric_cell`."""
    n = f"n {r.finished}" + (f"+{r.other}" if r.other else "")
    runs = Text.assemble(n, "\n", (f"{r.dead} dead", "yellow" if r.dead else ""), "\n",
                         (f"{r.diverged} div", "red" if r.diverged else ""))
    return [r.name + ("*" if r.differs else ""), runs, LABELS, *(metric_cell(m, r) for m in r.metrics)]


def row_hint(r: PresetReport) -> str:
    """What the row leaves out: its settings (or how they differ from the file's) and each
    metric's min–max over the finished runs."""
    setting = f"{r.name}*: runs made with {r.differs}" if r.differs else f"{r.name}: {r.setting}"
    spans = {m.metric: _range(m.all) for m in r.metrics}
    return (f"{setting}\nmin–max (loss, ratio): train {spans['train_loss']}, {spans['train_ratio']}  "
            f"test {spans['test_loss']}, {spans['test_ratio']}")


class ReportTable(SidewaysTable):
    """The report, one row per preset (a row key is the preset's name), three lines a row;
    Left and Right scroll half a screen."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self.reports: dict[str, PresetReport] = {}

    def load(self, reports: list[PresetReport]) -> None:
        """Show ``reports`` (made off the UI thread), keeping the highlighted row."""
        row = self.cursor_row
        self.clear()
        self.reports = {r.name: r for r in reports}
        for r in reports:
            self.add_row(*report_cells(r), key=r.name, height=3)
        if self.row_count:
            self.move_cursor(row=min(row, self.row_count - 1))
