"""The runs list: every run in the store, our numbers beside the notes'; a dead network is
said beside its status ("finished, dead"), and so is a run its study does not count
("duplicate": another run of its settings and seed is counted; "excluded", its row dim)."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from fnn_tui.core.events import EpochMetrics
from fnn_tui.core.status import RunStatus
from fnn_tui.report.export import ResultRow, result_row, status_text
from fnn_tui.report.studies import Role, SeedRole
from fnn_tui.store.runs import RunRecord

COLUMNS = [
    ("run", "run"), ("number", "#"), ("preset", "preset"), ("seed", "seed"), ("status", "status"),
    ("epochs", "epochs"), ("train_loss", "train loss"), ("notes_train_loss", "notes"), ("train_ratio", "train ratio"),
    ("notes_train_ratio", "notes"), ("test_loss", "test loss"), ("notes_test_loss", "notes"),
    ("test_ratio", "test ratio"), ("notes_test_ratio", "notes"), ("engine", "engine"), ("device", "device"),
    ("wall", "wall s"), ("setting", "setting"), ("lr_decay", "lr+decay"),
]
# every run, the stopped ones included so u can resume them; queued ones are the rest of a
# "Run all" that has not reached them yet
SHOWN = tuple(status for status in RunStatus if status != RunStatus.QUEUED)
SORT_CYCLE = ["run", "preset", "seed", "train_loss", "test_loss", "test_ratio", "wall"]


def table_rows(records: list[RunRecord], variants: dict[int, str] | None = None) -> list[ResultRow]:
    """The rows to show (``variants``: each run's settings against its preset file, by run
    id); parses each run's stored preset, so call it off the UI thread."""
    return [result_row(r, (variants or {}).get(r.id, "")) for r in records if r.status in SHOWN]



def _num(value: float | None) -> Text:
    return Text("" if value is None else f"{value:.4g}", justify="right")


class ResultsTable(DataTable):
    """Sortable (press o, or select a header); the active run is a live row."""

    BINDINGS = [Binding("o", "sort_column", "Sort", id="sort")]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self._sort: tuple[str, bool] = ("run", True)
        self.rows_by_run: dict[int, ResultRow] = {}
        self.roles: dict[int, SeedRole] = {}

    def load(self, rows: list[ResultRow], roles: dict[int, SeedRole] | None = None) -> None:
        """Replace the rows (built off the UI thread by :func:`table_rows`); ``roles`` says which
        runs their studies do not count."""
        self.clear()
        self.rows_by_run = {}
        self.roles = roles or {}
        for row in rows:
            self._put(row)
        self._apply_sort()

    def _cells(self, r: ResultRow) -> list[object]:
        role = self.roles.get(r.run_id)
        word = f", {role.role.label}" if role is not None and role.role.label else ""
        status = Text(status_text(r) + word, style=RunStatus(r.status.split("@")[0]).style)
        cells = self._plain_cells(r, status)
        if role is not None and role.role is Role.EXCLUDED:  # kept, shown, and dim
            cells = [c.copy() if isinstance(c, Text) else Text(str(c)) for c in cells]
            for cell in cells:
                cell.stylize("dim")
        return cells

    def _plain_cells(self, r: ResultRow, status: Text) -> list[object]:
        notes_ratio = (_num(r.notes_train_ratio) if r.notes_train_ratio is not None
                       else Text(r.notes_remark.replace("train acc ", "")))
        wall = _num(r.wall_seconds) if r.wall_seconds is not None else Text("")
        return [Text(str(r.run_id), justify="right"), Text(str(r.number), justify="right"), r.label,
                Text(str(r.seed), justify="right"), status, r.epochs,
                _num(r.train_loss), _num(r.notes_train_loss), _num(r.train_ratio), notes_ratio,
                _num(r.test_loss), _num(r.notes_test_loss), _num(r.test_ratio), _num(r.notes_test_ratio),
                r.engine, r.device, wall, r.setting, r.lr_decay]

    def _put(self, row: ResultRow) -> None:
        key = str(row.run_id)
        self.rows_by_run[row.run_id] = row
        if key in self.rows:
            for (col, _), cell in zip(COLUMNS, self._cells(row)):
                self.update_cell(key, col, cell)
        else:
            self.add_row(*self._cells(row), key=key)

    def live(self, run_id: int, last: EpochMetrics) -> None:
        """Update the running run's row with its newest epoch (once the row is loaded)."""
        row = self.rows_by_run.get(run_id)
        if row is None:
            return
        total = row.epochs.split("/")[-1]
        self._put(replace(row, status=RunStatus.RUNNING.label, dead=last.dead, epochs=f"{last.epoch}/{total}",
                          train_loss=last.train_loss, train_ratio=last.train_ratio,
                          test_loss=last.test_loss, test_ratio=last.test_ratio))

    def sort_value(self, value: object) -> tuple[int, object]:
        text = value.plain if isinstance(value, Text) else str(value)
        try:
            return (0, float(text))
        except ValueError:
            return (1 if text else 2, text)

    def _apply_sort(self) -> None:
        column, reverse = self._sort
        if self.row_count:
            self.sort(column, key=self.sort_value, reverse=reverse)

    def sort_by(self, column: str) -> None:
        """Sort by ``column``; the same column again flips the order."""
        current, reverse = self._sort
        self._sort = (column, not reverse if column == current else False)
        self._apply_sort()

    def action_sort_column(self) -> None:
        """Step the sort through the columns that matter most (the cursor selects rows)."""
        current = self._sort[0]
        self.sort_by(SORT_CYCLE[(SORT_CYCLE.index(current) + 1) % len(SORT_CYCLE)] if current in SORT_CYCLE else "run")

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))
