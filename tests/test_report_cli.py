"""`fnn-tui report`, and the dead flag and the word "notes" in every table, on real runs."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core.presets import load_preset
from fnn_tui.core.trainer import RunOptions
from fnn_tui.report.export import COLUMNS, ResultRow
from fnn_tui.runs.record import record_run
from fnn_tui.store.runs import Store

from .conftest import FIXTURES
from .helpers import without_provenance

runner = CliRunner()
FUSED = RunOptions(engine="fused")


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def studies(home: Path, catalog) -> dict[str, list[int]]:
    """exp07 over seeds 0-2 (tiny), the dying preset over seeds 0-1, the diverging one once."""
    ids: dict[str, list[int]] = {}
    tiny07 = catalog.get("exp07").with_overrides(samples=200, epochs=1)
    dies = load_preset(FIXTURES / "dies.toml")
    diverges = load_preset(FIXTURES / "diverges.toml")
    for preset, seeds in ((tiny07, (0, 1, 2)), (dies, (0, 1)), (diverges, (0,))):
        for seed in seeds:
            ids.setdefault(preset.name, []).append(record_run(home, preset.with_overrides(seed=seed), FUSED).run_id)
    return ids


def _md_row(text: str, preset: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("| ") and f"| {preset}" in line)
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_report_md_has_one_row_per_preset_with_spread_counts_and_verdict(studies, home: Path) -> None:
    result = invoke("--presets", str(FIXTURES), "report", "--format", "md")
    assert result.exit_code == 0, result.output
    md = without_provenance(result.stdout)
    header = [c.strip() for c in md.splitlines()[0].strip("|").split(" | ")]
    assert header[:4] == ["#", "preset", "setting", "runs n/dead/div"]
    # every catalog preset has a row, run or not: exp01..exp11 and the two fixtures
    table = md.split("\n\n")[0].splitlines()
    assert len(table) == 2 + 13
    with Store(home) as store:
        runs07 = [store.get_run(i) for i in studies["exp07"]]
    losses = sorted(r.final.train_loss for r in runs07)
    row07 = _md_row(md, "exp07")
    assert row07[3] == "3/0/0"
    assert row07[4] == f"{losses[1]:.4g} ({losses[0]:.4g}–{losses[2]:.4g})"
    ratios = sorted(r.final.train_ratio for r in runs07)
    verdict = "within" if ratios[0] <= 1.034 <= ratios[-1] else ("below" if 1.034 < ratios[0] else "above")
    assert row07[7].startswith("1.034 (") and verdict in row07[7]
    # the study stands on other settings than the preset file's: said under the table
    assert row07[1] == "exp07*" and "exp07: samples=200, epochs=1" in md
    assert _md_row(md, "dies")[3] == "2/2/0"  # both seeds finished, both dead
    assert _md_row(md, "diverges")[3] == "0/0/1"
    assert _md_row(md, "exp08")[3] == "0/0/0" and "0.00296 (no runs)" in _md_row(md, "exp08")


def test_report_json_carries_every_run_and_filters_by_number(studies, home: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    result = invoke("report", "7", "dies", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"to {target}" in result.stderr
    doc = json.loads(target.read_text())
    assert [p["preset"] for p in doc["presets"]] == ["exp07", "dies"]
    with Store(home) as store:
        for entry in doc["presets"]:
            assert sorted(r["run_id"] for r in entry["runs"]) == sorted(studies[entry["preset"]])
            for run in entry["runs"]:
                stored = store.get_run(run["run_id"])
                assert run["seed"] == stored.seed and run["dead"] == stored.final.dead
                assert run["train_loss"] == stored.final.train_loss and run["test_ratio"] == stored.final.test_ratio
    assert doc["presets"][1]["counts"] == {"finished": 2, "dead": 2, "diverged": 0, "other": 0, "duplicates": 0,
                                           "excluded": 0}
    # csv from the suffix, one row per preset; a number that is no preset is one line, exit 2
    csv_path = tmp_path / "r.csv"
    assert invoke("report", "exp07", "-o", str(csv_path)).exit_code == 0
    (row,) = list(csv.DictReader(io.StringIO(without_provenance(csv_path.read_text()))))
    assert row["preset"] == "exp07" and row["finished"] == "3"
    bad = runner.invoke(app, ["report", "77"])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "'77'" in bad.stderr
    bad = runner.invoke(app, ["report", "-f", "xml"])
    assert bad.exit_code == 2 and "text, md, csv or json" in bad.stderr


def test_report_output_is_written_atomically(studies, tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("the old report\n")
    # a folder that cannot be written: the error is one line and the old file is untouched
    os.chmod(tmp_path, 0o500)
    try:
        result = runner.invoke(app, ["report", "-o", str(target)])
    finally:
        os.chmod(tmp_path, 0o700)
    if os.geteuid() != 0:  # root writes anywhere
        assert result.exit_code == 2 and "cannot write" in result.stderr
        assert target.read_text() == "the old report\n"
    result = invoke("report", "-o", str(target))
    assert result.exit_code == 0
    assert without_provenance(target.read_text()).startswith("| # | preset |")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report.md")] == []  # no temp file left


def test_dead_runs_are_said_in_the_runs_list_and_the_results_table(studies, home: Path) -> None:
    listed = invoke("results")
    assert listed.exit_code == 0
    assert "Runs list" in listed.stdout
    # a dead network has "dead" under its status, on the line after its row
    lines = listed.stdout.splitlines()
    below = [lines[i + 1] for i, line in enumerate(lines) if " dies " in line]
    assert len(below) == 2 and all(line.split() == ["dead"] for line in below)
    # exp07's runs were made with overrides: their settings show under the name, no "dead"
    assert [lines[i + 1].strip() for i, line in enumerate(lines) if " exp07 " in line][-1] == "· samples=200"
    assert lines.count(lines[-1]) and sum(line.split() == ["dead"] for line in lines) == 2
    assert max(len(line) for line in lines) <= 80
    exported = invoke("--presets", str(FIXTURES), "table", "--all-runs", "-f", "csv")
    rows = {r["preset"]: r for r in csv.DictReader(io.StringIO(without_provenance(exported.stdout)))}
    assert rows["dies"]["dead"] == "True" and rows["dies"]["status"] == "finished"
    assert rows["exp07"]["dead"] == "False"
    md = invoke("table", "--all-runs", "-f", "md").stdout
    assert "| finished, dead |" in md and "| dies |" in md  # the preset's name has a column


def test_no_seed_column_means_the_notes(studies) -> None:
    """"seed" is a random seed only: the notes' numbers are "notes ..." in every header."""
    from fnn_tui.report.reproduction import render_csv, reproduction
    from fnn_tui.tui.widgets.results import COLUMNS as APP_COLUMNS

    titles = [t for _, t in COLUMNS] + [t for _, t in APP_COLUMNS]
    assert "notes train loss" in titles and "seed" in titles
    assert [t for t in titles if "seed" in t] == ["seed", "seed"]  # the run's seed, in both tables
    fields = list(ResultRow.__dataclass_fields__)
    assert [f for f in fields if "seed" in f] == ["seed"] and "notes_train_loss" in fields
    for fmt in ("md", "csv"):
        header = without_provenance(invoke("report", "-f", fmt).stdout).splitlines()[0]
        assert "seed" not in header and "notes" in header
        header = without_provenance(invoke("table", "-f", fmt).stdout).splitlines()[0]
        assert "seed train" not in header and "notes train loss".replace(" ", "_" if fmt == "csv" else " ") in header
    assert "seed" not in render_csv(reproduction([])).splitlines()[0]
    shown = invoke("show", "exp08").stdout
    assert "notes' numbers" in shown and "seed reported" not in shown


def test_report_figures_are_written_and_linked_from_the_markdown(studies, tmp_path: Path) -> None:
    out = tmp_path / "lab"
    out.mkdir()
    result = invoke("report", "7", "-o", str(out / "report.md"), "--figures", str(out / "figures"))
    assert result.exit_code == 0, result.output
    assert f"wrote 1 figure to {out / 'figures'}" in result.output  # one figure, not "1 figures"
    figure = out / "figures" / "fnn-exp07.png"
    assert figure.stat().st_size > 10_000
    from matplotlib.image import imread

    assert imread(figure).shape[:2] == (600, 1600)
    text = (out / "report.md").read_text()
    assert "![exp07](figures/fnn-exp07.png)" in text and "| exp07" in text


def test_the_results_table_is_each_presets_study_and_a_later_trial_does_not_replace_it(studies, home: Path) -> None:
    with Store(home) as store:
        dies = sorted(store.get_run(i).final.train_loss for i in studies["dies"])
    before = invoke("--presets", str(FIXTURES), "table", "-f", "csv")
    # a short trial of the dying preset, with other settings: a study of its own, not the preset's
    trial = record_run(home, load_preset(FIXTURES / "dies.toml").with_overrides(epochs=1, seed=5), FUSED)
    result = invoke("--presets", str(FIXTURES), "table", "-f", "csv")
    assert result.exit_code == 0 and without_provenance(result.stdout) == without_provenance(before.stdout)
    rows = {r["preset"]: r for r in csv.DictReader(io.StringIO(without_provenance(result.stdout)))}
    assert sorted(rows) == ["dies", "diverges"]  # exp07's runs are 1-epoch trials: left out, and said
    assert "left out exp07: its runs have other settings than the preset's (samples=200, epochs=1)" in result.stderr
    row = rows["dies"]
    assert (row["finished"], row["dead"], row["seeds"], row["runs"]) == ("2", "2", "0-1", "2")
    assert float(row["train_loss"]) == pytest.approx((dies[0] + dies[1]) / 2)  # the median of two seeds
    assert str(trial.run_id) not in row["run_ids"].split(",") and row["setting"].endswith("lr 0.05, no decay")
    assert (rows["diverges"]["finished"], rows["diverges"]["diverged"], rows["diverges"]["train_loss"]) == ("0", "1", "")
    md = invoke("--presets", str(FIXTURES), "table", "-f", "md").stdout
    assert without_provenance(md).startswith("| # | preset | setting | n |") and "median of the finished runs" in md
    # on the terminal: a rich table at 80 columns, the n beside each median, each preset's settings below
    text = runner.invoke(app, ["--presets", str(FIXTURES), "table"], env={"COLUMNS": "80"}).stdout
    assert "Results table: each preset's median over its seeds" in text and "| --- |" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    line = next(line for line in text.splitlines() if " dies " in line)
    assert line.split()[:3] == ["91", "dies", "2/2"] and f"{(dies[0] + dies[1]) / 2:.4g}" in line
    assert any(line.startswith("dies  ") and "lr 0.05" in line for line in text.splitlines())


def test_report_on_a_terminal_is_a_table_of_80_columns_with_verdicts_in_words(studies) -> None:
    result = runner.invoke(app, ["--presets", str(FIXTURES), "report"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = result.stdout
    assert "| --- |" not in text and "|---|" not in text  # no Markdown
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(" exp04"))
    block = lines[at:at + 4]
    assert all(f" {word} " in line for word, line in zip(["median", "range", "notes", "verdict"], block))
    assert "15.x" in block[2] and "no runs" in block[3]  # the notes' "15.x" is shown and compared
    at = next(i for i, line in enumerate(lines) if line.startswith(" exp07*"))
    assert lines[at + 1].split()[:2] == ["n", "3"]
    verdicts = lines[at + 3].split()[3:]  # after "0 div verdict"
    assert verdicts[0] == "—" and any(word in {"within", "below", "above"} for word in verdicts)
    assert "exp07: samples=200, epochs=1" in text and "--format md" in text
