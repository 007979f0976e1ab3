"""What a plot shows, independent of where it is drawn (a PNG for the lab report or the app).

The figure writer and the app's plot widget both draw a :class:`PlotData`: the loss
curves of one or more runs of a preset, the notes' reported losses, the target function
and the fitted function on the grid of :mod:`fnn_tui.core.grid`. The builder takes plain
tuples rather than the store's row classes, so the store can change without touching
plotting; the caller adapts its rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fnn_tui.core import grid
from fnn_tui.core.data import make_dataset
from fnn_tui.core.events import EpochMetrics
from fnn_tui.core.presets import Preset
from fnn_tui.core.status import RunStatus

MAX_TRAIN_POINTS = 300  # training samples drawn in a figure: more turn the panel grey

# (run id, seed, status, dead, the run's epochs, its stored grid blob or None[, the epoch it
# diverged in or None])
RunInput = tuple  # of the fields above


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool
class RunCurves:
    """One run's loss per epoch and its latest prediction on the grid (``None``: none stored)."""

    run_id: int
    seed: int
    status: str
    dead: bool
    epochs: tuple[int, ...]
    train_loss: tuple[float, ...]
    test_loss: tuple[float, ...]
    grid_yhat: np.ndarray | None = None
    diverged_epoch: int | None = None

    @property
    def final_test_loss(self) -> float | None:
        """The last epoch's test loss, or ``None`` before the first epoch."""
        return self.test_loss[-1] if self.test_loss else None

    def with_epoch(self, metrics: EpochMetrics, grid_yhat: np.ndarray | None = None) -> RunCurves:
        """A copy with this epoch added (or replaced, when it is already there), and the newer fit."""
        keep = [i for i, e in enumerate(self.epochs) if e < metrics.epoch]
        return dataclasses.replace(
            self,
            epochs=(*(self.epochs[i] for i in keep), metrics.epoch),
            train_loss=(*(self.train_loss[i] for i in keep), metrics.train_loss),
            test_loss=(*(self.test_loss[i] for i in keep), metrics.test_loss),
            dead=self.dead or metrics.dead,
            grid_yhat=self.grid_yhat if grid_yhat is None else np.asarray(grid_yhat, dtype=np.float32),
        )


@dataclass(frozen=True, eq=False)
class PlotData:
    """Everything both panels draw: "loss" (per epoch) and "fit" (y and y_hat over the domain)."""

    title: str
    preset_name: str
    runs: tuple[RunCurves, ...]
    notes_train_loss: float | None
    notes_test_loss: float | None
    grid_x: np.ndarray
    grid_y: np.ndarray
    train_x: np.ndarray  # a subsample of the training inputs, for faint points
    train_y: np.ndarray
    domain: tuple[float, float]
    target: str = ""  # the preset's target expression, for the fit panel's title
    devices: tuple[str, ...] = ()  # where its runs trained, and with which engines: for the caption
    engines: tuple[str, ...] = ()

    def run(self, run_id: int) -> RunCurves | None:
        """The run with this id, if shown."""
        return next((r for r in self.runs if r.run_id == run_id), None)

    def with_run(self, curves: RunCurves) -> PlotData:
        """A copy with this run replaced (same id) or added."""
        runs = tuple(curves if r.run_id == curves.run_id else r for r in self.runs)
        if self.run(curves.run_id) is None:
            runs = (*runs, curves)
        return dataclasses.replace(self, runs=runs)


def median_curve(runs: Sequence[RunCurves], which: str = "test") -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The per-epoch median of ``which`` ("train" or "test") loss over several runs.

    An epoch counts only while at least half of the runs reached it, so the tail of one
    long survivor is not drawn as the median of the study.
    """
    if which not in ("train", "test"):
        raise ValueError(f"which must be 'train' or 'test', not {which!r}")
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        for e, v in zip(r.epochs, r.train_loss if which == "train" else r.test_loss):
            by_epoch.setdefault(e, []).append(v)
    need = math.ceil(len(runs) / 2)
    epochs = tuple(sorted(e for e, vs in by_epoch.items() if len(vs) >= need))
    return epochs, tuple(float(np.median(by_epoch[e])) for e in epochs)


def median_run(runs: Sequence[RunCurves]) -> RunCurves | None:
    """The run whose final test loss is the median (the lower middle one for an even count).

    Runs without an epoch are left out; ``None`` when no run has one.
    """
    done = [r for r in runs if r.test_loss]
    if not done:
        return None
    # NaN sorts last, so a broken loss is never taken for the typical run
    done.sort(key=lambda r: (math.isnan(r.test_loss[-1]), r.test_loss[-1], r.seed))
    return done[(len(done) - 1) // 2]


def bold_run(runs: Sequence[RunCurves]) -> RunCurves | None:
    """The run a study's plot draws boldly over its faint seeds: the one with the median
    final test loss (:func:`median_run`). A real run's curve, not an epoch-by-epoch median,
    which for a study of dead and live seeds lies between them and matches no run."""
    return median_run(runs)


def no_epochs_text(runs: Sequence[RunCurves]) -> str:
    """What a loss panel without a single epoch says: "all 10 diverged at epoch 1" when
    every run diverged, else "no epochs yet"."""
    if runs and all(r.status == RunStatus.DIVERGED.value for r in runs):
        epochs = sorted({r.diverged_epoch for r in runs if r.diverged_epoch is not None})
        when = "" if not epochs else f" at epoch {epochs[0]}" if len(epochs) == 1 else \
            f" at epochs {epochs[0]}–{epochs[-1]}"
        return f"all {len(runs)} diverged{when}" if len(runs) > 1 else f"diverged{when}"
    return "no epochs yet"


def training_points(preset: Preset, seed: int, limit: int = MAX_TRAIN_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` of the training samples of ``seed``'s data set, sorted by x."""
    data = make_dataset(dataclasses.replace(preset.data, seed=seed))
    x = data.x_train.reshape(-1).numpy()
    y = data.y_train.reshape(-1).numpy()
    if x.size > limit:
        pick = np.random.default_rng(seed).choice(x.size, size=limit, replace=False)
        x, y = x[pick], y[pick]
    order = np.argsort(x, kind="stable")
    return x[order].astype(np.float32), y[order].astype(np.float32)


def plot_data(preset: Preset, runs: Sequence[RunInput], *, title: str | None = None) -> PlotData:
    """Build what the figure and the app draw for ``runs`` of ``preset``.

    A run with no stored grid keeps ``grid_yhat=None``: the caller may fill it from a
    checkpoint (:func:`fnn_tui.core.grid.predict`) or the view says no fit is stored.
    """
    curves = []
    for run_id, seed, status, dead, epochs, blob, *more in runs:
        ordered = sorted(epochs, key=lambda m: m.epoch)
        curves.append(RunCurves(
            run_id=run_id,
            seed=seed,
            status=status,
            dead=bool(dead) or any(m.dead for m in ordered[-1:]),
            epochs=tuple(m.epoch for m in ordered),
            train_loss=tuple(m.train_loss for m in ordered),
            test_loss=tuple(m.test_loss for m in ordered),
            grid_yhat=None if blob is None else grid.decode(blob),
            diverged_epoch=more[0] if more else None,
        ))
    xs = grid.grid_x(preset)
    typical = median_run(curves)
    seed = typical.seed if typical is not None else (curves[0].seed if curves else preset.data.seed)
    train_x, train_y = training_points(preset, seed)
    return PlotData(
        title=title or f"{preset.name}: {preset.experiment.name}, {preset.setting()}",
        preset_name=preset.name,
        runs=tuple(curves),
        notes_train_loss=preset.reported.train_loss,
        notes_test_loss=preset.reported.test_loss,
        grid_x=xs,
        grid_y=grid.target_y(preset, xs),
        train_x=train_x,
        train_y=train_y,
        domain=(float(preset.data.domain[0]), float(preset.data.domain[1])),
        target=preset.data.target,
    )
