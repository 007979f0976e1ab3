"""The preset list: number, name and origin; broken presets listed with their error."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from fnn_tui.core.catalog import Catalog, PresetEntry


class PresetList(OptionList):
    """Presets in table order; space marks presets for "Run all"."""

    BINDINGS = [Binding("space", "toggle_mark", "Mark", id="mark")]

    def __init__(self, catalog: Catalog, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.catalog = catalog
        self.marked: set[str] = set()
        self.add_options([Option(self._prompt(e), id=e.name) for e in catalog.entries])

    def _prompt(self, entry: PresetEntry) -> Text:
        mark = "✓" if entry.name in self.marked else " "
        if entry.preset is None:
            return Text.assemble((f"{mark}!! ", "bold red"), (entry.name, "red"), (" invalid", "red"), no_wrap=True)
        text = Text(f"{mark}{entry.preset.experiment.number:>2} ", no_wrap=True, overflow="ellipsis")
        text.append(entry.preset.experiment.name)
        if entry.origin != "built-in":
            text.append(" *" if entry.shadows else " +", style="bold yellow")
        return text

    @property
    def entry(self) -> PresetEntry | None:
        """The highlighted preset entry."""
        if self.highlighted is None:
            return None
        option = self.get_option_at_index(self.highlighted)
        return next((e for e in self.catalog.entries if e.name == option.id), None)

    def select_name(self, name: str) -> bool:
        """Highlight a preset by name (or ``8`` / ``exp08``); ``False`` if absent."""
        wanted = f"exp{int(name):02d}" if name.isdigit() else name
        for index, entry in enumerate(self.catalog.entries):
            if entry.name == wanted:
                self.highlighted = index
                return True
        return False

    def action_toggle_mark(self) -> None:
        """Mark or unmark the highlighted preset for "Run all"."""
        entry = self.entry
        if entry is None or entry.preset is None:
            return
        self.marked.symmetric_difference_update({entry.name})
        self.replace_option_prompt(entry.name, self._prompt(entry))

    def queued(self) -> list[PresetEntry]:
        """The marked presets, or every valid one when none is marked, in order."""
        entries = [e for e in self.catalog.entries if e.preset is not None]
        if self.marked:
            entries = [e for e in entries if e.name in self.marked]
        return entries
