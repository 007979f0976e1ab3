"""Two presets compared with statistics in the app (``x`` with two presets marked): what
``fnn-tui compare A B`` prints (counts, dead and diverged rates, medians, intervals, tests,
a power note per metric), computed from the store in a thread worker (the bootstrap takes a
moment) and shown as Markdown; ctrl+s saves it as the command writes it.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Markdown
from textual.worker import Worker, WorkerState

from fnn_tui.core.catalog import Catalog
from fnn_tui.report.compare import compare, preset_side, render
from fnn_tui.report.provenance import APP_SAVE, provenance_of, stamped
from fnn_tui.store.db import DB_NAME
from fnn_tui.store.runs import Store
from fnn_tui.tui.screens.dialogs import NothingToSave, SaveScreen


def comparison_text(store: Store, fmt: str, catalog: Catalog, a: str, b: str, *, provenance: bool = True) -> str:
    """``fnn-tui compare A B`` in ``fmt`` (with the provenance of the app's Save), or
    :class:`NothingToSave` naming the side that has no run to count."""
    sides = [preset_side(store, catalog, name) for name in (a, b)]
    empty = [side.label for side in sides if not side.counted()]
    if empty:
        raise NothingToSave(f"No finished or diverged run of {' or '.join(empty)} yet: train some first "
                            "(r, with seeds such as 0-9 in the seeds field).")
    text = render(compare(*sides), fmt)
    if not provenance:
        return text
    made = provenance_of(f"{APP_SAVE} (the comparison of {a} and {b})", store,
                         [r.run_id for side in sides for r in side.counted()])
    return stamped(text, fmt, made)


class CompareScreen(Screen[None]):
    """Preset ``a`` against preset ``b``, over their stored seeds; escape or x goes back."""

    HELP = "compare"  # its page in the help (dialogs.HELPS)
    COVERS_LAB = True  # the app's lab keys do not act under it
    BINDINGS = [Binding("escape,x", "close", "Back"), Binding("ctrl+s", "save", "Save")]
    DEFAULT_CSS = """
    CompareScreen #compare-note { height: auto; width: 100%; padding: 0 1; }
    CompareScreen #compare-body { height: 1fr; }
    """

    def __init__(self, home: Path, catalog: Catalog, a: str, b: str) -> None:
        super().__init__()
        self.home = home
        self.catalog = catalog
        self.a, self.b = a, b
        self.text: str | None = None  # the comparison shown (None: not read yet, or nothing to show)

    def compose(self) -> ComposeResult:
        yield Label(f"{self.a} (A) against {self.b} (B): reading the store…", id="compare-note")
        with VerticalScroll(id="compare-body"):
            yield Markdown("", id="compare-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-body").focus()
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare", name="compare")
    def _load(self) -> None:
        if not (self.home / DB_NAME).exists():
            self.app.call_from_thread(self.show, None, "Nothing is stored yet: train the two presets first (r).")
            return
        try:
            with Store(self.home, reading=True) as store:
                text = comparison_text(store, "md", self.catalog, self.a, self.b, provenance=False)
        except NothingToSave as exc:
            self.app.call_from_thread(self.show, None, str(exc))
            return
        self.app.call_from_thread(self.show, text, "")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "compare" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.show(None, f"cannot compare: {type(error).__name__}: {error}")

    def show(self, text: str | None, problem: str) -> None:
        """The comparison, or the line that says why there is none."""
        self.text = text
        note = problem or (f"{self.a} (A) against {self.b} (B) over their stored seeds, as `fnn-tui compare "
                           f"{self.a} {self.b}`; ↑↓ scroll, ctrl+s saves, esc goes back.")
        self.query_one("#compare-note", Label).update(note)
        if text is not None:
            self.query_one("#compare-text", Markdown).update(text)

    def action_save(self) -> None:
        """Save the comparison in Markdown, CSV or JSON, as the command writes it."""
        def saved(path: Path | None) -> None:
            if path is not None:
                self.app.notify(f"Saved the comparison to {path}", title="Saved")

        self.app.push_screen(SaveScreen(self.home, what="compare", stem=f"fnn-compare-{self.a}-{self.b}",
                                        make=lambda store, fmt: comparison_text(store, fmt, self.catalog,
                                                                                self.a, self.b)), saved)

    def action_close(self) -> None:
        """Back to the app."""
        self.dismiss(None)
