"""The report, by preset: one row per preset over all its seeds, beside the notes.

The runs list's other mode (key ``b``). Each metric shows our median (min–max) and the
notes' number with the verdict word in the same cell, so the verdict reads without colour
(``NO_COLOR``); colour only repeats it: within green, near misses yellow, far misses red,
nothing to compare dim. The rows are built off the UI thread (:func:`report_rows` in the
store worker); this widget only shows them.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from fnn_tui.report.reproduction import (
    METRICS,
    TITLES,
    MetricSummary,
    PresetReport,
    Spread,
    verdict_style,
)

COLUMNS = [("number", "#"), ("preset", "preset"), ("n", "n"), ("dead", "dead"), ("diverged", "div")]
for _metric in METRICS:
    COLUMNS += [(_metric, TITLES[_metric]), (f"{_metric}_notes", "notes")]


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def spread_cell(s: Spread) -> Text:
    """Our median (min–max), or one number, or a dash."""
    if s.n == 0:
        return Text("—", style="dim", justify="right")
    if s.n == 1 or s.min == s.max:
        return Text(_num(s.median), justify="right")
    return Text(f"{_num(s.median)} ({_num(s.min)}–{_num(s.max)})", justify="right")


def notes_cell(m: MetricSummary) -> Text:
    """The notes' number and the verdict word: "1.034 within", "0.00296 49× below"."""
    if m.notes is None:
        return Text("—", style="dim")
    word = m.verdict.label or m.verdict.kind.value
    return Text(f"{m.notes.text} {word}", style=verdict_style(m))


def report_cells(r: PresetReport) -> list[object]:
    """One preset's row; ``n`` counts the finished runs, ``+k`` the ones left out."""
    n = str(r.finished) + (f"+{r.other}" if r.other else "")
    cells: list[object] = [
        Text(str(r.number), justify="right"), r.name + ("*" if r.differs else ""), Text(n, justify="right"),
        Text(str(r.dead), justify="right", style="yellow" if r.dead else ""),
        Text(str(r.diverged), justify="right", style="red" if r.diverged else ""),
    ]
    for m in r.metrics:
        cells += [spread_cell(m.all), notes_cell(m)]
    return cells


class ReportTable(DataTable):
    """The report, one row per preset (a row key is the preset's name)."""

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
            self.add_row(*report_cells(r), key=r.name)
        if self.row_count:
            self.move_cursor(row=min(row, self.row_count - 1))
