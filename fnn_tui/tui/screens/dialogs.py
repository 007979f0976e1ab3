"""Modal dialogs: save the results table, a question with choices, help."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, RadioButton, RadioSet

from fnn_tui.report.export import FORMATS, format_for_path, render, results_table, write_atomic
from fnn_tui.store.runs import Store

FORMAT_LABELS = {"md": "Markdown", "csv": "CSV", "json": "JSON"}


def default_name(fmt: str) -> str:
    """``fnn-results-YYYYmmdd-HHMM.<ext>`` in the current folder."""
    return f"fnn-results-{dt.datetime.now():%Y%m%d-%H%M}.{fmt}"


class SaveScreen(ModalScreen[Path | None]):
    """Ask for a path and a format, then write the table atomically (off the UI thread)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, home: Path) -> None:
        super().__init__()
        self.home = home
        self.fmt = "md"

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Save the results table", classes="title")
            yield Label("The newest finished or diverged run of each preset, by experiment.")
            yield Label("File (the suffix picks the format) — enter or ctrl+s saves, escape cancels")
            yield Input(value=default_name("md"), id="path")
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
            with Store(self.home) as store:
                rows = results_table(store.list_runs())
            write_atomic(path, render(rows, fmt))
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
        for key, _, value in self.choices:
            self._bindings.bind(key, f"choose('{value}')", show=False)
        self.query(Button).last().focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "").removeprefix("choice-"))

    def action_choose(self, value: str) -> None:
        """Close with the chosen value."""
        self.dismiss(value)


HELP = """\
# fnn-tui

Pick a preset on the left, choose device and engine, press **r**.

| key | does |
|---|---|
| up/down | choose a preset |
| space | mark a preset for Run all |
| r | run the highlighted preset |
| a | run all (the marked presets, or every one) |
| s | stop the run (stored as cancelled) |
| u | resume the highlighted interrupted, cancelled, crashed or failed run (results view) |
| t | switch between the lab and the results table |
| o | sort the results table |
| p | plot the highlighted run (lab: the preset's newest run; results: the row's run); esc or p goes back, v switches panels when narrow |
| ctrl+s | save the results table (Markdown, CSV, JSON) |
| tab | move between list, controls and views |
| ctrl+p | command palette |
| ? | this help |
| q | quit (while a run trains: stop it, or leave it running in the background) |

**ratio** is the seed's "acc": the mean of |ŷ/y|; 1.0 is perfect. The target is
close to zero near x = 1 and x = 2, so single samples can make it large.

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
