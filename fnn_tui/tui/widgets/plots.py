"""The plot view: a preset's loss curves and fitted function, live while a run trains.

It draws a :class:`~fnn_tui.report.plotdata.PlotData` (the same data the report's figures
draw) with textual-plotext in two panels: "loss" per epoch on a log axis with the notes'
reported losses as reference lines, and "fit", the target y and the network's y_hat over
the domain with a few training samples. With NO_COLOR the series differ by marker (braille
line, dots, dashes), not only by colour, and a legend line under each panel names them.

Side by side both panels need about 64 columns; narrower (the lab screen's right-hand
area) one panel is shown at a time and ``v`` switches between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.reactive import reactive
from textual.widgets import Label
from textual_plotext import PlotextPlot

from fnn_tui.core.events import EpochMetrics
from fnn_tui.report.figures import notes_lines
from fnn_tui.report.plotdata import PlotData, bold_run, median_run, no_epochs_text

WIDE = 64  # columns from which both panels are shown side by side
PANELS = ("both", "loss", "fit")
MAX_TERMINAL_SAMPLES = 60  # training points in the fit panel: more fill the few cells


@dataclass(frozen=True)
class Series:
    """One drawn series: what the legend says, its marker, colour and points."""

    label: str
    marker: str
    color: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    reference: bool = False  # a reference line (the notes' losses): drawn first, under the data


def loss_series(data: PlotData) -> list[Series]:
    """Train and test loss per epoch and the notes' reported losses as flat lines over the
    same epochs. Of several runs each seed's test loss is drawn faintly (grey dots, under the
    rest) and the run with the median final test loss boldly."""
    runs = [r for r in data.runs if r.epochs]
    if not runs:
        return []
    bold = bold_run(runs) if len(runs) > 1 else runs[0]
    assert bold is not None
    train, test = (bold.epochs, bold.train_loss), (bold.epochs, bold.test_loss)
    out = []
    suffix = ""
    if len(runs) > 1:
        suffix = f" seed {bold.seed} (median of {len(runs)})"
        for i, r in enumerate(runs):
            out.append(Series("each seed's test" if i == 0 else "", "·", "gray", tuple(map(float, r.epochs)),
                              tuple(r.test_loss), reference=True))
    out += [
        Series(f"train{suffix}", "braille", "cyan", tuple(map(float, train[0])), tuple(train[1])),
        Series(f"test{suffix}" if not suffix else "test", "•", "orange", tuple(map(float, test[0])), tuple(test[1])),
    ]
    first, last = min(float(min(r.epochs)) for r in runs), max(float(max(r.epochs)) for r in runs)
    span = (first, last) if last > first else (first - 0.5, last + 0.5)
    for value, label, _color, _style in notes_lines(data):
        # the figure's labels, shortened to fit a legend of ~40 columns
        merged = "/" in label
        short = f"notes {value:.3g}" if merged else label.replace(" loss", "").split(" ")
        short = short if isinstance(short, str) else f"notes {short[1]} {value:.3g}"
        marker = "-" if merged or "train" in label else "="
        out.append(Series(short, marker, "gray", span, (value, value), reference=True))
    return out


def fit_series(data: PlotData, max_samples: int = MAX_TERMINAL_SAMPLES) -> tuple[list[Series], str]:
    """Training samples (thinned), target y and the fit of the median run; and a note when
    that run has no stored fit."""
    out = []
    n = data.train_x.size
    if n:
        pick = np.linspace(0, n - 1, min(n, max_samples)).astype(int)
        out.append(Series("samples", "·", "gray", tuple(map(float, data.train_x[pick])),
                          tuple(map(float, data.train_y[pick]))))
    out.append(Series("y", "braille", "white", tuple(map(float, data.grid_x)), tuple(map(float, data.grid_y))))
    run = median_run(data.runs) or (data.runs[0] if data.runs else None)
    note = ""
    if run is not None and run.grid_yhat is not None:
        label = "ŷ" + (f" seed {run.seed}" if len(data.runs) > 1 else "") + (" (dead)" if run.dead else "")
        out.append(Series(label, "•", "orange", tuple(map(float, data.grid_x)), tuple(map(float, run.grid_yhat))))
    elif run is not None:
        note = f"no fit stored for run {run.run_id}"
    return out, note


def _legend(series: list[Series], note: str = "") -> str:
    marks = {"braille": "⠒⠒", "•": "••", "·": "··", "-": "--", "=": "=="}
    parts = [f"{marks.get(s.marker, s.marker * 2)} {s.label}" for s in series if s.label]
    return "  ".join(parts + ([note] if note else []))


class PlotView(Vertical, can_focus=True):
    """Two panels, "loss" and "fit", for one preset's runs; grows live with :meth:`add_epoch`."""

    DEFAULT_CSS = """
    PlotView {
        height: 1fr;
    }
    PlotView #plot-title {
        height: auto;
        max-height: 2;  /* a long setting string wraps rather than being cut at 80 columns */
        width: 1fr;
        text-style: bold;
    }
    PlotView #plot-panels {
        height: 1fr;
    }
    PlotView .panel {
        width: 1fr;
        height: 1fr;
    }
    PlotView PlotextPlot {
        height: 1fr;
    }
    PlotView .legend {
        height: auto;
        max-height: 2;
        width: 1fr;
        color: $text-muted;
    }
    PlotView #plot-message {
        height: 1fr;
        width: 1fr;
        content-align: center middle;
        color: $text-muted;
    }
    """

    BINDINGS = [Binding("v", "switch_panel", "loss/fit")]

    panel: reactive[str] = reactive("both")
    """Which panels to show: "both" (side by side when wide enough), "loss" or "fit"."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._data: PlotData | None = None
        self.loss_series: list[Series] = []
        self.fit_series: list[Series] = []
        self.message = "no runs to plot yet"

    def compose(self) -> ComposeResult:
        yield Label("", id="plot-title")
        with Horizontal(id="plot-panels"):
            with Vertical(id="loss-panel", classes="panel"):
                yield PlotextPlot(id="loss-plot")
                yield Label("", id="loss-legend", classes="legend")
            with Vertical(id="fit-panel", classes="panel"):
                yield PlotextPlot(id="fit-plot")
                yield Label("", id="fit-legend", classes="legend")
        yield Label(self.message, id="plot-message")

    def on_mount(self) -> None:
        self._redraw()

    @property
    def data(self) -> PlotData | None:
        """What is shown now (``None`` after :meth:`clear`)."""
        return self._data

    @property
    def loss_plot(self) -> PlotextPlot:
        """The "loss" panel's plot."""
        return self.query_one("#loss-plot", PlotextPlot)

    @property
    def fit_plot(self) -> PlotextPlot:
        """The "fit" panel's plot."""
        return self.query_one("#fit-plot", PlotextPlot)

    @property
    def shown(self) -> str:
        """The panel(s) actually on screen: "both" needs :data:`WIDE` columns."""
        if self.panel == "both" and self.size.width and self.size.width < WIDE:
            return "loss"
        return self.panel

    # --- what the app calls -----------------------------------------------------------

    def show(self, data: PlotData) -> None:
        """Replace what is drawn with ``data``."""
        self._data = data
        self._redraw()

    def add_epoch(self, run_id: int, metrics: EpochMetrics, grid_yhat: np.ndarray | None = None) -> bool:
        """Grow run ``run_id``'s curves by one epoch (and its fit, when given).

        Returns ``False`` and draws nothing when that run is not shown: the app shows a
        run with :meth:`show` first, so an epoch of another run is not for this view.
        """
        run = self._data.run(run_id) if self._data is not None else None
        if self._data is None or run is None:
            return False
        self._data = self._data.with_run(run.with_epoch(metrics, grid_yhat))
        self._redraw()
        return True

    def clear(self, message: str) -> None:
        """Drop the data and show ``message`` instead of the panels."""
        self._data = None
        self.message = message
        self._redraw()

    # --- drawing ------------------------------------------------------------------------

    def action_switch_panel(self) -> None:
        """Next panel: both, loss, fit when wide; loss, fit when narrow."""
        order = PANELS if self.size.width >= WIDE else PANELS[1:]
        current = self.shown
        self.panel = order[(order.index(current) + 1) % len(order)] if current in order else order[0]

    def watch_panel(self) -> None:
        self._redraw()

    def on_resize(self, _event: Resize) -> None:
        self._redraw()

    def _layout_panels(self) -> None:
        if not self.is_mounted:
            return
        empty = self._data is None
        shown = self.shown
        self.query_one("#plot-panels").display = not empty
        self.query_one("#plot-message").display = empty
        self.query_one("#loss-panel").display = shown in ("both", "loss")
        self.query_one("#fit-panel").display = shown in ("both", "fit")

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        data = self._data
        self._layout_panels()
        title = self.query_one("#plot-title", Label)
        if data is None:
            self.loss_series, self.fit_series = [], []
            title.update("")
            self.query_one("#plot-message", Label).update(self.message)
            return
        n = len(data.runs)
        title.update(f"{n} run{'s' if n != 1 else ''} · {data.title}")
        self.loss_series = loss_series(data)
        self.fit_series, note = fit_series(data)
        narrow = self.shown != "both"
        self._draw(self.loss_plot, self.loss_series, "loss (log)" + (" · v: fit" if narrow else ""), "epoch",
                   log_y=True)
        self._draw(self.fit_plot, self.fit_series, "fit" + (" · v: loss" if narrow else ""), "x", log_y=False)
        self.query_one("#loss-legend", Label).update(_legend(self.loss_series) or no_epochs_text(data.runs))
        self.query_one("#fit-legend", Label).update(_legend(self.fit_series, note))

    @staticmethod
    def _draw(plot: PlotextPlot, series: list[Series], title: str, xlabel: str, *, log_y: bool) -> None:
        plt = plot.plt
        plt.clear_figure()
        plt.title(title)
        plt.xlabel(xlabel)
        values: list[float] = []
        xs: list[float] = []
        # reference lines first: a loss close to the notes' value must not hide under its dashes
        for s in sorted(series, key=lambda s: not s.reference):
            # plotext's own log scale transforms its data in place on every build, so a
            # second render (a resize) takes the log twice: plot log10 values instead
            y = [float(np.log10(max(v, 1e-12))) for v in s.y] if log_y else list(s.y)
            values.extend(y)
            xs.extend(s.x)
            plt.plot(list(s.x), y, marker=s.marker, color=s.color)
        if xlabel == "epoch" and xs:
            ticks = epoch_ticks(min(xs), max(xs))
            plt.xticks(ticks, [str(t) for t in ticks])
        if log_y and values:
            ticks = log_ticks(min(values), max(values))
            plt.yticks(ticks, [f"{10 ** t:.3g}" for t in ticks])
        plot.refresh()


def epoch_ticks(low: float, high: float, most: int = 5) -> list[int]:
    """Whole epochs between ``low`` and ``high`` at a round step (1, 2, 5, 10, 20, …), at
    most ``most`` of them, and the first epoch when the first round one is far from it."""
    lo, hi = int(np.ceil(low)), int(np.floor(high))
    if hi <= lo:
        return [lo]
    steps = (m * 10**e for e in range(12) for m in (1, 2, 5))
    step = next(st for st in steps if hi // st - (lo - 1) // st <= most)
    ticks = list(range(-(-lo // step) * step, hi + 1, step))
    return [lo, *ticks] if not ticks or (len(ticks) < most and ticks[0] - lo > step / 2) else ticks


def log_ticks(low: float, high: float) -> list[float]:
    """log10 positions of round loss values between ``low`` and ``high`` (log10 units):
    the powers of ten, with 2 and 5 times them when the range spans little."""
    lo, hi = int(np.floor(low)), int(np.ceil(high))
    inside: list[float] = []
    for mantissas in ((1.0,), (1.0, 2.0, 5.0)):
        ticks = [float(np.log10(m) + e) for e in range(lo, hi + 1) for m in mantissas]
        inside = [t for t in ticks if low - 1e-9 <= t <= high + 1e-9]
        if len(inside) >= 3:
            return inside
    return inside if len(inside) >= 2 else [low, high] if high > low else [low]
