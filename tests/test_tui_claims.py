"""The app's conclusions view (``c``) at 80x24 on tiny real runs."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fnn_tui.cli import app as cli_app
from fnn_tui.core.catalog import Catalog
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.record import record_run
from fnn_tui.store.runs import Store
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.screens.claims import ClaimsScreen
from fnn_tui.tui.screens.dialogs import HelpScreen, SaveScreen

SIZE = (80, 24)


async def _until(pilot, condition, tries: int = 1200) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition never came true")


async def test_the_claims_view_shows_eight_verdicts_and_the_highlighted_ones_text(home: Path, catalog: Catalog,
                                                                                  tmp_path: Path) -> None:
    for name in ("exp10", "exp11"):  # conclusion 6's rows, two tiny seeds each
        preset = catalog.get(name).with_overrides(epochs=6, samples=120)
        for seed in range(2):
            record_run(home, preset.with_overrides(seed=seed), RunOptions(engine="fused"))
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("c")
        await _until(pilot, lambda: isinstance(app.screen, ClaimsScreen) and bool(app.screen.results))
        screen = app.screen
        assert isinstance(screen, ClaimsScreen)
        assert screen.table.row_count == 8
        rows = [screen.table.get_row_at(i) for i in range(8)]
        decay = next(r for r in rows if r[1] == "decay-settles")
        assert decay[4] == "2/2" and decay[3] == "—"  # rows 10 and 11 differ in the decay only
        assert next(r for r in rows if r[1] == "wider-not-deeper")[2] == "not run"
        note = str(screen.query_one("#claims-note").render())
        assert "exp10: samples=120, epochs=6" in note
        await pilot.press("down")  # conclusion 2: its sentence below the table
        await pilot.pause()
        assert "训练初期宁可把学习率设小点" in str(screen.detail.render())
        for _ in range(4):
            await pilot.press("down")
        await pilot.pause()
        detail = str(screen.detail.render())
        assert "notes' rows (exp11 vs exp10)" in detail and "n = 2/2" in detail
        # ? is this view's help; the lab's keys do not act unseen under it
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and "conclusions" in str(app.screen.query_one(".title").render())
        await pilot.press("r", "t")  # under the help: neither runs nor switches the view below
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("t", "space")  # the lab's keys do not act under it either
        await pilot.pause(0.3)
        assert app.screen is screen and app.runs.followed is None and not app.runs.busy
        assert app.query_one("#views").current == "lab"
        with Store(home) as store:
            assert len(store.list_runs()) == 4  # nothing new was queued
        # ctrl+s saves the verdicts as shown: the section that ends `fnn-tui report -f md`
        target = tmp_path / "claims.md"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveScreen)
        assert [str(b.label) for b in app.screen.query("RadioButton")] == ["Markdown ✓", "JSON"]
        app.screen.query_one("#path").value = str(tmp_path / "claims.csv")
        await pilot.press("enter")  # a format the verdicts have not: said in the dialog
        await pilot.pause()
        assert "Markdown or JSON" in str(app.screen.query_one("#error").render())
        app.screen.query_one("#path").value = str(target)
        await pilot.press("enter")
        await _until(pilot, target.exists)
        await _until(pilot, lambda: app.screen is screen)
        head, body = target.read_text().split("\n---\n\n", 1)
        assert 'command: "fnn-tui app: ctrl+s (the notes\' conclusions)"' in head
        report = CliRunner().invoke(cli_app, ["--home", str(home), "report", "-f", "md"])
        assert report.exit_code == 0, report.output
        assert body.startswith("## Does the notes' reasoning hold?") and body in report.stdout
        assert "| 6 | decay-settles |" in body and "exp10: samples=120, epochs=6" in body
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ClaimsScreen)


async def test_r_in_the_claims_view_trains_what_the_highlighted_conclusion_is_missing(home: Path,
                                                                                     catalog: Catalog) -> None:
    """The view trained nothing (only `fnn-tui claims` did): r now trains the highlighted
    conclusion's studies over the lab's seeds, as judged (the stored rows' settings), and c
    again shows the verdicts on the new runs."""
    tiny = {"epochs": 6, "samples": 120}
    for name in ("exp10", "exp11"):  # conclusion 6's rows, seeds 0 and 1
        for seed in range(2):
            record_run(home, catalog.get(name).with_overrides(**tiny, seed=seed), RunOptions(engine="fused"))
    app = FnnApp(home=home, device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        app.query_one("#seeds").value = "0-2"
        await pilot.press("c")
        await _until(pilot, lambda: isinstance(app.screen, ClaimsScreen) and bool(app.screen.results))
        for _ in range(5):  # conclusion 6, decay-settles
            await pilot.press("down")
        await pilot.pause()
        assert "exp11 vs exp10" in str(app.screen.detail.render())
        await pilot.press("r")
        await _until(pilot, lambda: not isinstance(app.screen, ClaimsScreen))
        await _until(pilot, lambda: app.runs.followed is not None)
        await _until(pilot, lambda: not app.runs.busy)
        await app.workers.wait_for_complete()
        with Store(home) as store:
            runs = store.list_runs()
            new = sorted((r.preset, r.seed, r.epochs_done, r.status) for r in runs if r.seed == 2)
        # seeds 0 and 1 were done: only seed 2 of each row trained, with the rows' stored settings
        assert len(runs) == 6 and new == [("exp10", 2, 6, "finished"), ("exp11", 2, 6, "finished")]
        await pilot.press("c")
        await _until(pilot, lambda: isinstance(app.screen, ClaimsScreen) and bool(app.screen.results))
        screen = app.screen
        # it opens again on the conclusion trained, its verdict now over three seeds a side
        assert screen.table.cursor_row == 5 and screen.table.get_row_at(5)[1] == "decay-settles"
        assert screen.table.get_row_at(5)[4] == "3/3" and "n = 3/3" in str(screen.detail.render())


def test_a_in_the_claims_view_trains_the_studies_of_fnn_tui_claims(home: Path, catalog: Catalog) -> None:
    """The view's a (every conclusion) hands the app the studies `fnn-tui claims` trains."""
    from fnn_tui.report.claims import load_conclusions
    from fnn_tui.report.verdicts import claim_sides, presets_to_train
    from fnn_tui.tui.screens.claims import judge_home, studies_of

    results, _ = judge_home(home, catalog)
    ours = [p.study_digest() for p in studies_of(results)]
    cli = [p.study_digest() for p in presets_to_train(claim_sides(load_conclusions(), catalog))]
    assert ours == cli and len(ours) == len(set(ours)) > 11  # the eleven rows and the controlled variants
