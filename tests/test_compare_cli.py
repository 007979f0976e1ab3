"""`fnn-tui compare` and `fnn-tui claims` on real tiny runs, and the report's claims section."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.record import record_run

from .helpers import without_provenance

runner = CliRunner()
FUSED = RunOptions(engine="fused")
TINY = {"epochs": 6, "samples": 120}  # six epochs: the decay (every 5) tells the rows apart


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def rows_10_11(home: Path, catalog) -> None:
    """Rows 10 and 11 (they differ only in the decay), three tiny seeds each."""
    for name in ("exp10", "exp11"):
        preset = catalog.get(name).with_overrides(**TINY)
        for seed in range(3):
            record_run(home, preset.with_overrides(seed=seed), FUSED)


def test_compare_gives_every_statistic_of_two_stored_studies(rows_10_11, tmp_path: Path) -> None:
    result = invoke("compare", "10", "11", "--metric", "train_loss")
    assert result.exit_code == 0, result.stderr
    md = result.stdout
    assert "## exp10 (A) against exp11 (B)" in md and "### train loss, last epoch" in md
    assert "| runs counted (finished + diverged) | 3 | 3 |" in md
    assert "bootstrap 95%, 10000 resamples" in md and "P(A better than B):" in md
    assert "paired (same seed: same data and initial weights): 3 pairs" in md
    assert "power: with n = 3 and 3, only an effect of d ≥" in md
    target = tmp_path / "c.json"
    assert invoke("compare", "10", "11", "--epochs", "6", "--samples", "120", "--epoch", "1", "-o", str(target)).exit_code == 0
    doc = json.loads(target.read_text())
    assert doc["format"] == "fnn-tui-comparison" and doc["seeds_pair"] is True
    assert [m["metric"] for m in doc["metrics"]] == ["train_loss", "train_ratio", "test_loss", "test_ratio"]
    assert {m["epoch"] for m in doc["metrics"]} == {1}
    assert [r["seed"] for r in doc["a"]["runs"]] == [0, 1, 2]
    assert doc["metrics"][0]["a"]["n"] == 3 and 0 <= doc["metrics"][0]["p_a_better"]["low"] <= 1
    rows = list(csv.DictReader(io.StringIO(without_provenance(invoke("compare", "10", "11", "-f", "csv").stdout))))
    assert len(rows) == 4 and rows[0]["a"] == "exp10" and float(rows[0]["power_smallest_d"]) > 1.3
    # the same report twice: the seeded bootstrap gives the same digits
    twice = [without_provenance(invoke("compare", "10", "11").stdout) for _ in range(2)]
    assert twice[0] == twice[1] and "P(A better than B):" in twice[0]  # (the time it was made aside)


def test_compare_a_variant_finds_its_own_study_only(rows_10_11) -> None:
    result = invoke("compare", "10", "10", "--epochs", "6", "--samples", "120", "--set-b", "training.lr=0.05")
    assert result.exit_code == 2 and "no finished or diverged run of exp10 + training.lr=0.05" in result.stderr
    # the command it suggests trains that very study
    assert "`fnn-tui run 10 --set training.lr=0.05 --epochs 6 --samples 120 --seeds 10`" in result.stderr
    assert invoke("run", "10", "--set", "training.lr=0.05", "--epochs", "6", "--samples", "120", "--seeds", "2",
                  "--engine", "fused").exit_code == 0
    result = invoke("compare", "10", "10", "--epochs", "6", "--samples", "120", "--set-b", "training.lr=0.05")
    assert result.exit_code == 0 and "| runs counted (finished + diverged) | 3 | 2 |" in result.stdout
    # --set-b takes what run --set takes: the short key is the same study (it was refused:
    # "expected SECTION.KEY=VALUE")
    short = invoke("compare", "10", "10", "--epochs", "6", "--samples", "120", "--set-b", "lr=0.05")
    assert short.exit_code == 0 and without_provenance(short.stdout) == without_provenance(result.stdout)


def test_compare_counts_each_seed_once_and_never_an_excluded_run(rows_10_11, home: Path, catalog) -> None:
    # a repeat of exp10's seed 0 (the newer run counts, the older is a duplicate) and exp11's
    # seed 2 excluded: both sides count 3 and 2 runs, by the report's rule, either way a side is found
    from fnn_tui.store.runs import Store

    record_run(home, catalog.get("exp10").with_overrides(**TINY, seed=0), FUSED)
    with Store(home) as store:
        runs = {(r.preset, r.seed): r.id for r in reversed(store.list_runs())}  # the newest of a seed wins
        store.set_excluded([runs["exp11", 2]], True)
        old = min(r.id for r in store.list_runs("exp10") if r.seed == 0)
    for args in (("compare", "10", "11"), ("compare", "10", "11", "--epochs", "6", "--samples", "120")):
        md = invoke(*args, "--metric", "train_loss").stdout
        assert "| runs counted (finished + diverged) | 3 | 2 |" in md, md
        assert f"| not counted (duplicate or excluded) | 1: run {old} | 1: run {runs['exp11', 2]} |" in md, md
        assert "paired (same seed: same data and initial weights): 2 pairs" in md
        doc = json.loads(invoke(*args, "-f", "json").stdout)
        assert [r["seed"] for r in doc["a"]["runs"]] == [0, 1, 2] and runs["exp10", 0] in [r["run_id"] for r in doc["a"]["runs"]]
        assert doc["a"]["not_counted"] == [old] and doc["b"]["not_counted"] == [runs["exp11", 2]]


@pytest.mark.parametrize(("args", "message"), [
    (("compare", "10", "nope"), "no preset named 'nope'"),
    (("compare", "10", "11", "--metric", "loss"), "--metric loss: expected one of"),
    (("compare", "10", "11", "--set-a", "lr"), "--set-a lr: expected key=value"),
    (("compare", "10", "11", "--set-a", "training.lr=-1"), "--set-a training.lr=-1: training.lr: expected a finite number > 0"),
    (("compare", "10", "11", "--set-b", "lrr=0.1"), "--set-b lrr=0.1: lrr: unknown key; did you mean 'lr'?"),
    (("compare", "10", "11", "--set-b", "lr=0.1", "--set-b", "training.lr=0.2"), "training.lr: set twice"),
    (("compare", "10", "11"), "train some first"),
    (("compare", "10", "11", "-f", "xlsx"), "md, csv or json"),
    (("claims", "--seeds", "x"), "--seeds x"),
    (("claims", "--device", "tpu"), "tpu"),
])
def test_bad_input_is_one_line_and_exit_2(args, message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_claims_trains_what_is_missing_once_then_judges(home: Path, tmp_path: Path) -> None:
    args = ("claims", "--seeds", "1", "--epochs", "1", "--samples", "60", "--jobs", "1")
    first = invoke(*args, "-o", str(tmp_path / "claims.json"))
    assert first.exit_code == 0, first.stderr
    assert "training 14 runs the conclusions need" in first.stderr  # 8 rows and 6 controlled variants
    doc = json.loads((tmp_path / "claims.json").read_text())
    assert doc["differs"] == "every row run with 1 epoch, 60 samples" and len(doc["conclusions"]) == 8
    made = doc["provenance"]  # how the file was made, from which runs
    assert made["command"].startswith("fnn-tui claims --seeds 1") and (made["device"], made["engine"]) == ("cpu", "fused")
    # one seed a side: no interval, so no verdict but "needs seeds" (or nothing learnt at all)
    kinds = {c["notes_test"]["verdict"]["kind"] for c in doc["conclusions"]}
    assert kinds <= {"needs seeds", "not shown"}
    controlled = {c["key"]: c["controlled_test"] for c in doc["conclusions"]}
    assert controlled["decay-settles"] is None and controlled["wider-not-deeper"]["b"]["label"] == "exp03"
    assert controlled["wider-not-deeper"]["a"]["label"] == "exp03 + model.hidden=[40, 40]"
    again = invoke(*args, "--figures", str(tmp_path / "figs"))
    assert again.exit_code == 0 and "training" not in again.stderr
    assert "skipped: 14 seeds done with these settings" in again.stderr
    assert "**Not the notes' settings**: every row run with 1 epoch, 60 samples." in again.stdout
    assert "| 1 | wider-not-deeper |" in again.stdout
    assert len(list((tmp_path / "figs").glob("claim-*.png"))) == 8
    assert again.stdout.startswith("---\nmade: ") and 'command: "fnn-tui claims --seeds 1' in again.stdout
    # the report's section judges from the same runs without training
    report = invoke("report", "-f", "md")
    table, section = report.stdout.split("## Does the notes' reasoning hold?")
    # the controlled variants are stored as runs of exp03 and exp05: they never stand for those rows
    assert "exp03: samples=60, epochs=1;" in table and "model.hidden" not in table and "model.norm" not in table
    assert "`fnn-tui claims` trains the seeds" in section and "exp03: samples=60, epochs=1" in section
    assert "| 2 | small-lr-first | test loss, exp03 < exp04 | needs seeds: n = 1 |" in section
    # a conclusion's figure carries the line that says how it was made
    from fnn_tui.core.catalog import discover
    from fnn_tui.report.claim_figures import write_claim_figure
    from fnn_tui.report.provenance import provenance
    from fnn_tui.report.verdicts import judge_store
    from fnn_tui.store.runs import Store

    with Store(home) as store:
        results, _ = judge_store(store, discover())
    made = provenance("fnn-tui claims -o c.md", devices=["cpu"], engines=["fused"])  # (no "--": SVG comments)
    svg = write_claim_figure(results[0], tmp_path / "claim.svg", made=made).read_text()
    assert "command: fnn-tui claims -o c.md" in svg and "runs on cpu, engine fused" in svg
