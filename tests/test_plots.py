"""Plots: the grid predictions, the plot data, the report's figures and the app's PlotView."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from textual.app import App, ComposeResult

from fnn_tui.core import grid
from fnn_tui.core.data import epoch_order, make_dataset
from fnn_tui.core.events import EpochFinished, EpochMetrics
from fnn_tui.core.model import build_model
from fnn_tui.core.presets import Preset
from fnn_tui.core.trainer import RunOptions, train
from fnn_tui.report.figures import TITLE_CHARS, title_lines, write_figure
from fnn_tui.report.plotdata import PlotData, median_curve, median_run, plot_data
from fnn_tui.tui.widgets.plots import WIDE, PlotView, log_ticks

ROOT = Path(__file__).resolve().parents[1]


def _train_with_grid(preset: Preset) -> tuple[list[EpochMetrics], list[np.ndarray]]:
    """Train for real, keeping each epoch's metrics and its prediction on the grid."""
    xs = grid.grid_x(preset)
    metrics: list[EpochMetrics] = []
    fits: list[np.ndarray] = []

    def emit(event: object) -> None:
        if isinstance(event, EpochFinished):
            metrics.append(event.metrics)
            fits.append(grid.predict(preset, event.state.params, xs))

    train(preset, RunOptions(device="cpu", engine="fused"), emit)
    return metrics, fits


def _made_up_metrics(epochs: int, scale: float = 1.0) -> list[EpochMetrics]:
    """Smoothly falling losses: for layout tests whose picture must not depend on the CPU."""
    return [EpochMetrics(e, scale * (0.5 * math.exp(-e / 3) + 0.01), 1.1, scale * (0.6 * math.exp(-e / 3) + 0.012),
                         1.05, 0.1, 0.01, 0.02) for e in range(1, epochs + 1)]


# --- core: the grid -------------------------------------------------------------------------

def test_grid_spans_the_domain_in_float32(tiny08: Preset) -> None:
    xs = grid.grid_x(tiny08)
    assert xs.dtype == np.float32 and xs.shape == (grid.GRID_POINTS,)
    assert (xs[0], xs[-1]) == tiny08.data.domain and np.all(np.diff(xs) > 0)
    y = grid.target_y(tiny08, xs)
    assert y.dtype == np.float32
    assert y[0] == pytest.approx(math.log2(xs[0]) + math.cos(math.pi * xs[0] / 2), abs=1e-6)


def test_grid_blob_round_trip_is_float32_little_endian() -> None:
    values = np.array([1.5, -2.25, np.float32(1) / 3, 1e-30, 7e20], dtype=np.float32)
    blob = grid.encode(values)
    assert len(blob) == 4 * values.size and blob[:4] == np.float32(1.5).astype("<f4").tobytes()
    back = grid.decode(blob)
    assert back.dtype == np.float32 and np.array_equal(back, values)
    back[0] = 0  # a writable copy, not a view of the bytes
    with pytest.raises(ValueError, match="multiple of 4"):
        grid.decode(blob[:-1])


@pytest.mark.parametrize("engine_name", ["fused", "torch"])
def test_engine_predict_agrees_with_the_reference_model(tiny08: Preset, engine_name: str) -> None:
    data = make_dataset(tiny08.data)
    if engine_name == "fused":
        from fnn_tui.core.engines.fused_engine import FusedEngine

        engine = FusedEngine(tiny08, data)
    else:
        from fnn_tui.core.engines.torch_engine import TorchEngine

        engine = TorchEngine(tiny08, data, "cpu")
    xs = grid.grid_x(tiny08)
    before = engine.predict(xs)
    initial = grid.predict(tiny08, dict(build_model(tiny08.model, tiny08.data.seed).named_parameters()), xs)
    np.testing.assert_allclose(before, initial, rtol=1e-5, atol=1e-5)
    engine.set_epoch(0, epoch_order(engine.n_train, tiny08.data.seed, 0), tiny08.training.lr)
    assert engine.run_steps(0, 50) == -1
    after = engine.predict(xs)
    assert after.dtype == np.float32 and after.shape == xs.shape
    assert np.abs(after - before).max() > 1e-4  # training moved the fit
    np.testing.assert_allclose(after, grid.predict(tiny08, engine.snapshot()[0], xs), rtol=1e-5, atol=1e-5)


def test_core_grid_and_figures_import_no_ui_and_no_matplotlib() -> None:
    code = ("import sys, fnn_tui.core.grid, fnn_tui.report.figures, fnn_tui.report.plotdata; "
            "print(sorted(m for m in ('textual', 'rich', 'matplotlib', 'fnn_tui.store') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- report: plot data and figures -------------------------------------------------------------

def test_medians_over_runs() -> None:
    a, b, c = _made_up_metrics(6, 1.0), _made_up_metrics(6, 2.0), _made_up_metrics(3, 4.0)
    data = plot_data_for_runs([(1, 0, a), (2, 1, b), (3, 2, c)])
    epochs, test = median_curve(data.runs, "test")
    assert epochs == (1, 2, 3, 4, 5, 6)  # epochs 4-6: two of three runs, still half or more
    assert test[0] == np.median([a[0].test_loss, b[0].test_loss, c[0].test_loss])
    assert test[5] == np.median([a[5].test_loss, b[5].test_loss])
    assert median_run(data.runs).run_id == 2  # final test losses: a < b < c
    with pytest.raises(ValueError):
        median_curve(data.runs, "lr")


def plot_data_for_runs(runs: list[tuple[int, int, list[EpochMetrics]]], preset: Preset | None = None) -> PlotData:
    from fnn_tui.core.catalog import discover

    preset = preset or discover(include_user=False).get("exp08").with_overrides(samples=300, epochs=6)
    return plot_data(preset, [(rid, seed, "finished", False, ms, None) for rid, seed, ms in runs])


def test_figure_of_a_real_run_has_the_fixed_pixel_size(tiny08: Preset, tmp_path: Path) -> None:
    from matplotlib.image import imread

    metrics, fits = _train_with_grid(tiny08)
    assert len(metrics) == 3
    data = plot_data(tiny08, [(7, 0, "finished", False, metrics, grid.encode(fits[-1]))])
    (run,) = data.runs
    assert run.epochs == (1, 2, 3) and run.test_loss == tuple(m.test_loss for m in metrics)
    np.testing.assert_array_equal(run.grid_yhat, fits[-1])
    assert data.notes_train_loss == tiny08.reported.train_loss and data.train_x.size == 240
    png = write_figure(data, tmp_path / "figs" / "exp08.png")
    assert imread(png).shape[:2] == (600, 1600)
    svg = write_figure(data, tmp_path / "exp08.svg")
    pdf = write_figure(data, tmp_path / "exp08.pdf")
    assert b"<svg" in svg.read_bytes()[:400] and pdf.read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp08.pdf", "exp08.svg", "figs"]  # no temp files


def test_figure_of_several_seeds_and_a_run_without_a_stored_fit(tmp_path: Path) -> None:
    data = plot_data_for_runs([(1, 0, _made_up_metrics(5)), (2, 1, _made_up_metrics(5, 3.0))])
    assert all(r.grid_yhat is None for r in data.runs)
    out = write_figure(data, tmp_path / "two.png", dpi=80)
    from matplotlib.image import imread

    assert imread(out).shape[:2] == (300, 800)


def test_figure_refuses_an_unknown_format(tmp_path: Path) -> None:
    data = plot_data_for_runs([(1, 0, _made_up_metrics(2))])
    with pytest.raises(ValueError, match=r"\.jpg.*use \.png, \.svg or \.pdf"):
        write_figure(data, tmp_path / "fig.jpg")
    assert not list(tmp_path.iterdir())


def test_a_long_title_is_broken_into_lines_that_fit_and_keeps_every_word() -> None:
    names = [f"exp{i:02d}\u00a0run\u00a0{i}" for i in range(1, 12)]  # no break inside one label
    text = " vs ".join(names)
    lines = title_lines(text).split("\n")
    assert len(lines) >= 2 and all(len(line) <= TITLE_CHARS for line in lines)
    assert " ".join(lines) == text  # only spaces between labels became line breaks
    assert all(not line.startswith("run") for line in lines)
    assert title_lines("exp08 (2 runs, seeds 1, 2)") == "exp08 (2 runs, seeds 1, 2)"


def test_missing_matplotlib_is_one_line_naming_the_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from pathlib import Path\n"
        "from fnn_tui.core.catalog import discover\n"
        "from fnn_tui.report.figures import MatplotlibMissing, write_figure\n"
        "from fnn_tui.report.plotdata import plot_data\n"
        "p = discover(include_user=False).get('exp08').with_overrides(samples=300, epochs=2)\n"
        "try:\n"
        f"    write_figure(plot_data(p, []), Path({str(tmp_path / 'x.png')!r}))\n"
        "except MatplotlibMissing as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and "pip install matplotlib" in lines[0]
    assert not (tmp_path / "x.png").exists()


# --- app: PlotView ------------------------------------------------------------------------------

class PlotApp(App[None]):
    """Just the plot view, as the lab screen will hold it."""

    def compose(self) -> ComposeResult:
        yield PlotView()


def _initial_fit(preset: Preset) -> bytes:
    model = build_model(preset.model, preset.data.seed)
    return grid.encode(grid.predict(preset, dict(model.named_parameters()), grid.grid_x(preset)))


async def test_plot_view_shows_a_run_and_grows_with_its_epochs(tiny08: Preset) -> None:
    metrics, fits = _train_with_grid(tiny08)
    app = PlotApp()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(PlotView)
        await pilot.pause()
        assert view.data is None and not view.loss_series
        view.show(plot_data(tiny08, [(5, 0, "running", False, metrics[:2], grid.encode(fits[1]))]))
        await pilot.pause()
        assert view.shown == "both" and view.size.width >= WIDE
        train_s, test_s, notes_s = view.loss_series
        assert train_s.x == (1.0, 2.0) and test_s.y == tuple(m.test_loss for m in metrics[:2])
        assert notes_s.y[0] == tiny08.reported.train_loss
        assert view.fit_series[-1].y == tuple(map(float, fits[1]))
        # one more epoch, with its fit
        assert view.add_epoch(5, metrics[2], fits[2])
        await pilot.pause()
        assert view.loss_series[0].x == (1.0, 2.0, 3.0) and view.loss_series[1].y[-1] == metrics[2].test_loss
        assert view.fit_series[-1].y == tuple(map(float, fits[2]))
        assert not view.add_epoch(99, metrics[2])  # not a run this view shows
        view.clear("no fit stored for run 12")
        await pilot.pause()
        assert view.data is None and str(app.query_one("#plot-message").render()) == "no fit stored for run 12"


async def test_plot_view_switches_panels_when_narrow(tiny08: Preset) -> None:
    app = PlotApp()
    async with app.run_test(size=(48, 18)) as pilot:
        view = app.query_one(PlotView)
        view.show(plot_data(tiny08, [(1, 0, "finished", False, _made_up_metrics(4), None)]))
        view.focus()
        await pilot.pause()
        assert view.shown == "loss" and not app.query_one("#fit-panel").display
        await pilot.press("v")
        assert view.shown == "fit" and app.query_one("#fit-panel").display
        assert not app.query_one("#loss-panel").display
        assert "no fit stored for run 1" in str(app.query_one("#fit-legend").render())


def test_log_ticks_are_round_losses() -> None:
    ticks = [round(10 ** t, 12) for t in log_ticks(math.log10(0.003), math.log10(0.5))]
    assert ticks == [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
    assert [round(10 ** t, 12) for t in log_ticks(-5.0, 0.0)] == [1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0]


def test_plot_view_snapshot(snap_compare, tiny08: Preset) -> None:
    data = plot_data(tiny08, [(1, 0, "finished", False, _made_up_metrics(12), _initial_fit(tiny08))])

    async def show(pilot) -> None:
        pilot.app.query_one(PlotView).show(data)
        await pilot.pause()

    assert snap_compare(PlotApp(), terminal_size=(80, 24), run_before=show)


def test_training_moves_the_stored_fit_toward_the_target(tiny08: Preset) -> None:
    # the point of storing y_hat: after training, the fit is closer to y than at the start
    metrics, fits = _train_with_grid(tiny08)
    y = grid.target_y(tiny08, grid.grid_x(tiny08))
    start = np.frombuffer(_initial_fit(tiny08), dtype="<f4")
    assert float(np.mean((fits[-1] - y) ** 2)) < float(np.mean((start - y) ** 2))
    assert torch.isfinite(torch.tensor(fits[-1])).all()
