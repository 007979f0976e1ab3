"""Plots wired end to end: plot data read from the store, `fnn-tui plot`, the report's
figures, and the app's plot screen (p), on tiny real runs."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from fnn_tui.cli import app as cli_app
from fnn_tui.core import grid
from fnn_tui.core.events import EpochFinished, EpochMetrics
from fnn_tui.core.model import build_model
from fnn_tui.core.presets import Preset, load_preset
from fnn_tui.core.state import TrainState, previous_path, save_checkpoint
from fnn_tui.core.status import RunStatus
from fnn_tui.core.trainer import RunOptions, fit_due
from fnn_tui.report.figures import overlay_label, write_figure
from fnn_tui.report.plotdata import median_run, no_epochs_text, plot_data
from fnn_tui.report.plotstore import (
    NothingToPlot,
    link_figures,
    plot_for_preset,
    plot_for_run,
    write_report_figures,
)
from fnn_tui.runs.record import record_run, resume_run
from fnn_tui.store.runs import Store
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.messages import RunEvent
from fnn_tui.tui.screens.plot import PlotScreen, PlotTarget
from fnn_tui.tui.widgets.plots import PlotView, epoch_ticks

from .conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
SIZE = (80, 24)
FUSED = RunOptions(engine="fused")
runner = CliRunner()


def _tiny(catalog, name: str, **overrides: int) -> Preset:
    return catalog.get(name).with_overrides(**{"samples": 300, "epochs": 3, **overrides})


def _forget_fits(home: Path, run_id: int, *, checkpoint: bool = False) -> None:
    """Make a run look like one stored before fits were kept (and, optionally, lose its checkpoint)."""
    conn = sqlite3.connect(home / "runs.sqlite3")
    with conn:
        conn.execute("UPDATE epochs SET fit = NULL WHERE run_id = ?", (run_id,))
    conn.close()
    if checkpoint:
        with Store(home) as store:
            path = store.get_run(run_id).checkpoint_path
        path.unlink()
        previous_path(path).unlink(missing_ok=True)


def _dead_run(home: Path, preset: Preset) -> int:
    """A real run that trains from a dead start: its first layer off for every input (weights 0,
    biases -1), so no gradient reaches it and the output is one number for every x. Made
    through the public path: a stopped run with that checkpoint, resumed."""
    params = {n: p.detach().clone() for n, p in build_model(preset.model, preset.data.seed).named_parameters()}
    params["layers.0.weight"].zero_()
    params["layers.0.bias"].fill_(-1.0)
    with Store(home) as store:
        run_id = store.create_run(preset, engine="fused", device="cpu")
        state = TrainState(0, params, {}, preset.to_toml(), preset.digest(), "fused", preset.data.seed)
        save_checkpoint(state, store.get_run(run_id).checkpoint_path)
        store.end_run(run_id, RunStatus.CANCELLED, message="stopped by the user")
    resume_run(home, run_id)
    return run_id


# --- plot data from the store ---------------------------------------------------------------

def test_a_run_and_a_study_from_the_store(home: Path, catalog) -> None:
    tiny = _tiny(catalog, "exp08")
    first = record_run(home, tiny.with_overrides(seed=1), FUSED).run_id
    second = record_run(home, tiny.with_overrides(seed=2), FUSED).run_id
    other = record_run(home, tiny.with_overrides(epochs=2, seed=3), FUSED).run_id  # another study, newest
    with Store(home) as store:
        one = plot_for_run(store, first)
        stored_fit = grid.decode(store.fits(first)[-1][1])
        own = plot_for_preset(store, tiny)  # the preset's own settings have runs: their study
        newest = plot_for_preset(store, "exp08")  # by name: the study of the newest run
        catalog_preset = plot_for_preset(store, catalog.get("exp08"))  # no run with the full settings
        with pytest.raises(NothingToPlot, match="no runs of exp03 stored"):
            plot_for_preset(store, "exp03")
        with pytest.raises(NothingToPlot, match="no run with id 99"):
            plot_for_run(store, 99)
    (run,) = one.runs
    assert run.run_id == first and run.epochs == (1, 2, 3) and run.seed == 1
    np.testing.assert_array_equal(run.grid_yhat, stored_fit)
    assert "exp08 run 1, seed 1, finished" in one.title
    assert [r.run_id for r in own.runs] == [first, second] and "the preset's settings" in own.title
    assert [r.run_id for r in newest.runs] == [other] and f"run {other}'s settings" in newest.title
    assert [r.run_id for r in catalog_preset.runs] == [other]
    with Store(home) as store:
        chosen = plot_for_preset(store, "exp08", study=tiny.study_digest())  # as a report chose it
    assert [r.run_id for r in chosen.runs] == [first, second]


def test_a_fit_comes_from_the_checkpoint_when_none_is_stored(home: Path, catalog) -> None:
    run_id = record_run(home, _tiny(catalog, "exp08"), FUSED).run_id
    with Store(home) as store:
        stored = grid.decode(store.fits(run_id)[-1][1])
    _forget_fits(home, run_id)
    with Store(home) as store:
        assert store.fits(run_id) == []
        (run,) = plot_for_run(store, run_id).runs
    assert run.epochs == (1, 2, 3)
    np.testing.assert_allclose(run.grid_yhat, stored, rtol=1e-5, atol=1e-5)  # the last checkpoint's fit
    _forget_fits(home, run_id, checkpoint=True)
    with Store(home) as store:
        data = plot_for_run(store, run_id)
    assert data.runs[0].grid_yhat is None and data.runs[0].epochs == (1, 2, 3)


def test_a_dead_run_is_drawn_as_a_flat_fit(home: Path, catalog, tmp_path: Path) -> None:
    run_id = _dead_run(home, _tiny(catalog, "exp05", epochs=2))
    with Store(home) as store:
        data = plot_for_run(store, run_id)
    (run,) = data.runs
    assert run.dead and run.epochs == (1, 2)
    assert float(np.ptp(run.grid_yhat)) < 1e-6 * max(1.0, abs(float(run.grid_yhat[0])))  # one value
    assert float(np.ptp(data.grid_y)) > 1.0  # beside a target that is not flat
    png = write_figure(data, tmp_path / "dead.png")
    assert imread(png).shape[:2] == (600, 1600)


# --- the report's figures ------------------------------------------------------------------

def test_report_figures_one_per_preset_and_their_markdown_links(home: Path, catalog, tmp_path: Path) -> None:
    tiny = _tiny(catalog, "exp08", epochs=2)
    record_run(home, tiny.with_overrides(seed=1), FUSED)
    record_run(home, tiny.with_overrides(seed=2), FUSED)
    folder = tmp_path / "report" / "figures"
    with Store(home) as store:
        figures = write_report_figures(store, [tiny, "exp03"], folder)  # exp03 has no runs
    assert list(figures) == ["exp08"] and figures["exp08"] == folder / "fnn-exp08.png"
    assert imread(figures["exp08"]).shape[:2] == (600, 1600)
    assert sorted(p.name for p in folder.iterdir()) == ["fnn-exp08.png"]  # no temp files left
    table = "# Reproduction\n\n| preset | loss |\n|---|---|\n| exp08 | 0.5 |\n"
    beside = link_figures(table, figures, relative_to=tmp_path / "report")
    assert beside.startswith(table) and beside.endswith("## Figures\n\n![exp08](figures/fnn-exp08.png)\n")
    elsewhere = link_figures(table, figures, relative_to=tmp_path / "docs")
    assert "![exp08](../report/figures/fnn-exp08.png)" in elsewhere
    assert link_figures(table, {}, relative_to=tmp_path) == table


# --- fnn-tui plot ---------------------------------------------------------------------------

def test_plot_command_writes_the_figure_and_says_where(home: Path, tmp_path: Path, monkeypatch) -> None:
    for seed in ("1", "2"):
        ran = runner.invoke(cli_app, ["run", "exp08", "--epochs", "3", "--samples", "300", "--seed", seed])
        assert ran.exit_code == 0, ran.output
    monkeypatch.chdir(tmp_path)
    study = runner.invoke(cli_app, ["plot", "exp08", "-o", "fig.png"])
    assert study.exit_code == 0, study.output
    assert study.stdout.strip() == "fig.png" and imread(tmp_path / "fig.png").shape[:2] == (600, 1600)
    one = runner.invoke(cli_app, ["plot", "--run", "2"])
    assert one.exit_code == 0 and one.stdout.strip() == "fnn-exp08-run2.png"
    assert (tmp_path / "fnn-exp08-run2.png").exists()
    # several runs, or several presets' studies, overlaid on one figure
    runs = runner.invoke(cli_app, ["plot", "--run", "1", "--run", "2"])
    assert runs.exit_code == 0 and runs.stdout.strip() == "fnn-runs-1-2.png"
    assert imread(tmp_path / "fnn-runs-1-2.png").shape[:2] == (600, 1600)
    ran = runner.invoke(cli_app, ["run", "exp07", "--epochs", "2", "--samples", "300"])
    presets = runner.invoke(cli_app, ["plot", "7", "8"])
    assert ran.exit_code == 0 and presets.exit_code == 0 and presets.stdout.strip() == "fnn-exp07-exp08.png"
    with Store(home) as store:
        items = [plot_for_preset(store, name) for name in ("exp07", "exp08")]
    assert overlay_label(items[0]) == "exp07 run 3 (seed 0)"
    assert overlay_label(items[1]).startswith("exp08 (2 seeds, median seed ")
    assert runner.invoke(cli_app, ["plot", "--run", "1", "--run", "99"]).exit_code == 2  # every run must exist
    svg = runner.invoke(cli_app, ["plot", "8", "-o", str(tmp_path / "out" / "study.svg")])  # 8 = exp08
    assert svg.exit_code == 0 and b"<svg" in (tmp_path / "out" / "study.svg").read_bytes()[:400]
    bad = {
        ("plot", "12"): "to plot run 12 use `fnn-tui plot --run 12`",
        ("plot", "exp03"): "no runs of exp03 stored",
        ("plot", "--run", "99"): "no run with id 99",
        ("plot", "exp08", "-o", "fig.jpg"): "use .png, .svg or .pdf",
        ("plot",): "name a preset",
        ("plot", "exp08", "--run", "1"): "not both",
    }
    for args, message in bad.items():
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "fig.jpg").exists()


def test_plot_without_matplotlib_is_one_line_and_exit_2(home: Path, tmp_path: Path, catalog) -> None:
    record_run(home, _tiny(catalog, "exp08", epochs=1), FUSED)
    code = ("import sys; sys.modules['matplotlib'] = None; sys.argv = ['fnn-tui', 'plot', 'exp08'];"
            "from fnn_tui.cli import main; main()")
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install matplotlib" in lines[0]
    assert out.stdout == "" and not list(tmp_path.glob("*.png"))


# --- the app: p -----------------------------------------------------------------------------

async def _plot_shown(pilot, run_id: int | None = None) -> PlotView:
    """Wait for the plot screen to show data (of ``run_id`` when given)."""
    for _ in range(400):
        await pilot.pause(0.05)
        screen = pilot.app.screen
        if isinstance(screen, PlotScreen) and screen.view.data is not None:
            if run_id is None or screen.view.data.run(run_id) is not None:
                return screen.view
    raise AssertionError("the plot was not shown")


async def test_p_plots_a_finished_run_from_the_lab_and_the_runs_list(home: Path, catalog) -> None:
    run_id = record_run(home, _tiny(catalog, "exp11"), FUSED).run_id
    with Store(home) as store:
        fit = tuple(map(float, grid.decode(store.fits(run_id)[-1][1])))
        epochs = store.epochs(run_id)
    app = FnnApp(home=home, preset="exp11")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert any(c.title == "Plot" for c in app.get_system_commands(app.screen))
        await pilot.press("p")
        view = await _plot_shown(pilot, run_id)
        assert view.shown == "both"  # both panels side by side at 80 columns
        train, test, *notes = view.loss_series
        assert train.x == test.x == (1.0, 2.0, 3.0)
        assert test.y == tuple(m.test_loss for m in epochs) and notes
        labels = [s.label for s in view.fit_series]
        assert labels == ["samples", "y", "ŷ"] and view.fit_series[-1].y == fit
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PlotScreen)
        await pilot.press("t")
        for _ in range(100):
            await pilot.pause(0.05)
            if app.runs_list.row_count:
                break
        await pilot.press("p")
        view = await _plot_shown(pilot, run_id)
        assert len(view.data.runs) == 1
        await pilot.press("p")  # p goes back too
        await pilot.pause()
        assert not isinstance(app.screen, PlotScreen)
        await pilot.press("ctrl+p")  # and the command palette has it
        await pilot.pause(0.3)
        await pilot.press(*"plot", "enter")
        view = await _plot_shown(pilot, run_id)


async def test_a_study_target_shows_every_seed_and_their_median(home: Path, catalog) -> None:
    # what the runs list's by-preset rows open: the preset's study
    tiny = _tiny(catalog, "exp11", epochs=2)
    ids = [record_run(home, tiny.with_overrides(seed=s), FUSED).run_id for s in (1, 2)]
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.push_screen(PlotScreen(home, PlotTarget(preset=tiny, study=True)))
        view = await _plot_shown(pilot)
        assert [r.run_id for r in view.data.runs] == ids
        # each seed's test loss faintly, under the bold curves of the run with the median final test loss
        faint = [s for s in view.loss_series if s.marker == "·"]
        assert [s.y for s in faint] == [r.test_loss for r in view.data.runs] and all(s.reference for s in faint)
        bold = median_run(view.data.runs)
        train, test = view.loss_series[2:4]
        assert train.label == f"train seed {bold.seed} (median of 2)" and train.y == bold.train_loss
        assert test.y == bold.test_loss  # a real run's curve, not an epoch-by-epoch median
        assert view.fit_series[-1].label == f"ŷ seed {bold.seed}"


async def test_a_study_that_all_diverged_says_so_in_the_plot_and_the_figure(home: Path, tmp_path: Path) -> None:
    from fnn_tui.report.figures import write_figure
    from fnn_tui.report.plotstore import plot_for_preset

    preset = load_preset(FIXTURES / "diverges.toml")
    for seed in (0, 1):
        record_run(home, preset.with_overrides(seed=seed), FUSED)
    with Store(home) as store:
        data = plot_for_preset(store, preset)
        epochs = {r.diverged_epoch for r in store.list_runs()}
    assert no_epochs_text(data.runs) == f"all 2 diverged at epoch {epochs.pop()}" and not epochs
    write_figure(data, tmp_path / "div.png")  # draws the same words in its loss panel
    assert (tmp_path / "div.png").stat().st_size > 0
    app = FnnApp(home=home, preset_dirs=[FIXTURES])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.push_screen(PlotScreen(home, PlotTarget(preset=preset, study=True)))
        await _plot_shown(pilot)
        assert "all 2 diverged at epoch" in str(app.screen.query_one("#loss-legend").render())


async def test_the_plot_of_a_running_run_grows_with_each_epoch(home: Path) -> None:
    app = FnnApp(home=home, preset="exp07", engine="torch")  # ~800 steps an epoch: several epochs a second
    first_epoch = asyncio.Event()

    def hook(message) -> None:
        if isinstance(message, RunEvent) and isinstance(message.event, EpochFinished):
            first_epoch.set()

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await pilot.press("r")
        await asyncio.wait_for(first_epoch.wait(), timeout=120)
        await pilot.press("p")
        view = await _plot_shown(pilot)
        (run,) = view.data.runs
        seen = [len(view.loss_series[0].x)]
        # until two more epochs, and one that stores a fit, have been drawn
        want = max(seen[0] + 2, next(e for e in range(seen[0] + 1, 151) if fit_due(e, 150)))
        for _ in range(2400):
            await pilot.pause(0.05)
            n = len(view.loss_series[0].x)
            if n != seen[-1]:
                seen.append(n)
            if n >= want:
                break
        assert seen[-1] >= want and len(seen) >= 3, seen  # it grew step by step
        train, test = view.loss_series[:2]
        assert train.x == test.x == tuple(float(e) for e in range(1, seen[-1] + 1))  # one point per epoch
        assert app.runs.current == run.run_id  # still training while it grew
        await pilot.press("s")  # stop works over the plot
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown_fit = view.fit_series[-1].y
    with Store(home) as store:
        assert store.get_run(run.run_id).status == RunStatus.CANCELLED
        fit_epoch, blob = store.fits(run.run_id)[-1]
    assert fit_epoch > seen[0]  # a fit that came with an epoch's event, not with the first load
    assert shown_fit == tuple(map(float, grid.decode(blob)))


async def test_a_run_without_fit_or_checkpoint_says_no_fit_stored(home: Path, catalog) -> None:
    run_id = record_run(home, _tiny(catalog, "exp11"), FUSED).run_id
    _forget_fits(home, run_id, checkpoint=True)
    app = FnnApp(home=home, preset="exp11")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("p")
        view = await _plot_shown(pilot, run_id)
        assert [s.label for s in view.fit_series] == ["samples", "y"]
        assert f"no fit stored for run {run_id}" in str(view.query_one("#fit-legend").render())
        assert len(view.loss_series[0].x) == 3  # the losses are still drawn


async def test_p_on_a_preset_without_runs_says_so(home: Path) -> None:
    app = FnnApp(home=home, preset="exp03")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("p")
        for _ in range(200):
            await pilot.pause(0.05)
            screen = app.screen
            if isinstance(screen, PlotScreen) and not screen.view.message.startswith("reading"):
                break
        assert isinstance(app.screen, PlotScreen) and app.screen.view.data is None
        assert app.screen.view.message == "no runs of exp03 yet: press r to run it"


def test_epoch_ticks_are_whole_round_epochs() -> None:
    assert epoch_ticks(1, 5) == [1, 2, 3, 4, 5]
    assert epoch_ticks(1, 150) == [1, 50, 100, 150]
    assert epoch_ticks(1, 500) == [100, 200, 300, 400, 500]
    assert epoch_ticks(1, 1) == [1]


def _made_up_metrics(epochs: int) -> list[EpochMetrics]:
    """Smoothly falling losses: the snapshot's picture must not depend on the CPU."""
    return [EpochMetrics(e, 0.5 * math.exp(-e / 3) + 0.2, 1.1, 0.6 * math.exp(-e / 3) + 0.25, 1.05, 0.1, 0.01, 0.02,
                         dead=True) for e in range(1, epochs + 1)]


def test_plot_screen_snapshot(snap_compare, home: Path, catalog) -> None:
    # a dead exp05 run, drawn from fixed numbers: its fit is one flat line across the domain
    preset = _tiny(catalog, "exp05", epochs=12)
    flat = grid.encode(np.full(grid.GRID_POINTS, 2.9, dtype=np.float32))
    data = plot_data(preset, [(3, 0, "finished", True, _made_up_metrics(12), flat)],
                     title="exp05 run 3, seed 0, finished: (40,40), plain, 300, 12")

    async def show(pilot) -> None:
        await pilot.pause()
        screen = PlotScreen(home, None)
        await pilot.app.push_screen(screen)
        screen.show(data)
        await pilot.pause()

    assert snap_compare(FnnApp(home=home), terminal_size=SIZE, run_before=show)
