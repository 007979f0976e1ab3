"""What the highlighted preset is: its settings and the lab notes' reported numbers."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from fnn_tui.core.catalog import PresetEntry
from fnn_tui.report.export import fmt


class PresetDetails(Static):
    """A compact summary of one preset (or its validation error)."""

    def show(self, entry: PresetEntry | None) -> None:
        """Render ``entry``."""
        if entry is None:
            self.update("")
            return
        self.border_title = entry.name
        if entry.preset is None:
            assert entry.error is not None
            self.update(Text("\n".join(entry.error.problems), style="red"))
            return
        p = entry.preset
        t, m, d, r = p.training, p.model, p.data, p.reported
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        decay = "no decay" if t.decay_factor is None else f"x{t.decay_factor:g}/{t.decay_every} ep"
        clip = "no clip" if t.clip is None else f"clip {t.clip:g}"
        grid.add_row("tests", p.experiment.description)
        grid.add_row("model", f"1-{'-'.join(map(str, m.hidden))}-1 relu, norm {m.norm}")
        grid.add_row("train", f"{d.samples} samples, {t.epochs} ep, lr {t.lr:g} {decay}, {clip}, L2 {t.l2:g}")
        notes = [f"{k} {fmt(v)}" for k, v in (("loss", r.train_loss), ("ratio", r.train_ratio),
                                                ("test loss", r.test_loss), ("test ratio", r.test_ratio)) if v is not None]
        grid.add_row("notes", ", ".join(notes) or r.note or "-")
        if entry.shadows is not None:
            grid.add_row("from", Text(f"{entry.path} (shadows the built-in)", style="yellow"))
        self.update(grid)
        # The panel's height follows its rows (height: auto). Textual 8 drops the layout that
        # an update asks for when it comes before the first layout (the preset highlighted at
        # start-up), which left one row showing; asking again once the frame is drawn fixes it.
        self.call_after_refresh(self.refresh, layout=True)
