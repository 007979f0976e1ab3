"""The sweeps list (the app's ``w``) and each sweep's report: one row per variant over its
seeds, the best marked, as ``fnn-tui report --sweep NAME`` makes it. The store is read in
thread workers; the screens only show what comes back."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from fnn_tui.core.catalog import Catalog
from fnn_tui.report.provenance import APP_SAVE, provenance_of, stamped
from fnn_tui.report.sweeps import (
    SweepReport,
    cell,
    chosen_runs,
    render,
    resolve,
    seeds_text,
    sweep_report,
    title,
)
from fnn_tui.store.db import DB_NAME
from fnn_tui.store.runs import Store
from fnn_tui.store.sweeps import get_sweep, list_sweeps
from fnn_tui.tui.screens.dialogs import NothingToSave, SaveScreen
from fnn_tui.tui.widgets.sideways import SidewaysTable

CSS = """
SweepsScreen Label, SweepReportScreen Label { height: auto; width: 100%; padding: 0 1; }
SweepsScreen DataTable, SweepReportScreen DataTable { height: 1fr; }
"""


def stored_report(store: Store, name: str, catalog: Catalog) -> SweepReport | None:
    """The report of the stored sweep ``name`` (None when there is none), its base preset's
    settings from ``catalog`` where the preset is there."""
    record = get_sweep(store, name)
    if record is None:
        return None
    sweep = resolve(record)
    base = next((p for p in catalog.valid() if p.name == sweep.base.name), None)
    return sweep_report(store, sweep, base)


def sweep_text(store: Store, fmt: str, name: str, catalog: Catalog) -> str:
    """The sweep's report as ``fnn-tui report --sweep NAME`` writes it, with the provenance of
    the app's Save."""
    report = stored_report(store, name, catalog)
    if report is None:
        raise NothingToSave(f"No stored sweep named {name!r}.")
    made = provenance_of(f"{APP_SAVE} (the report of sweep {name})", store,
                         [i for row in report.rows for i in row.runs])
    return stamped(render(report, fmt), fmt, made)


class SweepsTable(DataTable):
    """The sweeps list's table: its enter (open the report) is shown in the footer, where a
    plain DataTable's hidden enter would hide the screen's."""

    BINDINGS = [Binding("enter", "select_cursor", "Report", show=True)]


class SweepsScreen(Screen[str | None]):
    """Every stored sweep: name, preset, grid, seeds and runs done; enter opens its report,
    r goes back with its name for the app to train what it is missing."""

    HELP = "sweeps"  # its page in the help (dialogs.HELPS)
    COVERS_LAB = True  # the app's lab keys do not act under it
    BINDINGS = [Binding("escape,w", "close", "Back"), Binding("r", "train", "Train")]  # enter: the table's
    DEFAULT_CSS = CSS

    def __init__(self, home: Path, catalog: Catalog) -> None:
        super().__init__()
        self.home = home
        self.catalog = catalog

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Sweeps: enter shows a sweep's report, r trains what it is missing; esc goes back. "
                        "e in the lab makes one (a setting given several values).", id="sweeps-hint")
            yield SweepsTable(id="sweeps-table", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    @property
    def table(self) -> DataTable:
        """The list of sweeps."""
        return self.query_one("#sweeps-table", DataTable)

    def on_mount(self) -> None:
        for key in ("name", "preset", "grid", "seeds", "done"):
            self.table.add_column(key, key=key)
        self.table.focus()
        self._load()

    @work(thread=True, exit_on_error=False, group="store", name="sweeps")
    def _load(self) -> None:
        rows = []
        if (self.home / DB_NAME).exists():
            with Store(self.home, reading=True) as store:
                for record in list_sweeps(store):
                    sweep = resolve(record)
                    done = sum(len(v) for v in chosen_runs(store, sweep).values())
                    grid = " x ".join(f"{k.split('.', 1)[1]} {len(v)}" for k, v, _ in sweep.grid.axes)
                    rows.append((record.name, record.preset, grid, seeds_text(record.seeds),
                                 f"{done}/{len(sweep.variants) * len(sweep.seeds)}"))
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[tuple[str, ...]]) -> None:
        self.table.clear()
        for row in rows:
            self.table.add_row(*row, key=row[0])
        if not rows:
            self.query_one("#sweeps-hint", Label).update(
                "No sweeps stored yet: in the lab, e and a setting given several values (lr 0.001,0.01,0.1) "
                "makes one, as `fnn-tui sweep 8 --set lr=0.001,0.01,0.1` does. esc goes back.")

    def action_open(self) -> None:
        """The highlighted sweep's report."""
        if self.table.row_count == 0:
            return
        key = self.table.coordinate_to_cell_key(self.table.cursor_coordinate).row_key.value
        self.app.push_screen(SweepReportScreen(self.home, str(key), self.catalog))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_train(self) -> None:
        """Back to the lab with the highlighted sweep, to train its pairs not done yet."""
        if self.table.row_count:
            self.dismiss(str(self.table.coordinate_to_cell_key(self.table.cursor_coordinate).row_key.value))

    def action_close(self) -> None:
        """Back to the app."""
        self.dismiss(None)


class SweepReportScreen(Screen[None]):
    """One sweep's report: a row per variant, median (min–max) over its seeds."""

    HELP = "sweep"  # its page in the help (dialogs.HELPS)
    COVERS_LAB = True  # the app's lab keys do not act under it
    BINDINGS = [Binding("escape", "close", "Back"), Binding("ctrl+s", "save", "Save")]
    DEFAULT_CSS = CSS

    def __init__(self, home: Path, name: str, catalog: Catalog) -> None:
        super().__init__()
        self.home = home
        self.sweep_name = name
        self.catalog = catalog
        self.report: SweepReport | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Sweep {self.sweep_name}", id="sweep-title")
            # wider than 80 columns: ← → page sideways, the variant's name stays
            yield SidewaysTable(id="sweep-table", cursor_type="row", zebra_stripes=True, fixed_columns=1)
            yield Label("", id="sweep-notes")
        yield Footer(compact=True)

    @property
    def table(self) -> DataTable:
        """The variants' rows."""
        return self.query_one("#sweep-table", DataTable)

    def on_mount(self) -> None:
        for key, label in (("variant", "variant"), ("n", "n/dead/div"), ("test_loss", "test loss"),
                           ("train_loss", "train loss"), ("test_ratio", "test ratio")):
            self.table.add_column(label, key=key)
        self.table.focus()
        self._load()

    @work(thread=True, exit_on_error=False, group="store", name="sweep-report")
    def _load(self) -> None:
        with Store(self.home, reading=True) as store:
            report = stored_report(store, self.sweep_name, self.catalog)
        self.app.call_from_thread(self._show, report)

    def action_save(self) -> None:
        """Save the sweep's report, as `fnn-tui report --sweep NAME -o FILE` does."""
        if self.report is None:
            self.app.notify("Nothing to save: no report of this sweep.", severity="warning")
            return

        def saved(path: Path | None) -> None:
            if path is not None:
                self.app.notify(f"Saved the report of sweep {self.sweep_name} to {path}", title="Saved")

        self.app.push_screen(SaveScreen(self.home, what="sweep", stem=f"fnn-sweep-{self.sweep_name}",
                                        make=lambda store, fmt: sweep_text(store, fmt, self.sweep_name,
                                                                           self.catalog)), saved)

    def _show(self, report: SweepReport | None) -> None:
        self.report = report
        if report is None:
            self.query_one("#sweep-title", Label).update(f"No stored sweep named {self.sweep_name!r}. esc goes back.")
            return
        self.query_one("#sweep-title", Label).update(title(report))
        self.table.clear()
        for r in report.rows:
            missing = f" +{r.missing}" if r.missing else ""
            name = Text(f"* {r.name} (best)", style="bold") if r.best else Text(f"  {r.name}")
            self.table.add_row(name, f"{r.finished}/{r.dead}/{r.diverged}{missing}",
                               *(Text(cell(r.metrics[m]), justify="right") for m in ("test_loss", "train_loss",
                                                                                       "test_ratio")),
                               key=r.name)
        notes = ("median (min–max) over finished seeds; * best: lowest median test loss; +N: seeds to do; "
                 "←→ scroll.")
        if report.caution:
            notes += f" Caution: {report.caution}."
        self.query_one("#sweep-notes", Label).update(notes + " esc goes back.")

    def action_close(self) -> None:
        """Back to the sweeps list."""
        self.dismiss(None)
