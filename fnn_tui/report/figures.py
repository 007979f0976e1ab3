"""Figures for the lab report: the loss curves and the fitted function of a preset's runs.

matplotlib is imported only when a figure is written, so the app and the other commands
start without it; when it is missing the caller gets :class:`MatplotlibMissing`, whose
message is the one line to print. The Agg canvas is used directly (no pyplot), so writing
a figure touches no global state and works without a display.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fnn_tui.core.status import RunStatus
from fnn_tui.report.files import ensure_folder, write_file
from fnn_tui.report.plotdata import PlotData, RunCurves, bold_run, median_run, no_epochs_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
DEFAULT_DPI = 160
SIZE_INCHES = (10.0, 3.75)  # 1600 x 600 pixels at the default dpi
TITLE_CHARS = 110  # about what fits across SIZE_INCHES at the title's 11 pt


def title_lines(text: str, width: int = TITLE_CHARS) -> str:
    """``text`` broken into lines that fit across the figure, so a long title (many runs
    overlaid, a long preset name) is not cut off at the edges."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


MISSING_MESSAGE = "figures need matplotlib, which is not installed: pip install matplotlib"

# One colour per quantity, and a line style each too, so a grey print still tells them apart.
TRAIN, TEST, NOTES_TRAIN, NOTES_TEST = "#1f77b4", "#d62728", "#0b3c5d", "#7f1010"
TARGET, FIT, SAMPLES = "#222222", "#ff7f0e", "#7f7f7f"


class MatplotlibMissing(RuntimeError):
    """matplotlib cannot be imported; ``str(error)`` is the one line to show."""


def figure_format(path: Path) -> str:
    """The matplotlib format for ``path``'s suffix; ValueError for one we do not write."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        shown = path.suffix or "no suffix"
        raise ValueError(f"cannot write a figure as {shown!r} ({path.name}): use .png, .svg or .pdf")
    return fmt


def _figure_class() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MatplotlibMissing(MISSING_MESSAGE) from exc
    return Figure, FigureCanvasAgg


def write_figure(data: PlotData, path: Path, *, dpi: int = DEFAULT_DPI, command: str | None = None) -> Path:
    """Write the "loss" and "fit" panels side by side to ``path`` (PNG, SVG or PDF by suffix),
    with a caption line saying how it was made (:mod:`fnn_tui.report.provenance`; ``command``
    defaults to this process's command line).

    Written by :mod:`fnn_tui.report.files`' rule: a file appears whole or not at all (it is
    written next to ``path`` and renamed); a device or FIFO is written in place. Errors
    writing it are :class:`~fnn_tui.report.files.CannotWrite`, naming ``path``.
    """
    from fnn_tui.report.provenance import caption, cli_command, provenance

    path = Path(path)
    fmt = figure_format(path)
    Figure, FigureCanvasAgg = _figure_class()
    fig = Figure(figsize=SIZE_INCHES, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, fit_ax = fig.subplots(1, 2)
    _draw_loss(loss_ax, data)
    _draw_fit(fit_ax, data)
    n = len(data.runs)
    seeds = ", ".join(str(r.seed) for r in data.runs[:8]) + (", ..." if n > 8 else "")
    fig.suptitle(title_lines(f"{data.title} ({n} run{'s' if n != 1 else ''}, seed{'s' if n != 1 else ''} {seeds})"
                             if n else f"{data.title} (no runs)"), fontsize=11)
    made = provenance(command or cli_command(), devices=data.devices, engines=data.engines)
    # supxlabel: constrained layout keeps room for it under both panels
    fig.supxlabel(caption(made), fontsize=6.5, color=SAMPLES, ha="left", x=0.005)
    ensure_folder(path.parent)
    write_file(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
    return path


def _positive(values: tuple[float, ...]) -> np.ndarray:
    # a log axis cannot show 0; an exact 0 loss is drawn at the float32 floor instead
    return np.maximum(np.asarray(values, dtype=np.float64), 1e-38)


def _draw_loss(ax: Axes, data: PlotData) -> None:
    ax.set_title("loss", fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (log scale)")
    ax.set_yscale("log")
    runs = [r for r in data.runs if r.epochs]
    if len(runs) == 1:
        (r,) = runs
        ax.plot(r.epochs, _positive(r.train_loss), color=TRAIN, lw=1.6, label="train loss")
        ax.plot(r.epochs, _positive(r.test_loss), color=TEST, lw=1.6, ls=(0, (5, 1.5)), label="test loss")
    elif runs:
        bold = bold_run(runs)
        for r in runs:  # every seed faintly, the median run on top
            ax.plot(r.epochs, _positive(r.train_loss), color=TRAIN, lw=0.8, alpha=0.3)
            ax.plot(r.epochs, _positive(r.test_loss), color=TEST, lw=0.8, alpha=0.3, ls=(0, (5, 1.5)))
        assert bold is not None
        for which, values, color, ls in (("train", bold.train_loss, TRAIN, "-"),
                                         ("test", bold.test_loss, TEST, (0, (5, 1.5)))):
            ax.plot(bold.epochs, _positive(values), color=color, lw=2.0, ls=ls,
                    label=f"{which} loss, seed {bold.seed} (median of {len(runs)}; faint: each seed)")
    if not runs:
        ax.text(0.5, 0.5, no_epochs_text(data.runs), transform=ax.transAxes, ha="center", va="center",
                color=SAMPLES)
    else:
        diverged = [r for r in data.runs if r.status == RunStatus.DIVERGED.value]
        if diverged:
            ax.text(0.02, 0.02, f"{len(diverged)} of {len(data.runs)} diverged", transform=ax.transAxes,
                    ha="left", va="bottom", color=SAMPLES, fontsize=8)
    for value, label, color, ls in notes_lines(data):
        ax.axhline(value, color=color, lw=1.1, ls=ls, label=label)
    _log_ticks(ax)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best", framealpha=0.85)


def _log_ticks(ax: Axes) -> None:
    """Integer epochs; loss ticks as plain numbers ("0.01", "2"). Minor ticks get labels
    when the axis spans few powers of ten (all below one decade, else only 2 and 5)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    low, high = ax.get_ylim()
    decades = math.log10(high / low) if low > 0 else math.inf
    shown = set(range(2, 10)) if decades < 1 else {2, 5} if decades < 2.5 else set()

    def minor(v: float, _pos: int) -> str:
        lead = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:g}" if lead in shown else ""

    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def notes_lines(data: PlotData) -> list[tuple[float, str, str, Any]]:
    """The notes' reported losses as (value, label, colour, line style) reference lines.

    Two values within 5 % of each other would be drawn on top of each other on a log
    axis, so they become one line that says so.
    """
    train, test = data.notes_train_loss, data.notes_test_loss
    if train is not None and test is not None and train > 0 and test > 0 \
            and abs(math.log(train / test)) < math.log(1.05):
        return [(train, f"notes train loss {train:.4g} / test {test:.4g}", NOTES_TRAIN, "--")]
    lines: list[tuple[float, str, str, Any]] = []
    if train is not None:
        lines.append((train, f"notes train loss {train:.4g}", NOTES_TRAIN, "--"))
    if test is not None:
        lines.append((test, f"notes test loss {test:.4g}", NOTES_TEST, (0, (2, 2))))
    return lines


def _fit_label(run: RunCurves, several: bool) -> str:
    label = "ŷ network"
    if several:
        label += f", seed {run.seed} (median final test loss)"
    if run.dead:
        label += ", dead: constant"
    return label


def _draw_fit(ax: Axes, data: PlotData) -> None:
    ax.set_title(f"fit: y = {data.target}" if data.target else "fit", fontsize=10)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_xlim(*data.domain)
    if data.train_x.size:
        # on top of the target line (they lie on it), small and faint so the lines stay readable
        ax.scatter(data.train_x, data.train_y, s=6, color=SAMPLES, alpha=0.5, linewidths=0, zorder=3,
                   label=f"training samples ({data.train_x.size} shown)")
    ax.plot(data.grid_x, data.grid_y, color=TARGET, lw=1.4, label="target y")
    run = median_run(data.runs)
    if run is None and data.runs:
        run = data.runs[0]
    if run is not None and run.grid_yhat is not None:
        ax.plot(data.grid_x, run.grid_yhat, color=FIT, lw=1.8, ls=(0, (4, 1.5)), zorder=4,
                label=_fit_label(run, len(data.runs) > 1))
    elif run is not None:
        why = no_epochs_text(data.runs) if not run.epochs else f"no fit stored for run {run.run_id}"
        ax.text(0.5, 0.94, f"no fit: {why}" if not run.epochs else why, transform=ax.transAxes,
                ha="center", va="top", color=SAMPLES)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


# colours for the items of an overlay, told apart by line style too (a grey print)
OVERLAY = [("#1f77b4", "-"), ("#d62728", (0, (5, 1.5))), ("#2ca02c", (0, (1, 1))), ("#9467bd", "-."),
           ("#8c564b", (0, (3, 1, 1, 1, 1, 1))), ("#e377c2", (0, (8, 2)))]


def overlay_label(data: PlotData) -> str:
    """An overlaid item's short name: the preset, or the run with its seed."""
    if len(data.runs) == 1:
        r = data.runs[0]
        return f"{data.preset_name} run {r.run_id} (seed {r.seed})"
    bold = bold_run(data.runs)
    return f"{data.preset_name} ({len(data.runs)} seeds, median seed {bold.seed})" if bold else data.preset_name


def write_overlay(items: list[PlotData], path: Path, *, dpi: int = DEFAULT_DPI, command: str | None = None) -> Path:
    """Several runs or presets on one figure: each one's test loss (a study: its median
    run's) in its own colour and line style, and each one's fit beside the target."""
    path = Path(path)
    fmt = figure_format(path)
    Figure, FigureCanvasAgg = _figure_class()
    fig = Figure(figsize=SIZE_INCHES, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, fit_ax = fig.subplots(1, 2)
    loss_ax.set_title("test loss (a study: its median run; faint: train loss)", fontsize=10)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("MSE (log scale)")
    loss_ax.set_yscale("log")
    first = items[0]
    fit_ax.set_title(f"fit: y = {first.target}" if first.target else "fit", fontsize=10)
    fit_ax.set_xlabel("x")
    fit_ax.set_ylabel("y")
    fit_ax.set_xlim(*first.domain)
    fit_ax.plot(first.grid_x, first.grid_y, color=TARGET, lw=1.4, label="target y")
    for i, data in enumerate(items):
        color, ls = OVERLAY[i % len(OVERLAY)]
        label = overlay_label(data)
        run = bold_run(data.runs)
        if run is None or not run.epochs:
            loss_ax.plot([], [], color=color, ls=ls, label=f"{label}: {no_epochs_text(data.runs)}")
            continue
        loss_ax.plot(run.epochs, _positive(run.train_loss), color=color, lw=0.9, alpha=0.35, ls=ls)
        loss_ax.plot(run.epochs, _positive(run.test_loss), color=color, lw=1.8, ls=ls, label=label)
        if run.grid_yhat is not None:
            fit_ax.plot(data.grid_x, run.grid_yhat, color=color, lw=1.5, ls=ls,
                        label=f"ŷ {label}" + (", dead" if run.dead else ""))
    _log_ticks(loss_ax)
    for ax in (loss_ax, fit_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    # no break inside one label ("exp08 run 3"): only between them
    names = (overlay_label(d).split(" (")[0].replace(" ", "\u00a0") for d in items)
    fig.suptitle(title_lines(" vs ".join(names)), fontsize=11)
    from fnn_tui.report.provenance import caption, cli_command, provenance

    devices = tuple(sorted({d for item in items for d in item.devices}))
    engines = tuple(sorted({e for item in items for e in item.engines}))
    made = provenance(command or cli_command(), devices=devices, engines=engines)
    fig.supxlabel(caption(made), fontsize=6.5, color=SAMPLES, ha="left", x=0.005)
    ensure_folder(path.parent)
    write_file(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
    return path
