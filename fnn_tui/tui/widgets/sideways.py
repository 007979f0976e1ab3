"""A table wider than the screen: Left and Right scroll it by half a screen."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable


class SidewaysTable(DataTable):
    """A row-cursor table that Left and Right scroll by half a screen, not one cell."""

    BINDINGS = [Binding("right", "page_columns(1)", "Scroll right", show=False),
                Binding("left", "page_columns(-1)", "Scroll left", show=False)]

    def action_page_columns(self, direction: int) -> None:
        """Scroll sideways by half the view, not one cell."""
        self.scroll_relative(x=direction * max(8, self.scrollable_content_region.width // 2), animate=False)
