"""The app's comparison of two presets (``x``) at 80x24 with the keys alone, on tiny real
runs: what `fnn-tui compare A B` prints, and saved as it writes it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fnn_tui.cli import app as cli_app
from fnn_tui.core.catalog import Catalog
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.record import record_run
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.screens.compare import CompareScreen
from fnn_tui.tui.screens.dialogs import HelpScreen, SaveScreen

from .helpers import without_provenance

SIZE = (80, 24)


async def _until(pilot, condition, tries: int = 1200) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition never came true")


async def test_x_compares_the_marked_preset_with_the_highlighted_one(home: Path, catalog: Catalog,
                                                                    tmp_path: Path) -> None:
    for name in ("exp10", "exp11"):
        for seed in range(3):
            record_run(home, catalog.get(name).with_overrides(epochs=6, samples=120, seed=seed),
                       RunOptions(engine="fused"))
    cli = CliRunner().invoke(cli_app, ["--home", str(home), "compare", "10", "11"])
    assert cli.exit_code == 0, cli.output
    app = FnnApp(home=home, preset="exp10")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("x")  # nothing marked: said, nothing opens
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        assert any("Mark two presets" in n.message for n in app._notifications)
        await pilot.press("space", "down", "x")  # exp10 marked, exp11 highlighted
        await _until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.text is not None)
        screen = app.screen
        assert (screen.a, screen.b) == ("exp10", "exp11")
        assert screen.text == without_provenance(cli.stdout).lstrip("\n")  # the command's numbers, all of them
        assert "P(A better than B)" in screen.text and "| runs counted (finished + diverged) | 3 | 3 |" in screen.text
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and "Compare" in str(app.screen.query_one(".title").render())
        await pilot.press("escape")
        # ctrl+s writes it as `compare 10 11 -o FILE` does
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveScreen) and app.screen.query_one("#path").value.startswith(
            "fnn-compare-exp10-exp11-")
        target = tmp_path / "cmp.md"
        app.screen.query_one("#path").value = str(target)
        await pilot.press("enter")
        await _until(pilot, target.exists)
        await _until(pilot, lambda: app.screen is screen)
        saved = target.read_text()
        assert 'command: "fnn-tui app: ctrl+s (the comparison of exp10 and exp11)"' in saved.split("\n---\n")[0]
        assert without_provenance(saved) == without_provenance(cli.stdout)
        await pilot.press("escape")
        await _until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        # a preset with no run: the view says which, and how to get some
        await pilot.press("up", "up", "x")  # exp10 marked, exp09 highlighted (never run)
        await _until(pilot, lambda: isinstance(app.screen, CompareScreen))
        note = app.screen.query_one("#compare-note")
        await _until(pilot, lambda: "No finished or diverged run of exp09" in str(note.render()))
        assert app.screen.text is None
