"""The notes' conclusions in the app (``c``): one row per conclusion with its verdict as the
notes drew it and controlled, and below the table the highlighted one's sentence, reading
and statistics. It judges the stored runs, in a thread worker (the bootstrap takes a
moment); ``r`` (``a``) closes it with the studies of the highlighted conclusion (of all
eight) for the app to train, as ``fnn-tui claims`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from fnn_tui.core.catalog import Catalog
from fnn_tui.core.presets import Preset
from fnn_tui.report.provenance import APP_SAVE, provenance_of, stamped
from fnn_tui.report.verdicts import ClaimResult, counted_run_ids, judge_store, render
from fnn_tui.store.runs import Store
from fnn_tui.tui.screens.dialogs import SaveScreen

COLUMNS = ("#", "conclusion", "notes' rows", "controlled", "n")
NOTE = ("Does the notes' reasoning hold? Verdicts from the stored runs; r trains what the highlighted "
        "conclusion is missing, a what every one is.")


@dataclass(frozen=True)
class ClaimsTraining:
    """What the view hands the app to train: the studies the verdicts of ``what`` stand on
    (each once, as judged: the notes' rows and the controlled variants)."""

    presets: tuple[Preset, ...]
    what: str  # "conclusion 3 (depth-needs-norm)", "the 8 conclusions"


def studies_of(results: list[ClaimResult]) -> tuple[Preset, ...]:
    """Every study the verdicts of ``results`` compare, each once, in order."""
    seen: dict[str, Preset] = {}
    for r in results:
        tests = [r.notes] + ([r.controlled] if r.controlled is not None else [])
        for t in tests:
            for side in (t.a, t.b):
                seen.setdefault(side.preset.study_digest(), side.preset)
    return tuple(seen.values())


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


class ClaimsScreen(Screen[ClaimsTraining | None]):
    """The eight conclusions and their verdicts; escape or c goes back, r and a go back with
    studies to train."""

    HELP = "claims"  # its page in the help (dialogs.HELPS)
    COVERS_LAB = True  # the app's lab keys do not act under it
    BINDINGS = [Binding("escape", "close", "Back"), Binding("c", "close", "Back", show=False),
                Binding("r", "train", "Train"), Binding("a", "train_all", "Train all"),
                Binding("ctrl+s", "save", "Save")]

    DEFAULT_CSS = """
    ClaimsScreen #claims-table { height: 11; }
    ClaimsScreen #claims-detail { height: 1fr; padding: 0 1; }
    ClaimsScreen #claims-note { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, home: Path, catalog: Catalog, row: int = 0) -> None:
        super().__init__()
        self.home = home
        self.catalog = catalog
        self.results: list[ClaimResult] = []
        self.row = row  # the highlighted conclusion (the app opens the view again on it)

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
        note = NOTE
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
            self.row = min(self.row, len(results) - 1)
            self.table.move_cursor(row=self.row)
            self._describe(self.row)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.table and 0 <= event.cursor_row < len(self.results):
            self.row = event.cursor_row
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

    def action_train(self) -> None:
        """Back to the lab with the highlighted conclusion's studies to train."""
        row = self.table.cursor_row
        if self.results and 0 <= row < len(self.results):
            r = self.results[row]
            self.dismiss(ClaimsTraining(studies_of([r]), f"conclusion {r.conclusion.number} ({r.conclusion.key})"))

    def action_train_all(self) -> None:
        """Back to the lab with every conclusion's studies to train."""
        if self.results:
            self.dismiss(ClaimsTraining(studies_of(self.results), f"the {len(self.results)} conclusions"))

    def action_close(self) -> None:
        """Back to the app."""
        self.dismiss(None)
