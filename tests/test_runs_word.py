"""Issue 26: a study counts each seed once; runs can be excluded, tagged, noted, filtered and
seen in detail; saved outputs say how they were made; the device choice says its cost.
All on tiny real runs in a real store, the CLI through typer and the app at 80x24."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core.engines import engine_note
from fnn_tui.core.presets import load_preset
from fnn_tui.core.trainer import RunOptions
from fnn_tui.report.runinfo import FilterError, parse_filter
from fnn_tui.report.studies import Role, seed_roles
from fnn_tui.runs.record import record_run
from fnn_tui.store.runs import Store
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.screens.run_detail import FilterScreen, RunDetailScreen
from fnn_tui.tui.widgets.results import ResultsTable

from .conftest import FIXTURES
from .helpers import without_provenance

runner = CliRunner()
FUSED = RunOptions(engine="fused")
SIZE = (80, 24)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _report(*args: str) -> dict:
    result = invoke("report", "-f", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _exp08(doc: dict) -> dict:
    return next(p for p in doc["presets"] if p["preset"] == "exp08")


@pytest.fixture
def twice(home: Path, tiny08) -> dict[str, int]:
    """exp08 (tiny) seeds 0 and 1, then seed 0 trained again with the same settings."""
    first = record_run(home, tiny08.with_overrides(seed=0), FUSED).run_id
    other = record_run(home, tiny08.with_overrides(seed=1), FUSED).run_id
    again = record_run(home, tiny08.with_overrides(seed=0), FUSED).run_id
    return {"first": first, "other": other, "again": again}


def test_a_seed_trained_twice_counts_once_in_the_report(twice: dict[str, int], home: Path) -> None:
    doc = _report("8")
    exp08 = _exp08(doc)
    assert exp08["counts"]["finished"] == 2 and exp08["counts"]["duplicates"] == 1
    # the newest finished run of seed 0 is the one counted; the older is a duplicate of it
    assert sorted(r["run_id"] for r in exp08["runs"]) == [twice["other"], twice["again"]]
    assert exp08["duplicates"] == [{"run_id": twice["first"], "seed": 0, "counted": twice["again"]}]
    md = without_provenance(invoke("report", "8", "-f", "md").stdout)
    row = next(line for line in md.splitlines() if line.startswith("| 8 |"))
    assert "| 2/0/0 |" in row
    assert f"1 duplicate: run {twice['first']} (seed 0, run {twice['again']} counted)" in md
    # the terminal's report says it too, under its table
    terminal = " ".join(invoke("report", "8").stdout.split())
    assert (f"Not counted (each seed counts once; excluded runs never): exp08: 1 duplicate: run {twice['first']} "
            f"(seed 0, run {twice['again']} counted)." in terminal), terminal
    # the figure's study and the runs list follow the same rule
    from fnn_tui.report.plotstore import plot_for_preset

    with Store(home) as store:
        data = plot_for_preset(store, "exp08")
        roles = seed_roles(store.list_runs())
    assert sorted(r.run_id for r in data.runs) == [twice["other"], twice["again"]]
    assert roles[twice["first"]].role is Role.DUPLICATE and roles[twice["first"]].counted == twice["again"]
    listed = invoke("runs", "list", "8").stdout
    lines = listed.splitlines()
    first_row = next(i for i, line in enumerate(lines) if line.split()[:2] == [str(twice["first"]), "exp08"])
    assert "duplicate" in lines[first_row + 1].split()  # under its status (its settings under its name)
    assert max(len(line) for line in lines) <= 80


def test_exclude_and_include_change_the_report_and_back(twice: dict[str, int]) -> None:
    before = _exp08(_report("8"))
    other = twice["other"]
    result = invoke("runs", "exclude", str(other))
    assert result.exit_code == 0 and "excluded" in result.stderr
    during = _exp08(_report("8"))
    assert during["counts"]["finished"] == 1 and during["excluded"] == [other]
    assert [r["run_id"] for r in during["runs"]] == [twice["again"]]
    assert during["metrics"]["train_loss"]["all"] != before["metrics"]["train_loss"]["all"]
    listed = invoke("runs").stdout.splitlines()
    row = next(i for i, line in enumerate(listed) if line.split()[:1] == [str(other)])
    assert "excluded" in listed[row + 1].split()  # kept in the runs list, said so
    assert invoke("runs", "include", str(other)).exit_code == 0
    assert _exp08(_report("8")) == before
    # a wrong id is one line and exit 2, and changes nothing
    bad = runner.invoke(app, ["runs", "exclude", str(other), "999"])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "999" in bad.stderr
    assert _exp08(_report("8")) == before


def test_tags_notes_filters_and_the_run_detail(twice: dict[str, int], home: Path) -> None:
    assert invoke("runs", "tag", str(twice["other"]), "trial").exit_code == 0
    assert invoke("runs", "note", str(twice["other"]), "the second seed").exit_code == 0
    bad = runner.invoke(app, ["runs", "tag", "1", "no spaces"])
    assert bad.exit_code == 2 and "tag" in bad.stderr
    tagged = invoke("runs", "list", "--tag", "trial").stdout
    ids = [line.split()[0] for line in tagged.splitlines() if line.split()[1:2] == ["exp08"]]
    assert ids == [str(twice["other"])]
    assert "no runs" in invoke("runs", "list", "--dead").stderr  # none of these died
    finished = invoke("runs", "list", "--status", "finished", "--alive").stdout
    assert sum(1 for line in finished.splitlines() if " exp08 " in line) == 3
    bad = runner.invoke(app, ["runs", "list", "--status", "done"])
    assert bad.exit_code == 2 and "finished" in bad.stderr
    shown = invoke("runs", "show", str(twice["other"])).stdout
    assert "trial" in shown and "the second seed" in shown and "counted in its study" in shown
    assert "300 samples" in shown and "finished after 3 of 3 epochs" in shown
    shown = invoke("runs", "show", str(twice["first"])).stdout
    assert f"run {twice['again']} has the same settings and seed" in shown
    assert runner.invoke(app, ["runs", "show", "999"]).exit_code == 2
    assert invoke("results").exit_code == 0  # the old name still lists, hidden
    names = [line.split()[1] for line in invoke("--help").stdout.splitlines() if line.startswith("│ ") and line.split()[1:]]
    assert "runs" in names and "active" in names and "results" not in names


def test_why_a_run_diverged_or_died_is_shown(home: Path) -> None:
    diverged = record_run(home, load_preset(FIXTURES / "diverges.toml"), FUSED).run_id
    dead = record_run(home, load_preset(FIXTURES / "dies.toml"), FUSED).run_id
    shown = " ".join(invoke("runs", "show", str(diverged)).stdout.split())
    assert "why diverged at epoch" in shown and "NaN or infinite" in shown and "Rule: diverged:" in shown
    shown = " ".join(invoke("runs", "show", str(dead)).stdout.split())
    assert "why dead" in shown and "Rule: dead: the std of ŷ" in shown and "last train loss" in shown


def test_provenance_in_every_format(twice: dict[str, int], tmp_path: Path) -> None:
    # the trial runs of `twice` are no study of exp08's own settings: the results table lists them
    # with --all-runs; `compare 8 8` sets that study against itself
    for command in ("report", "table --all-runs", "compare 8 8"):
        md = invoke(*command.split(), "-f", "md").stdout
        front = md.split("---\n")[1]
        assert md.startswith("---\n") and 'fnn_tui: "0.' in front and "torch:" in front and "python:" in front
        assert 'device: "cpu"' in front and 'engine: "fused"' in front and f'command: "fnn-tui {command} -f md"' in front
        text = invoke(*command.split(), "-f", "csv").stdout
        first = text.splitlines()[0]
        assert first.startswith("# made ") and "fnn-tui 0." in first and "runs on cpu, engine fused" in first
        assert list(csv.DictReader(io.StringIO(text), restkey="extra")) and \
            list(csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#")))
        doc = json.loads(invoke(*command.split(), "-f", "json").stdout)
        assert set(doc["provenance"]) == {"made", "fnn_tui", "torch", "python", "device", "engine", "command"}
        assert doc["provenance"]["command"] == f"fnn-tui {command} -f json"
    figure = tmp_path / "f.svg"
    assert invoke("plot", "8", "-o", str(figure)).exit_code == 0
    svg = figure.read_text()
    assert "made " in svg and "fnn-tui 0." in svg and "engine fused" in svg


def test_a_device_choice_says_its_engine_and_cost(home: Path) -> None:
    note = engine_note("torch", device="cuda:0", activation="relu", loss="mse")
    assert note.warn and "PyTorch engine" in note.text and "slower per seed" in note.text and "--device cpu" in note.text
    assert not engine_note("fused", device="cpu", activation="relu", loss="mse").warn
    result = runner.invoke(app, ["run", "8", "--engine", "torch", "--epochs", "1", "--samples", "200"])
    assert result.exit_code == 0
    first = result.stderr.splitlines()[0]
    assert first.startswith("warning: cpu trains with the PyTorch engine") and "slower per seed" in first
    quiet = runner.invoke(app, ["run", "8", "--epochs", "1", "--samples", "200"])
    assert "warning" not in quiet.stderr


def test_a_filter_reads_words_and_refuses_others() -> None:
    f = parse_filter("status:finished,diverged dead tag:trial preset:exp08")
    assert [s.value for s in f.statuses] == ["finished", "diverged"] and f.dead and f.tag == "trial"
    assert parse_filter("").empty
    with pytest.raises(FilterError):
        parse_filter("colour:red")


async def _until(pilot, condition, tries: int = 1200) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition never came true")


async def test_the_app_shows_a_run_in_detail_filters_and_dims_excluded_runs(twice: dict[str, int], home: Path) -> None:
    with Store(home) as store:
        store.set_excluded([twice["other"]], True)
    app = FnnApp(home=home, preset="exp08")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        # choosing the torch engine says what it costs before any run
        from textual.widgets import Label, Select

        app.query_one("#engine", Select).value = "torch"
        await pilot.pause()
        note = app.query_one("#engine-note", Label)
        assert note.display and "PyTorch engine" in str(note.render()) and "slower" in str(note.render())
        app.query_one("#engine", Select).value = "auto"
        await pilot.pause()
        assert not note.display
        await pilot.press("t")
        table = app.query_one(ResultsTable)
        await _until(pilot, lambda: table.row_count == 3)
        status = {int(str(key.value)): table.get_cell(key, "status").plain for key in table.rows}
        assert status[twice["other"]] == "finished, excluded" and status[twice["first"]] == "finished, duplicate"
        excluded = table.get_cell(str(twice["other"]), "run")
        assert "dim" in str(excluded.spans[0].style) if excluded.spans else "dim" in str(excluded.style)
        # the detail of the highlighted run, readable at 80x24
        table.move_cursor(row=table.get_row_index(str(twice["first"])))
        await pilot.press("i")
        await _until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.detail is not None)
        screen = app.screen
        assert screen.detail.title.startswith(f"Run {twice['first']}: exp08, seed 0")
        shot = app.export_screenshot().replace("&#160;", " ")
        assert "duplicate:" in shot and "has the same settings" in shot  # on the screen, not only in the data
        keys = [k for k, _ in screen.detail.rows]
        assert keys[0] == "study" and "end" in keys and "setting" in keys
        assert screen.query_one("#detail-box").region.width <= 80 and screen.query_one("#detail-box").region.height <= 24
        await pilot.press("escape")
        assert not isinstance(app.screen, RunDetailScreen)
        # the filter: only excluded runs, then every run again
        await pilot.press("f")
        assert isinstance(app.screen, FilterScreen)
        app.screen.query_one("#filter").value = "excluded"
        await pilot.press("enter")
        await _until(pilot, lambda: table.row_count == 1)
        assert str(table.coordinate_to_cell_key((0, 0)).row_key.value) == str(twice["other"])
        assert "filter: excluded" in str(app.query_one("#results-hint", Label).render())
        await pilot.press("f")
        app.screen.query_one("#filter").value = "status:nonsense"
        await pilot.press("enter")
        assert isinstance(app.screen, FilterScreen) and "unknown status" in str(app.screen.query_one("#error").render())
        app.screen.query_one("#filter").value = ""
        await pilot.press("enter")
        await _until(pilot, lambda: table.row_count == 3)


def test_a_repeat_made_on_purpose_is_stored_as_one(home: Path, tiny08) -> None:
    first = record_run(home, tiny08, FUSED).run_id
    with Store(home) as store:
        again = store.create_run(tiny08, engine="fused", device="cpu", repeat_of=first)
        store.end_run(again, "cancelled")
        later = record_run(home, tiny08, FUSED).run_id
        store.mark_repeat(later, first)
        same = store.seed_runs(tiny08.study_digest(), tiny08.data.seed)
        assert [r.id for r in same] == [later, again, first]
        assert [r.repeat_of for r in same] == [first, first, None]
        roles = seed_roles(same)
    # the newest finished run of the seed counts; the older finished one and the cancelled repeat do not
    assert roles[later].role is Role.COUNTED
    assert roles[first].role is Role.DUPLICATE and roles[again].role is Role.DUPLICATE
    shown = " ".join(invoke("runs", "show", str(later)).stdout.split())
    assert f"repeat of run {first} (trained again on purpose)" in shown


async def test_the_app_report_says_what_it_does_not_count(twice: dict[str, int], home: Path) -> None:
    from textual.widgets import Label

    from fnn_tui.tui.widgets.report import ReportTable

    app = FnnApp(home=home, preset="exp08")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: not app.runs.checking)
        await pilot.press("t", "b")
        report = app.query_one(ReportTable)
        await _until(pilot, lambda: "exp08" in report.reports)
        assert report.reports["exp08"].finished == 2  # seed 0 twice counts once
        report.move_cursor(row=report.get_row_index("exp08"))
        await pilot.pause()
        hint = str(app.query_one("#results-hint", Label).render())
        assert "exp08*" in hint and hint.endswith("not counted: 1 duplicate")
