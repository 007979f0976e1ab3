"""Modal dialogs: save the results table or the report, a question with choices, help."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, RadioButton, RadioSet

from fnn_tui.core.catalog import Catalog
from fnn_tui.report.export import FORMATS, format_for_path, render, results_table, write_atomic
from fnn_tui.report.provenance import APP_SAVE, provenance
from fnn_tui.store.db import StoreError
from fnn_tui.store.runs import Store

FORMAT_LABELS = {"md": "Markdown", "csv": "CSV", "json": "JSON"}


def default_name(fmt: str, stem: str = "fnn-results") -> str:
    """``<stem>-YYYYmmdd-HHMM.<ext>`` in the current folder."""
    return f"{stem}-{dt.datetime.now():%Y%m%d-%H%M}.{fmt}"


class SaveScreen(ModalScreen[Path | None]):
    """Ask for a path and a format, then write the results table, or with ``report`` the
    report, atomically (off the UI thread)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, home: Path, *, report: bool = False, catalog: Catalog | None = None) -> None:
        super().__init__()
        self.home = home
        self.fmt = "md"
        self.report = report
        self.catalog = catalog

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            if self.report:
                yield Label("Save the report", classes="title")
                yield Label("One row per preset over all its seeds: median (min–max), dead and diverged "
                            "counts, the notes' numbers and a verdict; JSON has every run.")
            else:
                yield Label("Save the results table", classes="title")
                yield Label("The newest finished or diverged run of each preset, beside the notes' numbers.")
            yield Label("File (the suffix picks the format) — enter or ctrl+s saves, escape cancels")
            yield Input(value=default_name("md", "fnn-report" if self.report else "fnn-results"), id="path")
            with RadioSet(id="format"):
                for key in FORMATS:
                    yield RadioButton(FORMAT_LABELS[key], value=key == "md", name=key)
            yield Label("", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        new = event.pressed.name or "md"
        path_input = self.query_one("#path", Input)
        path = Path(path_input.value)
        if path.suffix.lstrip(".") in FORMATS:
            path_input.value = str(path.with_suffix(f".{new}"))
        self.fmt = new

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        """Write the file; errors stay in the dialog."""
        text = self.query_one("#path", Input).value.strip()
        if not text:
            self.query_one("#error", Label).update("Give a file name.")
            return
        path = Path(text).expanduser()
        fmt = format_for_path(path) or self.fmt  # a typed ".csv" means CSV
        self.query_one("#error", Label).update("saving…")
        self._write(path, fmt)

    @work(thread=True, exclusive=True, group="save")
    def _write(self, path: Path, fmt: str) -> None:
        try:
            with Store(self.home, reading=True) as store:
                if self.report:
                    from fnn_tui.report import reproduction
                    from fnn_tui.report.studies import load_studies

                    catalog = self.catalog if self.catalog is not None else Catalog(())
                    studies = load_studies(store, catalog)
                    reports = reproduction.reproduction(s.study for s in studies)
                    counted = [r for st in studies for r in st.records]
                    made = provenance(f"{APP_SAVE} (by preset: the report)", devices=(r.device for r in counted),
                                      engines=(r.engine for r in counted))
                    text = reproduction.render(reports, fmt, made)
                else:
                    rows = results_table(store.list_runs())
                    made = provenance(f"{APP_SAVE} (the results table)", devices=(r.device for r in rows),
                                      engines=(r.engine for r in rows))
                    text = render(rows, fmt, made)
            write_atomic(path, text)
        except StoreError as exc:  # the store, not the file: its line says what to do
            self.app.call_from_thread(self.query_one("#error", Label).update, str(exc))
            return
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self.app.call_from_thread(self.query_one("#error", Label).update, f"Cannot write {path}: {reason}")
            return
        self.app.call_from_thread(self.dismiss, path.resolve())

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)


class ChoiceScreen(ModalScreen[str | None]):
    """A question with a few answers, each with its own key."""

    def __init__(self, question: str, choices: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices  # (key, label, value)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, classes="title")
            with Horizontal(classes="buttons"):
                for key, label, value in self.choices:
                    shown = "esc" if key == "escape" else key
                    yield Button(f"{label} ({shown})", id=f"choice-{value}",
                                 variant="error" if value == "stop" else "default")

    def on_mount(self) -> None:
        self.query(Button).last().focus()

    def on_key(self, event: events.Key) -> None:
        # Each answer's key is given at run time and Textual has no public way to bind keys
        # to a screen after it is made; a key reaches this handler before the app's own
        # (non-priority) bindings, so the dialog's s answers it rather than the app's Stop.
        for key, _, value in self.choices:
            if event.key == key:
                event.stop()
                event.prevent_default()
                self.dismiss(value)
                return

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "").removeprefix("choice-"))


HELP = """\
# fnn-tui

Pick a preset on the left, choose device and engine, press **r**.

| key | does |
|---|---|
| up/down | choose a preset |
| space | mark a preset for Run all |
| r | run the highlighted preset |
| a | run all (the marked presets, or every one) |
| e | the highlighted preset's settings as a form: change any (checked as you type, as `--set`), enter runs the variant with its seeds field, esc closes |
| w | the sweeps list (`fnn-tui sweep` makes them); enter opens a sweep's report, esc goes back |
| s | stop the run (stored as cancelled) |
| u | resume the highlighted interrupted, cancelled, crashed or failed run (runs list) |
| t | switch between the lab and the runs list (every stored run) |
| b | in the runs view: the runs list or the report (one row per preset over its seeds) |
| o | sort the runs list |
| i, enter | the highlighted run in detail: settings, end, why it was flagged dead or diverged (runs list) |
| f | filter the runs list: `status:finished,diverged`, `dead`, `alive`, `preset:exp08`, `tag:trial`, `excluded`, `included` |
| p | plot the highlighted run (lab: the preset's newest run; runs list: the row's run; report: the preset's seeds); esc or p goes back, v switches panels when narrow |
| c | the notes' conclusions: a verdict each over the stored seeds, as the notes drew it and controlled |
| ctrl+s | save: the report in the by-preset view, else the results table (Markdown, CSV, JSON) |
| tab | move between list, controls and views |
| ctrl+p | command palette |
| ? | this help |
| q | quit (while a run trains: stop it, or leave it running in the background) |

**ratio** is the notes' "acc": the mean of |ŷ/y|; 1.0 is perfect. The target is
close to zero near x = 1 and x = 2, so single samples can make it large.

**seeds** (below epochs): N trains seeds 0..N-1, or a list 3,7,11, or a range 0-9;
seeds already finished with the same settings are skipped. A study counts one run per
seed (the newest finished or diverged); other runs of that seed are marked **duplicate**
in the runs list, and runs left out with `fnn-tui runs exclude` are **excluded** (dim).
The report's verdict says
where the notes' number falls against our runs: within our min–max, or below / above.
**dead**: the network predicts a constant.

Losses in the sparklines are drawn on a log scale.
"""


class HelpScreen(ModalScreen[None]):
    """Key bindings and what the numbers mean."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
