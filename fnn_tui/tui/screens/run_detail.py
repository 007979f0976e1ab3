"""One run in detail (``i`` or enter in the runs list), and the runs list's filter (``f``).

The detail is :func:`fnn_tui.report.runinfo.run_detail`'s rows, the same words as
``fnn-tui runs show``: the run's settings, its end, its place in its study, and why it was
flagged dead or diverged. It is read in a thread worker; the screen scrolls at 80x24.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from fnn_tui.report.export import ResultRow
from fnn_tui.report.runinfo import FILTER_HELP, FilterError, RunDetail, RunFilter, parse_filter, run_detail
from fnn_tui.report.studies import seed_roles
from fnn_tui.store.db import StoreError
from fnn_tui.store.runs import RunRecord, Store, TagError


def filtered_rows(rows: list[ResultRow], records: dict[int, RunRecord], wanted: RunFilter) -> list[ResultRow]:
    """The runs list's rows that pass ``wanted``."""
    if wanted.empty:
        return rows
    return [r for r in rows if (rec := records.get(r.run_id)) is not None and wanted.matches(rec)]


def load_detail(home: Path, run_id: int) -> RunDetail | str:
    """The run's detail, or the line that says why there is none (call it off the UI thread)."""
    try:
        with Store(home, reading=True) as store:
            record = store.get_run(run_id)
            if record is None:
                return f"No run {run_id} in the store."
            role = seed_roles(store.seed_runs(record.study, record.seed)).get(run_id)
            return run_detail(store, record, role)
    except StoreError as exc:
        return str(exc)


def detail_table(detail: RunDetail) -> Table:
    """The rows as a two-column table that wraps its values."""
    table = Table(show_header=False, box=None, padding=(0, 1, 0, 0), expand=True)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", ratio=1)
    for key, value in detail.rows:
        table.add_row(key, Text(value))
    return table


class RunDetailScreen(ModalScreen[None]):
    """A run's detail over the runs list; escape, i or q closes it."""

    BINDINGS = [Binding("escape,i,q", "close", "Close")]

    DEFAULT_CSS = """
    RunDetailScreen {
        align: center middle;
    }
    RunDetailScreen #detail-box {
        width: 100%;
        max-width: 100;
        height: 100%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    RunDetailScreen #detail-title {
        text-style: bold;
        width: 100%;
    }
    RunDetailScreen #detail-hint {
        color: $text-muted;
    }
    """

    def __init__(self, home: Path, run_id: int) -> None:
        super().__init__()
        self.home = home
        self.run_id = run_id
        self.detail: RunDetail | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-box"):
            yield Label(f"Run {self.run_id}", id="detail-title")
            with VerticalScroll(id="detail-scroll"):
                yield Static("reading…", id="detail-body")
            yield Label("up/down scroll · esc closes", id="detail-hint")

    @property
    def body(self) -> Static:
        """The detail's rows."""
        return self.query_one("#detail-body", Static)

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").focus()
        self._load()

    @work(thread=True, exclusive=True, group="detail")
    def _load(self) -> None:
        self.app.call_from_thread(self.show, load_detail(self.home, self.run_id))

    def show(self, detail: RunDetail | str) -> None:
        """Show the detail read (or why there is none)."""
        if isinstance(detail, str):
            self.body.update(detail)
            return
        self.detail = detail
        self.query_one("#detail-title", Label).update(detail.title)
        self.body.update(detail_table(detail))

    def action_close(self) -> None:
        """Back to the runs list."""
        self.dismiss(None)


class FilterScreen(ModalScreen[RunFilter | None]):
    """Ask for the runs list's filter: words such as ``status:finished dead tag:trial``;
    an empty field shows every run. Enter applies, escape keeps the filter as it was."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    FilterScreen {
        align: center middle;
    }
    """

    def __init__(self, current: RunFilter) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Filter the runs list", classes="title")
            yield Label(f"Words: {FILTER_HELP}. Empty: every run. Enter applies, escape cancels.")
            yield Input(value=self.current.describe(), placeholder="status:finished dead", id="filter")
            yield Label("", id="error")

    def on_mount(self) -> None:
        self.query_one("#filter", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            self.dismiss(parse_filter(event.value))
        except (FilterError, TagError) as exc:
            self.query_one("#error", Label).update(str(exc))

    def action_cancel(self) -> None:
        """Keep the filter as it was."""
        self.dismiss(None)
