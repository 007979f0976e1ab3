"""The app's conclusions view (``c``) at 80x24 on tiny real runs."""

from __future__ import annotations

from pathlib import Path

from fnn_tui.core.catalog import Catalog
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.record import record_run
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.screens.claims import ClaimsScreen

SIZE = (80, 24)


async def _until(pilot, condition, tries: int = 1200) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition never came true")


async def test_the_claims_view_shows_eight_verdicts_and_the_highlighted_ones_text(home: Path, catalog: Catalog) -> None:
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
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ClaimsScreen)
