"""The runs view says what it shows and saves what it shows; the palette has the app's
commands; help is per screen. At 80x24 on tiny real runs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.record import record_run
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.screens.plot import PlotScreen
from fnn_tui.tui.widgets.report import ReportTable
from fnn_tui.tui.widgets.results import ResultsTable

from .helpers import screen_lines, without_provenance

SIZE = (80, 24)


async def _until(pilot, condition, tries: int = 600) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition never came true")


def _hint(app) -> str:
    return str(app.query_one("#results-hint").render())


def _screen(app) -> str:
    return "\n".join(screen_lines(app.export_screenshot()))


async def test_runs_list_says_its_sort_scrolls_by_pages_and_saves_the_rows_as_sorted(
        home: Path, tmp_path: Path, catalog) -> None:
    tiny = catalog.get("exp07").with_overrides(samples=200, epochs=1)
    ids = [record_run(home, tiny.with_overrides(seed=seed), RunOptions(engine="fused")).run_id for seed in (0, 1, 2)]
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("t")
        table = app.query_one(ResultsTable)
        await _until(pilot, lambda: table.row_count == 3)
        await pilot.pause()
        # the view says what it is from the first (not the report's words)
        assert _hint(app).startswith("Runs list: every stored run, sorted by run, newest first")
        shown = _screen(app)
        assert "run ▼" in shown and "te loss" in shown and "te ratio" in shown  # the test numbers fit 80 columns
        # o steps the sort: the header and the hint say by what and which way
        await pilot.press("o", "o", "o", "o")  # run -> preset -> seed -> train loss -> test loss
        await pilot.pause()
        assert table.sort_state == ("test_loss", False)
        assert "sorted by te loss, lowest first" in _hint(app) and "te loss ▲" in _screen(app)
        assert "seed ▲" not in _screen(app) and "  seed  " in _screen(app)  # the arrow moved on
        await pilot.press("o")
        await pilot.pause()
        assert table.sort_state == ("test_ratio", False) and "sorted by te ratio, lowest first" in _hint(app)
        ratios = [r.test_ratio for r in table.shown_rows()]
        assert ratios == sorted(ratios)
        # Right scrolls half a screen, not one cell
        await pilot.press("right")
        await pilot.pause()
        assert table.scroll_x >= table.scrollable_content_region.width // 2 - 1
        await pilot.press("left")
        await pilot.pause()
        assert table.scroll_x == 0
        # ctrl+s saves the rows on screen, in their order
        target = tmp_path / "runs.csv"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Save the runs list" in str(app.screen.query_one(".title").render())
        app.screen.query_one("#path").value = str(target)
        await pilot.press("enter")
        await _until(pilot, target.exists)
        rows = list(csv.DictReader(io.StringIO(without_provenance(target.read_text()))))
        assert [float(r["test_ratio"]) for r in rows] == ratios and sorted(int(r["run_id"]) for r in rows) == ids
        # in the lab, ctrl+s saves the results table and says which
        await pilot.press("t", "ctrl+s")
        await pilot.pause()
        title = str(app.screen.query_one(".title").render())
        assert title == "Save the results table" and "median over the seeds" in _screen(app)
        await pilot.press("escape")


async def test_the_report_scrolls_sideways_by_half_a_screen_where_it_is_wider(home: Path, catalog) -> None:
    # at 80 columns the report fits; in a narrower terminal Right and Left page it as the runs list
    record_run(home, catalog.get("exp07").with_overrides(samples=200, epochs=1), RunOptions(engine="fused"))
    app = FnnApp(home=home)
    async with app.run_test(size=(40, 24)) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("t", "b")
        report = app.query_one(ReportTable)
        await _until(pilot, lambda: report.row_count > 0)
        await pilot.pause()
        half = report.scrollable_content_region.width // 2
        assert report.max_scroll_x > half
        await pilot.press("right")
        await pilot.pause()
        assert report.scroll_x == half
        await pilot.press("left")
        await pilot.pause()
        assert report.scroll_x == 0


async def test_palette_has_the_apps_commands_and_help_is_per_screen(home: Path, catalog) -> None:
    record_run(home, catalog.get("exp07").with_overrides(samples=200, epochs=1), RunOptions(engine="fused"))
    app = FnnApp(home=home, preset="exp07")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        for query, title in (("save", "Save"), ("run all", "Run all"), ("report", "Report"), ("sweep", "Sweeps"),
                             ("claims", "tuning conclusions"), ("settings", "as a variant"), ("again", "Run again")):
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*query)
            await pilot.pause(0.5)
            assert title in _screen(app), query
            await pilot.press("escape")
            await pilot.pause()
        # the palette's Claims opens the notes' conclusions (a key the footer does not show)
        await pilot.press("ctrl+p", *"claims")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await _until(pilot, lambda: type(app.screen).__name__ == "ClaimsScreen")
        await pilot.press("escape")
        await _until(pilot, lambda: type(app.screen).__name__ != "ClaimsScreen")
        # the palette's Report opens the report
        await pilot.press("ctrl+p", *"report")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.results_mode == "report" and app.query_one("#views").current == "results-view"
        assert _hint(app).startswith("Report: each preset over its seeds.")
        # help in the runs view: its keys
        await pilot.press("question_mark")
        await pilot.pause()
        shown = _screen(app)
        assert "Runs view" in shown and "left/right" in shown and "space" not in shown
        await pilot.press("escape", "t")
        # help in the lab: the lab's keys, every one on the page
        await pilot.press("question_mark")
        await pilot.pause()
        shown = _screen(app)
        assert "Lab:" in shown and all(key in shown for key in ("space", "ctrl+s", "ctrl+p", " q "))
        await pilot.press("escape")
        # help over the plot: the plot's keys, not the lab's
        await pilot.press("p")
        await _until(pilot, lambda: isinstance(app.screen, PlotScreen))
        await pilot.press("question_mark")
        await pilot.pause()
        shown = _screen(app)
        assert "Plot:" in shown and "switch between the loss curves and the fit" in shown and "space" not in shown
        await pilot.press("escape", "escape")
        await _until(pilot, lambda: not isinstance(app.screen, PlotScreen))
        # over the conclusions the palette offers that view's Save and Help, not the lab's Run
        await pilot.press("c")
        await _until(pilot, lambda: type(app.screen).__name__ == "ClaimsScreen")
        await pilot.press("ctrl+p", *"run")
        await pilot.pause(0.5)
        assert "Train the highlighted preset" not in _screen(app)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+p", *"save")
        await pilot.pause(0.5)
        assert "Save what this view shows" in _screen(app)
        await pilot.press("enter")
        await pilot.pause()
        assert "Save the notes' conclusions" in _screen(app)
