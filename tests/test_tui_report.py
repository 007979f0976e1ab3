"""The app's seeds field and its report (the runs view's by-preset mode), at 80x24 on tiny real runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fnn_tui.core.catalog import discover
from fnn_tui.core.presets import load_preset
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.record import record_run
from fnn_tui.store.runs import Store
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.messages import ResultsLoaded
from fnn_tui.tui.widgets.preset_list import PresetList
from fnn_tui.tui.widgets.report import COLUMNS, ReportTable, verdict_word

from .conftest import FIXTURES
from .helpers import screen_lines

SIZE = (80, 24)


async def _until(pilot, condition, tries: int = 1200) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition never came true")


async def _wait_for_runs_to_end(pilot) -> None:
    await _until(pilot, lambda: pilot.app.runs.followed is not None)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def _type(pilot, selector: str, text: str) -> None:
    pilot.app.screen.query_one(selector).value = text
    await pilot.pause()


async def test_seeds_field_trains_every_seed_once_and_the_report_fills_in(home: Path, tmp_path: Path) -> None:
    loaded: list[ResultsLoaded] = []
    app = FnnApp(home=home, preset="exp07")
    async with app.run_test(size=SIZE, message_hook=lambda m: isinstance(m, ResultsLoaded) and loaded.append(m)) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        assert app.query_one(PresetList).entry.name == "exp07"
        await _type(pilot, "#epochs", "1")
        await _type(pilot, "#seeds", "2")
        await pilot.press("r")
        await _wait_for_runs_to_end(pilot)
        with Store(home) as store:
            runs = store.list_runs()
        assert sorted(r.seed for r in runs) == [0, 1] and all(r.status == "finished" for r in runs)
        assert len({r.study for r in runs}) == 1
        # the live view and the notices: one line for the queue, not one notice a seed
        assert str(app.live.status.render()) == "2 runs: 2 finished"
        queue = app.live.query_one("#queue-progress")
        assert (queue.progress, queue.total) == (2, 2)  # runs ended, of the queue's
        assert "2 runs: 2 finished (exp07, seeds 0,1)" in [line.text for line in app.live.log.lines]
        said = [str(n.message) for n in app._notifications]
        assert said.count("2 runs: 2 finished (exp07, seeds 0,1)") == 1
        assert not any(m.startswith("exp07 seed") for m in said), said
        # the report is reloaded as each run starts and ends (how many seeds each load finds
        # depends on how far the background process got: it only grows)
        await _until(pilot, lambda: app.results_shown == app.results_asked)
        counts = [next(r.finished for r in m.reports if r.name == "exp07") for m in loaded if m.reports is not None]
        assert len(counts) >= 1 + 2 * 2 and counts == sorted(counts) and counts[0] == 0 and counts[-1] == 2
        # the same request again trains nothing and says why
        await pilot.press("r")
        await _until(pilot, lambda: any("2 seeds done" in str(n.message) for n in app._notifications))
        await _until(pilot, lambda: app.runs.followed is None)
        with Store(home) as store:
            assert len(store.list_runs()) == 2
        # the by-preset view: one row per preset, n and the verdict word in the cell
        await pilot.press("t", "b")
        await pilot.pause()
        table = app.query_one(ReportTable)
        assert table.has_focus and app.results_mode == "report"
        assert "b runs list" in str(app.query_one("#results-hint").render())
        await _until(pilot, lambda: table.row_count == 11 and table.reports["exp07"].finished == 2)
        cells = table.get_row("exp07")
        assert cells[0] == "exp07*" and cells[1].plain == "n 2\n0 dead\n0 div"
        # three lines a metric: our median, the notes' number, the verdict in words
        median, notes, verdict = cells[[k for k, _ in COLUMNS].index("train_ratio")].plain.split("\n")
        summary = table.reports["exp07"].metric("train_ratio")
        assert median == f"{summary.all.median:.4g}" and notes == "1.034"
        assert verdict == verdict_word(summary) and verdict.split()[-1] in {"within", "below", "above"}
        assert table.get_row("exp08")[3].plain == "—\n0.00296\nno runs"
        # the starred row says which settings its runs stand on, and the spread its cells leave out
        await pilot.press(*["down"] * 6)
        await pilot.pause(0.3)
        hint = str(app.query_one("#results-hint").render())
        assert "exp07*: runs made with epochs=1" in hint and "min–max (loss, ratio): train " in hint
        # every column shows at 80x24: the test ratio's verdict too
        lines = screen_lines(app.export_screenshot())
        header = next(line for line in lines if "train loss" in line)
        assert "test ratio" in header and len(header.rstrip()) <= 80
        assert all(len(line) <= 80 for line in lines) and "test " in hint.splitlines()[-1]
        at = next(i for i, line in enumerate(lines) if line.startswith(" exp07*  "))
        assert lines[at + 2].split()[-1] in {"within", "below", "above"}  # the test ratio's verdict shows
        # Save here writes the report
        target = tmp_path / "report.json"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Save the report" in str(app.screen.query_one(".title").render())
        await _type(pilot, "#path", str(target))
        await pilot.press("enter")
        await _until(pilot, target.exists)
        doc = json.loads(target.read_text())
        (exp07,) = [p for p in doc["presets"] if p["preset"] == "exp07"]
        assert sorted(r["seed"] for r in exp07["runs"]) == [0, 1]
        # b again: the runs list, whose Save writes the results table
        await pilot.press("b")
        await pilot.pause()
        assert app.results_mode == "results"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Save the runs list" in str(app.screen.query_one(".title").render())
        await pilot.press("escape")


async def test_bad_seeds_are_a_notice_and_nothing_runs(home: Path) -> None:
    app = FnnApp(home=home, preset="exp07")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        for seeds, seed, says in (("9-3", "", "runs backwards"), ("2", "5", "not both")):
            await _type(pilot, "#seeds", seeds)
            await _type(pilot, "#seed", seed)
            await pilot.press("r")
            await _until(pilot, lambda says=says: any(says in str(n.message) for n in app._notifications))
        assert app.runs.followed is None
    assert not list(home.glob("runs/*"))


async def test_a_study_that_all_diverged_says_so_not_no_runs(home: Path) -> None:
    """Row 4's large learning rate diverges every seed: the cells say "all diverged", as the
    CLI's report does, not "no runs" (there are runs; none has numbers)."""
    for seed in (0, 1):
        record_run(home, discover().get("exp04").with_overrides(seed=seed, samples=200, epochs=2),
                   RunOptions(engine="fused"))
    with Store(home) as store:
        assert [r.status for r in store.list_runs()] == ["diverged", "diverged"]
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("t", "b")
        table = app.query_one(ReportTable)
        await _until(pilot, lambda: "exp04" in table.reports and table.reports["exp04"].diverged == 2)
        ratio = [k for k, _ in COLUMNS].index("train_ratio")
        cells = table.get_row("exp04")
        assert cells[1].plain == "n 0\n0 dead\n2 div"
        assert cells[ratio].plain == "—\n15.x\nall diverged"
        assert table.get_row("exp05")[ratio].plain == "—\n1.03\nno runs"  # no run at all
        await pilot.pause(0.2)
        lines = screen_lines(app.export_screenshot())
        at = next(i for i, line in enumerate(lines) if line.startswith(" exp04"))
        assert "all diverged" in lines[at + 2] and len(lines[at + 2].rstrip()) <= 80
    # a third seed stopped before its first step: not every run diverged, none finished
    stop = StopRequest()
    stop.set(RunStatus.INTERRUPTED)
    record_run(home, discover().get("exp04").with_overrides(seed=2, samples=200, epochs=2), RunOptions(engine="fused"),
               stop_event=stop)
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("t", "b")
        table = app.query_one(ReportTable)
        await _until(pilot, lambda: "exp04" in table.reports and table.reports["exp04"].other == 1)
        cells = table.get_row("exp04")
        assert cells[1].plain == "n 0+1\n0 dead\n2 div"
        assert cells[[k for k, _ in COLUMNS].index("train_ratio")].plain == "—\n15.x\nnone finished"


def test_report_view_snapshot(snap_compare, home: Path) -> None:
    # runs whose cells do not hang on the last bits of a float (a picture made on one CPU
    # must match on another): a diverged study; the other presets have no runs
    preset = load_preset(FIXTURES / "diverges.toml")
    for seed in (0, 1):
        record_run(home, preset.with_overrides(seed=seed), RunOptions(engine="fused"))
    assert len(discover([FIXTURES], include_user=False).valid()) == 13

    async def open_report(pilot) -> None:
        await _until(pilot, lambda: not pilot.app.runs.checking)
        await pilot.press("t", "b")
        await _until(pilot, lambda: pilot.app.query_one(ReportTable).row_count == 13)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    app = FnnApp(home=home, preset_dirs=[FIXTURES])
    assert snap_compare(app, terminal_size=SIZE, run_before=open_report)


async def test_a_queue_that_diverges_tells_its_first_divergence_at_once_and_the_rest_once(home: Path,
                                                                                        tmp_path: Path) -> None:
    """Row 4 on 200 samples diverges every seed: one notice for the first seed to diverge,
    one for the queue when it ends (not one a seed), the status line in the worst colour."""
    presets = tmp_path / "presets"
    presets.mkdir()
    text = Path(discover().get("exp04").source).read_text()
    (presets / "small04.toml").write_text(re.sub(r"(?m)^samples = .*$", "samples = 200", text))
    app = FnnApp(home=home, preset_dirs=[presets], preset="small04")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await _type(pilot, "#epochs", "2")
        await _type(pilot, "#seeds", "2")
        await pilot.press("r")
        await _wait_for_runs_to_end(pilot)
        await _until(pilot, lambda: app.runs.followed is None)
        with Store(home) as store:
            assert sorted((r.seed, r.status) for r in store.list_runs()) == [(0, "diverged"), (1, "diverged")]
        said = [str(n.message) for n in app._notifications]
        assert len([m for m in said if m.startswith("small04 seed") and " diverged: " in m]) == 1, said
        assert said.count("2 runs: 2 diverged (small04, seeds 0,1)") == 1, said
        assert str(app.live.status.render()) == "2 runs: 2 diverged"
