"""Figures of a sweep: for each swept setting, the metric against the setting.

One figure per swept key, two panels (train and test loss, log scale): the key's values on
the x axis (a log axis when they are log-spaced or span two decades and more; the values
themselves as labels for settings that are not numbers, such as ``hidden``), one line per
combination of the other swept keys' values (the median over the seeds), and the seeds'
min–max as a band around it. Written atomically, like every figure.
"""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path
from typing import Any

from fnn_tui.core.variants import _show
from fnn_tui.report.figures import DEFAULT_DPI, SAMPLES, _figure_class, _log_ticks, figure_format, title_lines
from fnn_tui.report.provenance import Provenance, caption
from fnn_tui.report.sweeps import SweepReport, VariantRow, title

PANELS = (("train_loss", "train loss"), ("test_loss", "test loss"))
STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _numeric(values: tuple[Any, ...]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def log_axis(values: tuple[Any, ...], spacing: str) -> bool:
    """A log axis for log-spaced values, or positive numbers spanning two decades and more."""
    if not _numeric(values) or min(values) <= 0:
        return False
    return spacing == "log" or max(values) / min(values) >= 100


def figure_name(sweep: str, key: str) -> str:
    """``sweep-exp08-lr-hidden-lr.png``: a file name of safe characters."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{sweep}-{key.split('.', 1)[1]}")
    return f"sweep-{safe}.png"


def write_sweep_figures(report: SweepReport, axes: list[tuple[str, tuple[Any, ...], str]], folder: Path,
                        *, dpi: int = DEFAULT_DPI, made: Provenance | None = None) -> dict[str, Path]:
    """One figure per swept key (``axes``: the grid's, keys with several values) into
    ``folder``, ``made`` its caption line; returns them by key."""
    swept = [(k, v, s) for k, v, s in axes if len(v) > 1]
    written = {}
    for key, values, spacing in swept:
        path = folder / figure_name(report.name, key)
        _write(report, key, values, spacing, [a for a in swept if a[0] != key], path, dpi, made)
        written[key] = path
    return written


def _write(report: SweepReport, key: str, values: tuple[Any, ...], spacing: str,
           others: list[tuple[str, tuple[Any, ...], str]], path: Path, dpi: int,
           made: Provenance | None = None) -> None:
    figure_format(path)
    Figure, FigureCanvasAgg = _figure_class()
    from matplotlib.ticker import NullLocator

    fig = Figure(figsize=(10.0, 4.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    panels = fig.subplots(1, 2)
    numeric = _numeric(values)
    xs = list(values) if numeric else list(range(len(values)))
    by_settings = {tuple(sorted((k, _show(v)) for k, v in r.settings.items())): r for r in report.rows}
    combos = list(itertools.product(*(vals for _, vals, _ in others))) or [()]
    for ax, (metric, label) in zip(panels, PANELS):
        for i, combo in enumerate(combos):
            fixed = {k: v for (k, _, _), v in zip(others, combo)}
            med, low, high, x_at = [], [], [], []
            for x, value in zip(xs, values):
                row: VariantRow | None = by_settings.get(tuple(sorted((k, _show(v)) for k, v in {**fixed, key: value}.items())))
                spread = row.metrics[metric] if row is not None else None
                if spread is None or not spread.n:
                    continue
                x_at.append(x)
                med.append(max(spread.median, 1e-38))
                low.append(max(spread.min, 1e-38))
                high.append(max(spread.max, 1e-38))
            name = ", ".join(f"{k.split('.', 1)[1]}={_show(v)}" for k, v in fixed.items()) or "median"
            line = ax.plot(x_at, med, ls=STYLES[i % len(STYLES)], marker=MARKERS[i % len(MARKERS)], lw=1.6,
                           label=name)[0]
            if x_at:
                ax.fill_between(x_at, low, high, color=line.get_color(), alpha=0.15, lw=0)
        ax.set_yscale("log")
        _log_ticks(ax)
        if log_axis(values, spacing):
            ax.set_xscale("log")
        ax.set_xticks(xs, [_show(v) for v in values])  # the swept values themselves
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(key.split(".", 1)[1] + (" (log scale)" if log_axis(values, spacing) else ""))
        ax.set_ylabel(f"{label}, MSE (log scale)")
        ax.set_title(f"{label}: median over seeds, band min–max", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    fig.suptitle(title_lines(title(report), width=120), fontsize=10)  # 10 pt: a little more fits
    if made is not None:  # (constrained layout keeps room for it under both panels)
        fig.supxlabel(caption(made), fontsize=6.5, color=SAMPLES, ha="left", x=0.005)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fig.savefig(fh, format="png", dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
