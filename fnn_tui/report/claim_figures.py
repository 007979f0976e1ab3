"""One figure per conclusion: each side's runs as points over a box, dead runs marked, the
verdict in the title. The notes' pair is on the left; the controlled pair, when there is
one, on the right. One point per seed, so ten seeds show as ten points, not as a summary.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fnn_tui.core.status import RunStatus
from fnn_tui.report.compare import Side
from fnn_tui.report.figures import DEFAULT_DPI, SAMPLES, _figure_class, _log_ticks, figure_format
from fnn_tui.report.provenance import Provenance, caption
from fnn_tui.report.reproduction import TITLES
from fnn_tui.report.verdicts import ClaimResult

LIVE, DEAD, DIVERGED, BOX = "#1f77b4", "#d62728", "#7f7f7f", "#444444"


def _values(side: Side, metric: str) -> tuple[list[float], list[float], int]:
    live = [r.values[metric] for r in side.runs if r.state is RunStatus.FINISHED and not r.dead and metric in r.values]
    dead = [r.values[metric] for r in side.runs if r.state is RunStatus.FINISHED and r.dead and metric in r.values]
    diverged = sum(1 for r in side.runs if r.state is RunStatus.DIVERGED)
    return live, dead, diverged


def write_claim_figure(result: ClaimResult, path: Path, *, dpi: int = DEFAULT_DPI,
                       made: Provenance | None = None) -> Path:
    """Write ``result``'s figure to ``path`` (PNG, SVG or PDF), whole or not at all; ``made``
    is its caption line (how it was made)."""
    fmt = figure_format(path)
    Figure, Canvas = _figure_class()
    c = result.conclusion
    tests = [("notes' rows", result.notes)] + ([("controlled", result.controlled)] if result.controlled else [])
    groups = [(t.a, t.b) for _, t in tests]
    sides = [s for pair in groups for s in pair]
    fig = Figure(figsize=(4.2 * len(tests) + 1.0, 4.2))
    Canvas(fig)
    ax = fig.add_subplot(1, 1, 1)
    rng = np.random.default_rng(0)  # the jitter only: the same figure every time
    positions = [1.0, 2.0, 3.4, 4.4][: len(sides)]
    finite = [v for s in sides for v in (_values(s, c.metric)[0] + _values(s, c.metric)[1])]
    top = max(finite) if finite else 1.0
    # a log axis for losses that span a decade or more; a narrower spread reads better linear
    log = c.metric.endswith("_loss") and finite and min(finite) > 0 and max(finite) / min(finite) >= 10
    for x, side in zip(positions, sides):
        live, dead, diverged = _values(side, c.metric)
        both = live + dead
        if both:
            ax.boxplot([both], positions=[x], widths=0.5, showfliers=False, manage_ticks=False,
                       medianprops={"color": BOX}, boxprops={"color": BOX}, whiskerprops={"color": BOX},
                       capprops={"color": BOX})
        for values, colour, marker, label in ((live, LIVE, "o", "run"), (dead, DEAD, "x", "dead run")):
            if values:
                ax.scatter(x + rng.uniform(-0.12, 0.12, len(values)), values, s=22, color=colour, marker=marker,
                           zorder=3, label=label)
        if diverged:
            y = top * (1.6 if log else 1.05)
            ax.scatter(x + rng.uniform(-0.12, 0.12, diverged), [y] * diverged, s=28, color=DIVERGED, marker="^",
                       zorder=3, label="diverged (no number)")
    if log:
        ax.set_yscale("log")
        _log_ticks(ax)
    labels = [f"{s.label}\nn={len(s.counted())}" for s in sides]
    ax.set_xticks(positions, labels, fontsize=7)
    ax.set_xlim(positions[0] - 0.6, positions[-1] + 0.6)  # the same frame with or without runs
    ax.set_ylabel(f"{TITLES[c.metric]} ({'last epoch' if c.epoch is None else f'epoch {c.epoch}'})")
    for i, (name, t) in enumerate(tests):
        mid = (positions[2 * i] + positions[2 * i + 1]) / 2
        ax.text(mid, 1.01, f"{name}: {t.verdict.text}", transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=8)
    ax.set_title(f"{c.number}. {c.key}: {result.notes.verdict.text}", fontsize=10, pad=16)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    ax.grid(axis="y", alpha=0.3)
    if made is not None:  # wrapped to the figure's width (about 19 characters an inch at 6.5 pt)
        line = "\n".join(textwrap.wrap(caption(made), int(fig.get_figwidth() * 19)))
        fig.supxlabel(line, fontsize=6.5, color=SAMPLES, ha="left", x=0.005)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_claim_figures(results: Sequence[ClaimResult], folder: Path,
                        made: Provenance | None = None) -> dict[int, Path]:
    """One PNG per conclusion in ``folder`` (``claim-1-wider-not-deeper.png``); by number."""
    return {r.conclusion.number: write_claim_figure(r, folder / f"claim-{r.conclusion.number}-{r.conclusion.key}.png",
                                                    made=made)
            for r in results}

