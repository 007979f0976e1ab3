"""The notes' conclusions in the app (``c``): one row per conclusion with its verdict as the
notes drew it and controlled, and below the table the highlighted one's sentence, reading
and statistics. It judges the stored runs only, in a thread worker (the bootstrap takes a
moment); ``fnn-tui claims`` trains the seeds that are missing.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from fnn_tui.core.catalog import Catalog
from fnn_tui.report.provenance import APP_SAVE, provenance_of, stamped
from fnn_tui.report.verdicts import ClaimResult, counted_run_ids, judge_store, render
from fnn_tui.store.runs import Store
from fnn_tui.tui.screens.dialogs import SaveScreen

COLUMNS = ("#", "conclusion", "notes' rows", "controlled", "n")


def judge_home(home: Path, catalog: Catalog) -> tuple[list[ClaimResult], str]:
    """The verdicts from the store at ``home`` (call it off the UI thread)."""
    with Store(home, reading=True) as store:
        return judge_store(store, catalog)


def claims_text(store: Store, fmt: str, catalog: Catalog) -> str:
    """The verdicts as the view shows them (``md``: the section that ends ``fnn-tui report -f
    md``; or ``json``), with the provenance of the app's Save."""
    results, differs = judge_store(store, catalog)
    made = provenance_of(f"{APP_SAVE} (the notes' conclusions)", store, counted_run_ids(results))
    return stamped(render(results, fmt, differs=differs), fmt, made)


class ClaimsScreen(Screen[None]):
    """The eight conclusions and their verdicts; escape or c goes back."""

    HELP = "claims"  # its page in the help (dialogs.HELPS)
    COVERS_LAB = True  # the app's lab keys do not act under it
    BINDINGS = [Binding("escape", "close", "Back"), Binding("c", "close", "Back", show=False),
                Binding("ctrl+s", "save", "Save")]

    DEFAULT_CSS = """
    ClaimsScreen #claims-table { height: 11; }
    ClaimsScreen #claims-detail { height: 1fr; padding: 0 1; }
    ClaimsScreen #claims-note { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, home: Path, catalog: Catalog) -> None:
        super().__init__()
        self.home = home
        self.catalog = catalog
        self.results: list[ClaimResult] = []

    def compose(self) -> ComposeResult:
        yield Static("Does the notes' reasoning hold? Reading the store…", id="claims-note")
        yield DataTable(id="claims-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="claims-detail")
        yield Footer()

    @property
    def table(self) -> DataTable:
        """The verdicts table."""
        return self.query_one("#claims-table", DataTable)

    @property
    def detail(self) -> Static:
        """The highlighted conclusion's text."""
        return self.query_one("#claims-detail", Static)

    def on_mount(self) -> None:
        self.table.add_columns(*COLUMNS)
        self.table.focus()
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="claims", name="claims")
    def _load(self) -> None:
        results, differs = judge_home(self.home, self.catalog)
        self.app.call_from_thread(self.show, results, differs)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "claims" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.query_one("#claims-note", Static).update(f"cannot judge: {type(error).__name__}: {error}")

    def show(self, results: list[ClaimResult], differs: str) -> None:
        """Fill the table with ``results``."""
        self.results = results
        note = "Does the notes' reasoning hold? Verdicts from the stored runs; `fnn-tui claims` trains what is missing."
        if differs:
            note += f" Not the notes' settings: {differs}."
        self.query_one("#claims-note", Static).update(Text(note))
        self.table.clear()
        for r in results:
            ctrl = "—" if r.controlled is None else r.controlled.verdict.text
            n = f"{r.notes.comparison.a.n}/{r.notes.comparison.b.n}"
            self.table.add_row(str(r.conclusion.number), r.conclusion.key, r.notes.verdict.text, ctrl, n,
                               key=str(r.conclusion.number))
        if results:
            self._describe(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.table and 0 <= event.cursor_row < len(self.results):
            self._describe(event.cursor_row)

    def _describe(self, index: int) -> None:
        r = self.results[index]
        c = r.conclusion
        lines = [c.notes, c.claim, f"notes' rows ({r.notes.a.label} vs {r.notes.b.label}): "
                 f"{r.notes.verdict.text}: {r.notes.verdict.why}"]
        if r.controlled is not None:
            t = r.controlled
            lines.append(f"controlled ({t.a.label} vs {t.b.label}): {t.verdict.text}: {t.verdict.why}")
        lines.append(f"confounds: {', '.join(c.confounds) or 'none'}")
        self.detail.update(Text("\n".join(lines)))

    def action_save(self) -> None:
        """Save the verdicts as shown, in Markdown or JSON."""
        def saved(path: Path | None) -> None:
            if path is not None:
                self.app.notify(f"Saved the notes' conclusions to {path}", title="Saved")

        self.app.push_screen(SaveScreen(self.home, what="claims",
                                        make=lambda store, fmt: claims_text(store, fmt, self.catalog)), saved)

    def action_close(self) -> None:
        """Back to the app."""
        self.dismiss(None)
