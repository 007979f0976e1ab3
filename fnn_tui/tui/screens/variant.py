"""The settings form of a preset: change any setting and run the variant (the app's ``e``).

Each field holds one setting in the words of ``--set`` (``0.05``, ``[50,50]``, ``none``);
what is typed is checked as it is typed, by the same functions as ``run --set``
(:mod:`fnn_tui.core.variants`), so the form shows the same one-line messages. Enter runs the
variant with the seeds field (empty: one run, seed 0); Escape closes the form.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from fnn_tui.core.presets import Preset, PresetError, preset_to_dict
from fnn_tui.core.variants import KEYS, _show, apply_settings, label, parse_setting
from fnn_tui.runs.plan import SeedsError, parse_seeds

FIELDS = tuple(key for key in KEYS if key != "data.seed")  # the seed is the seeds field's


@dataclass(frozen=True)
class VariantRequest:
    """What the form asks to run: the variant and its seeds (``None``: one run, seed 0)."""

    preset: Preset
    seeds: list[int] | None


def current_text(preset: Preset, key: str) -> str:
    """A setting's value as the form shows it (and as ``--set`` takes it)."""
    section, _, name = key.partition(".")
    return _show(preset_to_dict(preset)[section].get(name))


class VariantScreen(ModalScreen[VariantRequest | None]):
    """A form of every setting of ``preset``, validated as it is typed."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
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
            yield Label(f"Settings of {self.base.name}: change any, enter runs the variant, esc closes",
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
            settings: dict[str, object] = {}
            for text in self.changes():
                s = parse_setting(text)
                settings[s.key] = s.value
            variant = apply_settings(self.base, settings)
            seeds_text = self.query_one("#variant-seeds", Input).value.strip()
            seeds = parse_seeds(seeds_text) if seeds_text else None
            self.request = VariantRequest(variant, seeds)
        except PresetError as exc:
            problem = exc.first_line()
        except SeedsError as exc:
            problem = str(exc).replace("--seeds ", "seeds ")
        self.problem = problem
        self.query_one("#variant-error", Label).update(problem)
        name = label(self.base, self.request.preset) if self.request else ""
        self.query_one("#variant-name", Label).update(f"runs: {name}" if name else "")
        for key in FIELDS:  # the field the problem names is marked
            self.field(key).set_class(f" {key}:" in f" {problem}", "-invalid")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.check()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.check()
        if self.request is None:
            self.notify(self.problem, title="Bad setting", severity="error")
            return
        self.dismiss(self.request)

    def action_cancel(self) -> None:
        """Close the form; nothing runs."""
        self.dismiss(None)
