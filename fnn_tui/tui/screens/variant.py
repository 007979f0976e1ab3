"""The settings form of a preset: change any setting and run the variant (the app's ``e``).

Each field holds one setting in the words of ``--set`` (``0.05``, ``[50,50]``, ``none``);
what is typed is checked as it is typed, by the same functions as ``run --set``
(:mod:`fnn_tui.core.variants`), so the form shows the same one-line messages. Enter runs the
variant with the seeds field (empty: one run, seed 0); Escape closes the form.

A field given several values as ``sweep --set`` takes them (``0.001,0.01,0.1``,
``log(1e-3,1e-1,5)``, ``[20,20],[50,50]``) makes the form a sweep: the grid of the changed
fields, every variant checked before enter stores it (as ``fnn-tui sweep`` would) and trains it.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from fnn_tui.core.presets import Preset, PresetError, preset_to_dict
from fnn_tui.core.variants import (
    KEYS,
    Grid,
    _show,
    apply_settings,
    check_size,
    label,
    parse_grid,
    parse_setting,
    variants,
)
from fnn_tui.report.sweeps import grid_name, shape_text
from fnn_tui.runs.plan import SeedsError, parse_seeds

FIELDS = tuple(key for key in KEYS if key != "data.seed")  # the seed is the seeds field's


@dataclass(frozen=True)
class VariantRequest:
    """What the form asks to run: the variant and its seeds (``None``: one run, seed 0), or,
    with ``grid``, the sweep of that grid on ``preset`` (the form's base)."""

    preset: Preset
    seeds: list[int] | None
    grid: Grid | None = None


def current_text(preset: Preset, key: str) -> str:
    """A setting's value as the form shows it (and as ``--set`` takes it)."""
    section, _, name = key.partition(".")
    return _show(preset_to_dict(preset)[section].get(name))


class VariantScreen(ModalScreen[VariantRequest | None]):
    """A form of every setting of ``preset``, validated as it is typed."""

    # enter runs from anywhere in the form (the fields' list itself takes the focus on a tab too)
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "run", "Run", show=False)]
    DEFAULT_CSS = """
    VariantScreen { align: center middle; }
    VariantScreen #variant-form { width: 76; height: auto; max-height: 100%; border: round $accent;
        padding: 0 1; background: $surface; }
    VariantScreen .variant-row { height: 1; }
    VariantScreen .variant-key { width: 16; }
    VariantScreen .variant-row Input { width: 1fr; }
    VariantScreen #variant-fields { height: auto; max-height: 17; }
    VariantScreen #variant-error { color: $error; height: auto; width: 100%; }
    VariantScreen #variant-name { height: auto; width: 100%; }
    """

    def __init__(self, preset: Preset, seeds: str = "") -> None:
        super().__init__()
        self.base = preset
        self.initial_seeds = seeds
        self.initial = {key: current_text(preset, key) for key in FIELDS}
        self.request: VariantRequest | None = None
        self.problem = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="variant-form"):
            yield Label(f"Settings of {self.base.name} (several values: a sweep); enter runs, esc closes",
                        id="variant-title")
            with VerticalScroll(id="variant-fields"):
                for key in FIELDS:
                    short = key.split(".", 1)[1]
                    with Horizontal(classes="variant-row"):
                        yield Label(short, classes="variant-key")
                        yield Input(self.initial[key], compact=True, id=f"set-{short}", max_length=2000)
                with Horizontal(classes="variant-row"):
                    yield Label("seeds", classes="variant-key")
                    yield Input(self.initial_seeds, placeholder="one (N, 1,5 or 0-9)", compact=True,
                                id="variant-seeds", restrict=r"[0-9, \-]*", max_length=200)
            yield Label("", id="variant-name")
            yield Label("", id="variant-error")

    def on_mount(self) -> None:
        self.check()
        self.query_one(f"#set-{FIELDS[0].split('.', 1)[1]}", Input).focus()

    def field(self, key: str) -> Input:
        """The input of a setting (full or short key)."""
        return self.query_one(f"#set-{key.split('.', 1)[-1]}", Input)

    def changes(self) -> list[str]:
        """The fields changed, as ``key=value`` texts."""
        out = []
        for key in FIELDS:
            value = self.field(key).value.strip()
            if value != self.initial[key]:
                out.append(f"{key.split('.', 1)[1]}={value}")
        return out

    def check(self) -> None:
        """Validate the whole form: the variant, or the first problem, shown under it."""
        self.request, problem = None, ""
        try:
            seeds_text = self.query_one("#variant-seeds", Input).value.strip()
            seeds = parse_seeds(seeds_text) if seeds_text else None
            grid = parse_grid(self.changes())
            if any(len(values) > 1 for _, values, _ in grid.axes):  # a sweep
                # the fields of one value are the sweep's base (as `sweep --epochs 1` is), the rest its grid
                base = apply_settings(self.base, {k: v[0] for k, v, _ in grid.axes if len(v) == 1})
                grid = Grid(tuple(axis for axis in grid.axes if len(axis[1]) > 1))
                check_size(grid, len(seeds or [0]))
                variants(base, grid)  # every combination valid (batch size over samples names itself)
                self.request = VariantRequest(base, seeds, grid)
            else:
                settings: dict[str, object] = {}
                for text in self.changes():
                    s = parse_setting(text)
                    settings[s.key] = s.value
                self.request = VariantRequest(apply_settings(self.base, settings), seeds)
        except PresetError as exc:
            problem = exc.first_line()
        except SeedsError as exc:
            problem = str(exc).replace("--seeds ", "seeds ")
        self.problem = problem
        self.query_one("#variant-error", Label).update(problem)
        self.query_one("#variant-name", Label).update(self.says())
        for key in FIELDS:  # the field the problem names is marked
            self.field(key).set_class(f" {key}:" in f" {problem}", "-invalid")

    def says(self) -> str:
        """What enter would do, in a line (``""`` while the form has a problem)."""
        r = self.request
        if r is None:
            return ""
        if r.grid is None:
            return f"runs: {label(self.base, r.preset)}"
        seeds = len(r.seeds or [0])
        return (f"sweep {grid_name(r.preset, r.grid)}: {shape_text(r.grid)} = {r.grid.size} variants x "
                f"{seeds} seed{'s' if seeds != 1 else ''} = {r.grid.size * seeds} runs; enter stores and trains it")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.check()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_run()

    def action_run(self) -> None:
        """Run what the form holds (the variant or the sweep), or say why it cannot."""
        self.check()
        if self.request is None:
            self.notify(self.problem, title="Bad setting", severity="error")
            return
        self.dismiss(self.request)

    def action_cancel(self) -> None:
        """Close the form; nothing runs."""
        self.dismiss(None)
