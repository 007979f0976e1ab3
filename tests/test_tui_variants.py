"""The app's settings form (a variant run with the seeds field) and its sweeps views, at 80x24
with the keys alone, on tiny real runs."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, Label
from typer.testing import CliRunner

from fnn_tui.cli import app as cli_app
from fnn_tui.store.runs import Store
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.screens.dialogs import HelpScreen, SaveScreen
from fnn_tui.tui.screens.sweeps import SweepReportScreen, SweepsScreen
from fnn_tui.tui.screens.variant import VariantScreen
from fnn_tui.tui.widgets.preset_list import PresetList
from fnn_tui.tui.widgets.results import ResultsTable

from .helpers import screen_lines

SIZE = (80, 24)


async def _until(pilot, condition, tries: int = 1200) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition never came true")


def _error(app) -> str:
    return str(app.screen.query_one("#variant-error", Label).render())


async def test_the_settings_form_checks_as_you_type_and_runs_the_variant(home: Path) -> None:
    app = FnnApp(home=home, preset="exp08")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        assert app.query_one(PresetList).entry.name == "exp08"
        await pilot.press("e")
        await _until(pilot, lambda: isinstance(app.screen, VariantScreen))
        form = app.screen
        assert form.field("lr").value == "0.01" and form.field("hidden").value == "[20,20,30]"
        assert form.field("clip").value != "" and _error(app) == ""
        # typed key by key: a bad value says what --set says, at once
        form.field("lr").focus()
        form.field("lr").value = ""
        await pilot.press(*"abc")
        assert _error(app) == "--set lr=abc: training.lr: expected a finite number > 0, found string 'abc'"
        assert form.field("lr").has_class("-invalid")
        await pilot.press("enter")  # refused: the form stays
        assert isinstance(app.screen, VariantScreen)
        form.field("lr").value = ""
        await pilot.press(*"0.05")
        assert _error(app) == "" and not form.field("lr").has_class("-invalid")
        for key, value in (("samples", "200"), ("epochs", "1")):
            form.field(key).value = value
        await pilot.pause()
        assert "runs: exp08 · samples=200, epochs=1, lr=0.05" in str(form.query_one("#variant-name", Label).render())
        seeds = form.query_one("#variant-seeds", Input)
        seeds.focus()
        await pilot.press("2")
        await pilot.press("enter")
        await _until(pilot, lambda: not isinstance(app.screen, VariantScreen))
        await _until(pilot, lambda: app.runs.followed is not None)
        await app.workers.wait_for_complete()
        await pilot.pause()
        with Store(home) as store:
            runs = store.list_runs()
        assert sorted(r.seed for r in runs) == [0, 1] and {r.status.value for r in runs} == {"finished"}
        assert all("lr = 0.05" in r.preset_toml and r.epochs_total == 1 for r in runs)
        # the runs list names the variant
        await pilot.press("escape", "t")
        table = app.query_one(ResultsTable)
        await _until(pilot, lambda: table.row_count == 2)
        # starred in the preset column (the numbers fit 80 columns), named in full in its setting cell
        assert [str(table.get_row(str(r.id))[1]) for r in runs] == ["exp08*"] * 2
        assert all(str(table.get_row(str(r.id))[-2]).startswith("exp08 · samples=200, epochs=1, lr=0.05: ")
                   for r in runs)


async def test_the_sweeps_list_and_a_sweeps_report(home: Path, tmp_path: Path) -> None:
    made = CliRunner().invoke(cli_app, ["sweep", "8", "--set", "lr=0.001,0.1", "--seeds", "2", "--epochs", "1",
                                        "--samples", "200", "--name", "tiny"])
    assert made.exit_code == 0, made.output
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("w")
        await _until(pilot, lambda: isinstance(app.screen, SweepsScreen))
        table = app.screen.query_one("#sweeps-table", DataTable)
        await _until(pilot, lambda: table.row_count == 1)
        assert [str(c) for c in table.get_row("tiny")] == ["tiny", "exp08", "lr 2", "0,1", "4/4"]
        shown = {b.binding.key: b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
        assert shown.get("enter") == "Report", shown  # the footer says what enter does
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, SweepReportScreen) and app.screen.report is not None)
        report = app.screen
        rows = report.query_one("#sweep-table", DataTable)
        assert rows.row_count == 2
        names = [rows.get_row(k)[0].plain for k in ("lr=0.001", "lr=0.1")]
        assert sum("(best)" in n for n in names) == 1
        assert all(str(rows.get_row(k)[1]) == "2/0/0" for k in ("lr=0.001", "lr=0.1"))
        title = str(report.query_one("#sweep-title", Label).render())
        assert title.startswith("Sweep tiny: exp08 (samples=200, epochs=1), 2 variants x 2 seeds")
        # wider than 80 columns: right pages sideways by half a screen, the variant's name stays
        assert rows.virtual_size.width > rows.scrollable_content_region.width
        await pilot.press("right")
        await pilot.pause()
        assert rows.scroll_x == min(rows.scrollable_content_region.width // 2, rows.max_scroll_x) > 1  # not a cell
        shown = "\n".join(screen_lines(app.export_screenshot()))
        assert "test ratio" in shown and "lr=0.001" in shown
        await pilot.press("left")
        await pilot.pause()
        assert rows.scroll_x == 0
        # ? is this screen's help; ctrl+s saves the report as `report --sweep tiny -f csv` writes it
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and "sweep's report" in str(app.screen.query_one(".title").render())
        await pilot.press("escape")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveScreen) and app.screen.query_one("#path").value.startswith("fnn-sweep-tiny-")
        target = tmp_path / "tiny.csv"
        app.screen.query_one("#path").value = str(target)
        await pilot.press("enter")
        await _until(pilot, target.exists)
        await _until(pilot, lambda: app.screen is report)
        cli = CliRunner().invoke(cli_app, ["--home", str(home), "report", "--sweep", "tiny", "-f", "csv"])
        assert cli.exit_code == 0, cli.output
        saved = target.read_text().splitlines()
        assert saved[0].startswith("# made ") and "command: fnn-tui app: ctrl+s (the report of sweep tiny)" in saved[0]
        assert saved[1:] == cli.stdout.splitlines()[1:] and len(saved) == 1 + 1 + 2  # provenance, header, 2 variants
        await pilot.press("escape")
        assert isinstance(app.screen, SweepsScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, (SweepsScreen, SweepReportScreen))


async def test_the_settings_form_with_several_values_stores_and_trains_a_sweep(home: Path) -> None:
    """A field given several values makes the form a sweep: the same sweep `fnn-tui sweep`
    makes (its name, grid and base), trained; made again with another grid, a new name."""
    app = FnnApp(home=home, preset="exp08", device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("e")
        await _until(pilot, lambda: isinstance(app.screen, VariantScreen))
        form = app.screen
        for key, value in (("samples", "200"), ("epochs", "1"), ("lr", "0.001,abc")):
            form.field(key).value = value
        await pilot.pause()
        assert _error(app).startswith("--set lr=0.001,abc: training.lr: expected a finite number > 0")
        form.field("lr").value = "0.001,0.1"
        form.query_one("#variant-seeds", Input).value = "2"
        await pilot.pause()
        says = str(form.query_one("#variant-name", Label).render())
        assert _error(app) == "" and says.startswith("sweep exp08-lr: lr 2 = 2 variants x 2 seeds = 4 runs"), says
        form.query_one("#variant-seeds", Input).focus()
        await pilot.press("enter")
        await _until(pilot, lambda: not isinstance(app.screen, VariantScreen))
        await _until(pilot, lambda: app.runs.followed is not None)
        await app.workers.wait_for_complete()
        await _until(pilot, lambda: not app.runs.busy)
        with Store(home) as store:
            runs = store.list_runs()
        assert len(runs) == 4 and {r.status.value for r in runs} == {"finished"}
        assert sorted((r.seed, "lr = 0.1\n" in r.preset_toml) for r in runs) == [(0, False), (0, True), (1, False),
                                                                                (1, True)]
        # the command line's sweep of the same settings is this one: stored, nothing left to train
        cli = CliRunner().invoke(cli_app, ["--home", str(home), "sweep", "8", "--set", "lr=0.001,0.1", "--seeds", "2",
                                           "--epochs", "1", "--samples", "200"])
        assert cli.exit_code == 0 and "sweep exp08-lr: all 4 runs are done" in cli.stderr, cli.output
        # another grid under the same default name: a new sweep beside it
        await pilot.press("e")
        await _until(pilot, lambda: isinstance(app.screen, VariantScreen))
        form = app.screen
        for key, value in (("samples", "200"), ("epochs", "1"), ("lr", "0.01,0.1")):
            form.field(key).value = value
        await pilot.pause()
        assert str(form.query_one("#variant-name", Label).render()).startswith("sweep exp08-lr: lr 2 = 2 variants x 1 seed")
        form.field("lr").focus()
        await pilot.press("enter")
        await _until(pilot, lambda: not isinstance(app.screen, VariantScreen))
        await _until(pilot, lambda: app.runs.followed is not None)
        await app.workers.wait_for_complete()
        await _until(pilot, lambda: not app.runs.busy)
        await pilot.press("w")
        await _until(pilot, lambda: isinstance(app.screen, SweepsScreen))
        table = app.screen.query_one("#sweeps-table", DataTable)
        await _until(pilot, lambda: table.row_count == 2)
        assert [str(c) for c in table.get_row("exp08-lr-2")] == ["exp08-lr-2", "exp08", "lr 2", "0", "2/2"]
        assert [str(c) for c in table.get_row("exp08-lr")][-1] == "4/4"


async def test_r_in_the_sweeps_list_trains_what_the_sweep_is_missing(home: Path) -> None:
    """A sweep stored with more seeds than trained (`sweep NAME --seeds` adds seeds, a kill
    stops one): r trains the pairs not done, as `fnn-tui sweep NAME` would."""
    made = CliRunner().invoke(cli_app, ["--home", str(home), "sweep", "8", "--set", "lr=0.001,0.1", "--seeds", "1",
                                        "--epochs", "1", "--samples", "200", "--name", "tiny"])
    assert made.exit_code == 0, made.output
    from fnn_tui.store.sweeps import get_sweep, save_sweep

    with Store(home) as store:  # seed 1 added, not trained
        record = get_sweep(store, "tiny")
        save_sweep(store, name="tiny", preset=record.preset, base_toml=record.base_toml, grid=record.grid, seeds=[0, 1])
    app = FnnApp(home=home, device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("w")
        await _until(pilot, lambda: isinstance(app.screen, SweepsScreen))
        table = app.screen.query_one("#sweeps-table", DataTable)
        await _until(pilot, lambda: table.row_count == 1)
        assert [str(c) for c in table.get_row("tiny")][-1] == "2/4"
        await pilot.press("r")
        await _until(pilot, lambda: not isinstance(app.screen, SweepsScreen))
        await _until(pilot, lambda: app.runs.followed is not None)
        await app.workers.wait_for_complete()
        await _until(pilot, lambda: not app.runs.busy)
        with Store(home) as store:
            runs = store.list_runs()
        assert len(runs) == 4 and sorted(r.seed for r in runs) == [0, 0, 1, 1]
        assert {r.status.value for r in runs} == {"finished"}
        await pilot.press("w")
        await _until(pilot, lambda: isinstance(app.screen, SweepsScreen))
        table = app.screen.query_one("#sweeps-table", DataTable)
        await _until(pilot, lambda: table.row_count == 1 and str(table.get_row("tiny")[-1]) == "4/4")
