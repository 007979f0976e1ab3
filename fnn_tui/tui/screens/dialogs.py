"""Modal dialogs: save what a view shows, a question with choices, help per screen."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from rich.table import Table
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from fnn_tui.core.catalog import Catalog
from fnn_tui.report.export import FORMATS, ResultRow, format_for_path, render, results_table, write_atomic
from fnn_tui.report.provenance import APP_SAVE, provenance
from fnn_tui.store.db import StoreError
from fnn_tui.store.runs import Store

FORMAT_LABELS = {"md": "Markdown", "csv": "CSV", "json": "JSON"}


def default_name(fmt: str, stem: str = "fnn-results") -> str:
    """``<stem>-YYYYmmdd-HHMM.<ext>`` in the current folder."""
    return f"{stem}-{dt.datetime.now():%Y%m%d-%H%M}.{fmt}"


SAVES = {
    # what: (title, what it holds, default file stem)
    "table": ("Save the results table",
              "Each preset's median over the seeds of its own settings (n shown), beside the notes' numbers; "
              "presets with only trial runs (other settings) are left out.", "fnn-results"),
    "runs": ("Save the runs list",
             "The runs list as shown: every run's row, in the order it is sorted.", "fnn-runs"),
    "report": ("Save the report",
               "One row per preset over all its seeds: median (min–max), dead and diverged counts, the notes' "
               "numbers and a verdict; JSON has every run.", "fnn-report"),
    "claims": ("Save the notes' conclusions",
               "The eight conclusions' verdicts as this view shows them, from the stored runs, each with its "
               "sentence, reading and statistics (the section that ends `fnn-tui report -f md`).", "fnn-claims"),
    "compare": ("Save the comparison",
                "The two presets over their stored seeds, per metric: counts, dead and diverged rates, medians, "
                "intervals, tests and a power note (as `fnn-tui compare A B`).", "fnn-compare"),
    "sweep": ("Save the sweep's report",
              "One row per variant over its seeds, the best marked (as `fnn-tui report --sweep NAME`).",
              "fnn-sweep"),
}
# the formats of each (the rest: Markdown, CSV and JSON)
SAVE_FORMATS = {"claims": ("md", "json")}

# what ``make`` gets and gives: the store (read only) and the format, the file's text
TextMaker = Callable[[Store, str], str]


class NothingToSave(Exception):
    """What a ``make`` was to write is not in the store (any more); the message says what."""


def _format_label(key: str, chosen: bool) -> str:
    # the chosen format is said in words too: without colour the radio buttons look alike
    return f"{FORMAT_LABELS[key]} ✓" if chosen else FORMAT_LABELS[key]


class SaveScreen(ModalScreen[Path | None]):
    """Ask for a path and a format, then write what the view shows (``what``: the results
    ``table``, the ``runs`` list's ``rows`` as shown, the ``report``, or, made by ``make``
    from the store, the ``claims`` or a ``sweep``'s report) atomically, off the UI thread."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, home: Path, *, what: str = "table", catalog: Catalog | None = None,
                 rows: list[ResultRow] | None = None, make: TextMaker | None = None,
                 stem: str | None = None) -> None:
        super().__init__()
        self.home = home
        self.fmt = "md"
        self.what = what
        self.catalog = catalog
        self.rows = rows or []
        self.make = make
        self.stem = stem or SAVES[what][2]
        self.formats = SAVE_FORMATS.get(what, FORMATS)

    @property
    def report(self) -> bool:
        """Whether it saves the report."""
        return self.what == "report"

    def compose(self) -> ComposeResult:
        title, holds, _ = SAVES[self.what]
        with Vertical(id="dialog"):
            yield Label(title, classes="title")
            yield Label(holds)
            yield Label("File (the suffix picks the format) — enter or ctrl+s saves, escape cancels")
            yield Input(value=default_name("md", self.stem), id="path")
            with RadioSet(id="format"):
                for key in self.formats:
                    yield RadioButton(_format_label(key, key == "md"), value=key == "md", name=key)
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
        for button in self.query(RadioButton):
            button.label = _format_label(button.name or "", button.name == new)

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
        if fmt not in self.formats:
            names = " or ".join(FORMAT_LABELS[f] for f in self.formats)
            self.query_one("#error", Label).update(f"This saves as {names}: not .{fmt}.")
            return
        self.query_one("#error", Label).update("saving…")
        self._write(path, fmt)

    @work(thread=True, exclusive=True, group="save")
    def _write(self, path: Path, fmt: str) -> None:
        try:
            if self.make is not None:
                with Store(self.home, reading=True) as store:
                    text = self.make(store, fmt)
            elif self.what == "runs":
                rows = self.rows or []
                made = provenance(f"{APP_SAVE} (the runs list, as sorted)", devices=(r.device for r in rows),
                                  engines=(r.engine for r in rows))
                text = render(rows, fmt, made)
            else:
                from fnn_tui.report import reproduction
                from fnn_tui.report.studies import load_studies

                catalog = self.catalog if self.catalog is not None else Catalog(())
                with Store(self.home, reading=True) as store:
                    studies = load_studies(store, catalog)
                if self.report:
                    counted = [r for st in studies for r in st.records]
                    made = provenance(f"{APP_SAVE} (by preset: the report)", devices=(r.device for r in counted),
                                      engines=(r.engine for r in counted))
                    text = reproduction.render(reproduction.reproduction(s.study for s in studies), fmt, made)
                else:
                    used = [r for st in studies if st.records and not st.differs for r in st.records]
                    made = provenance(f"{APP_SAVE} (the results table)", devices=(r.device for r in used),
                                      engines=(r.engine for r in used))
                    text = render(results_table(studies)[0], fmt, made)
            write_atomic(path, text)
        except StoreError as exc:  # the store, not the file: its line says what to do
            self.app.call_from_thread(self.query_one("#error", Label).update, str(exc))
            return
        except NothingToSave as exc:  # what it saves is gone from the store
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


# one help per screen: (title, [(key, what it does)], closing remarks); a key a line
LAB_KEYS = [
    ("up/down", "choose a preset"),
    ("space", "mark a preset for Run all"),
    ("r", "run it: the seeds in the seeds field that are not done yet"),
    ("R", "run again: done seeds too, stored as repeats (`run --again`)"),
    ("a", "run all: the marked presets, or every one"),
    ("e", "settings as a form; enter runs it (several values: a sweep)"),
    ("w", "the sweeps list: enter a report, r trains what one lacks"),
    ("c", "the notes' conclusions, a verdict each from the stored seeds"),
    ("x", "compare the two marked (or one marked and the highlighted)"),
    ("s", "stop: the run in progress is stored as cancelled"),
    ("t", "the runs view: the runs list, or with b the report"),
    ("p", "plot the highlighted preset's newest run"),
    ("ctrl+s", "save the results table (each preset's median over its seeds)"),
    ("tab", "between the list, the controls and the live view"),
    ("ctrl+p", "command palette: every command by name"),
    ("q", "quit (while a run trains: stop it, or leave it running)"),
]
RUNS_KEYS = [
    ("t / esc", "back to the lab"),
    ("b", "switch between the runs list and the report"),
    ("up/down", "choose a row"),
    ("left/right", "scroll sideways half a screen (more columns)"),
    ("o", "runs list: sort by the next column (again: reverse)"),
    ("u", "runs list: resume the highlighted stopped or failed run"),
    ("i / enter", "runs list: the highlighted run in detail (settings, end, why dead or diverged)"),
    ("f", "runs list: filter (status:finished dead alive preset:exp08 tag:trial excluded)"),
    ("p", "plot the row: a run, or in the report the preset's seeds"),
    ("ctrl+s", "save what the view shows: the runs list as sorted, or the report"),
    ("ctrl+p", "command palette"),
]
PLOT_KEYS = [
    ("esc / p", "back"),
    ("v", "switch between the loss curves and the fit (narrow terminals)"),
    ("s", "stop the run in progress"),
    ("ctrl+p", "command palette"),
    ("q", "quit"),
]
CLAIMS_KEYS = [
    ("up/down", "choose a conclusion: its sentence, reading and statistics show below"),
    ("r", "train what the highlighted one lacks (seeds field, else 0-9)"),
    ("a", "the same for all eight (`fnn-tui claims`)"),
    ("ctrl+s", "save the verdicts as shown (Markdown or JSON)"),
    ("esc / c", "back"),
    ("ctrl+p", "command palette"),
    ("q", "quit"),
]
COMPARE_KEYS = [
    ("up/down", "scroll"),
    ("ctrl+s", "save the comparison (Markdown, CSV or JSON, as `fnn-tui compare A B -o FILE`)"),
    ("esc / x", "back"),
    ("ctrl+p", "command palette"),
    ("q", "quit"),
]
SWEEPS_KEYS = [
    ("up/down", "choose a sweep"),
    ("enter", "its report: one row per variant over its seeds, the best marked"),
    ("r", "train the highlighted sweep's (variant, seed) pairs not done yet, on the lab's device (a stopped "
          "or killed sweep goes on)"),
    ("esc / w", "back"),
    ("ctrl+p", "command palette"),
    ("q", "quit"),
]
SWEEP_KEYS = [
    ("up/down", "choose a variant"),
    ("left/right", "scroll sideways half a screen (more columns)"),
    ("ctrl+s", "save the report (Markdown, CSV or JSON, as `fnn-tui report --sweep NAME -o FILE`)"),
    ("esc", "back to the sweeps list"),
    ("ctrl+p", "command palette"),
    ("q", "quit"),
]
WORDS = ("ratio: the notes' \"acc\", the mean of |y_hat/y|; 1 is perfect. dead: the network predicts a "
         "constant. seeds: N (0..N-1), a list 3,7,11 or a range 0-9; seeds done with the same settings are "
         "skipped. The report's verdict: where the notes' number falls against our runs' min–max. device "
         "auto: the CPU for batches under 256 (a GPU only adds launch overhead per step), else the first GPU.")
HELPS = {
    "lab": ("Lab: pick a preset, choose device and engine, press r", LAB_KEYS, WORDS),
    "runs": ("Runs view: the runs list (every run) and the report (by preset)", RUNS_KEYS,
             "The report's rows: per metric our median, the notes' number and the verdict; the hint above "
             "the table gives the row's settings and min–max. " + WORDS),
    "plot": ("Plot: loss curves and the fitted function", PLOT_KEYS,
             "A study's plot draws every seed faintly and their median boldly. Losses on a log scale."),
    "claims": ("The notes' conclusions: a verdict each from the stored runs", CLAIMS_KEYS,
               "Verdicts on P(A better than B) with a 95% bootstrap interval: supported or contradicted when "
               "the interval lies beyond 0.5 (for an \"about equal\" conclusion, supported when it lies within "
               "0.5 ± its margin), needs about N seeds when the effect points the claimed way and N seeds a side "
               "would show it, not shown otherwise. Controlled: the base row with only the named "
               "factor changed. The verdicts count every stored run of each study; c again after a training "
               "shows the new ones."),
    "compare": ("Compare: two presets over their stored seeds", COMPARE_KEYS,
                "Per metric: runs counted, dead and diverged with Wilson 95% intervals, the median (IQR) of the "
                "finished runs, the difference of medians with a bootstrap 95% interval, P(A better than B), "
                "Mann-Whitney and Welch tests, the pairs of the same seed, and how large an effect these "
                "seeds can show. Each preset's study is the one the report shows."),
    "sweeps": ("Sweeps: every stored sweep", SWEEPS_KEYS,
               "done: the (variant, seed) pairs with a finished or diverged run, of all the grid's. "
               "r (or `fnn-tui sweep NAME`) trains the rest."),
    "sweep": ("A sweep's report: one row per variant", SWEEP_KEYS,
              "Each cell: the median (min–max) over the variant's seeds; n/dead/div: finished, of them dead, "
              "and diverged. The best variant (lowest median test loss) is marked."),
}


def help_table(keys: list[tuple[str, str]]) -> Table:
    """The keys, one a line (a table without borders fits a page at 80x24)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, what in keys:
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    """The keys of one screen (``lab``, ``runs`` or ``plot``) and what the numbers mean."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, screen: str = "lab") -> None:
        super().__init__()
        self.title_text, self.keys, self.words = HELPS[screen]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Label(self.title_text, classes="title")
            yield Static(help_table(self.keys))
            yield Label(self.words, classes="words")
            yield Label("esc or ? closes", classes="words")

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
