"""The reproduction report: summaries over seeds, every verdict rule and the three renderers."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from enum import Enum

import pytest

from fnn_tui.core.presets import Reported
from fnn_tui.report.reproduction import (
    NotesValue,
    Outcome,
    Study,
    VerdictKind,
    notes_value,
    render,
    reproduction,
    summarize,
)

_ids = iter(range(1, 10_000))


def run(
    status: str = "finished",
    *,
    loss: float | None = None,
    ratio: float | None = None,
    dead: bool = False,
    seed: int = 0,
) -> Outcome:
    """A run whose train and test numbers are the same (enough to test the statistics)."""
    done = 3 if status == "finished" else 1
    return Outcome(
        run_id=next(_ids), seed=seed, status=status, dead=dead, train_loss=loss, train_ratio=ratio,
        test_loss=loss, test_ratio=ratio, epochs_done=done, epochs_total=3,
        diverged_epoch=2 if status == "diverged" else None,
    )


def study(notes: Reported, *outcomes: Outcome, name: str = "exp08", number: int = 8) -> Study:
    return Study(name=name, number=number, setting="(20,20,30), norm+clip+L2, 5000, 150", notes=notes,
                 outcomes=outcomes)


LOSSES = (0.146, 0.2, 0.3)  # our three finished runs' losses


def three(notes: Reported) -> Study:
    return study(notes, *(run(loss=v, ratio=1.0 + v) for v in LOSSES))


def test_a_single_run_gives_its_value_as_median_min_and_max() -> None:
    r = summarize(study(Reported(train_loss=0.5, test_loss=0.01), run(loss=0.05, ratio=1.02)))
    m = r.metric("train_loss")
    assert (m.all.n, m.all.median, m.all.min, m.all.max) == (1, 0.05, 0.05, 0.05)
    assert m.verdict.kind is VerdictKind.ABOVE
    assert m.verdict.factor == pytest.approx(10.0)
    assert m.verdict.text == "above, 10× over our only run"
    equal = summarize(study(Reported(train_loss=0.05), run(loss=0.05, ratio=1.02))).metric("train_loss")
    assert equal.verdict.kind is VerdictKind.WITHIN
    assert equal.verdict.text == "within: equals our only run"


def test_all_diverged_is_no_runs_and_says_so() -> None:
    r = summarize(study(Reported(train_ratio=1.2), *(run("diverged", loss=0.3, ratio=1.1) for _ in range(4))))
    assert (r.finished, r.dead, r.diverged, r.other) == (0, 0, 4, 0)
    v = r.metric("train_ratio").verdict
    assert v.kind is VerdictKind.NO_RUNS
    assert v.text == "no runs: all 4 diverged"
    # a diverged run's last numbers are not final results: nothing is summarised
    assert r.metric("train_ratio").all.n == 0
    mixed = summarize(study(Reported(train_ratio=1.2), run("diverged"), run("diverged"), run("cancelled")))
    assert mixed.metric("train_ratio").verdict.text == "no runs: 2 diverged, 1 left out"


def test_notes_equal_to_our_min_or_our_max_are_within() -> None:
    for value in (min(LOSSES), max(LOSSES)):
        v = summarize(three(Reported(train_loss=value))).metric("train_loss").verdict
        assert v.kind is VerdictKind.WITHIN
        assert v.text == "within our 3 runs"
    # the next float outside either end is not
    just_under = summarize(three(Reported(train_loss=math.nextafter(min(LOSSES), 0))))
    assert just_under.metric("train_loss").verdict.kind is VerdictKind.BELOW
    just_over = summarize(three(Reported(train_ratio=math.nextafter(1.0 + max(LOSSES), 2))))
    assert just_over.metric("train_ratio").verdict.kind is VerdictKind.ABOVE


def test_below_a_loss_gives_the_factor_to_our_lowest_run() -> None:
    m = summarize(three(Reported(train_loss=0.00296))).metric("train_loss")
    assert m.verdict.kind is VerdictKind.BELOW
    assert m.verdict.factor == pytest.approx(0.146 / 0.00296)  # 49.3
    assert m.verdict.text == "below, 49× under our lowest of 3"
    assert m.verdict.label == "49× below"
    assert m.verdict.difference is None


def test_above_a_loss_gives_the_factor_from_our_highest_run() -> None:
    m = summarize(three(Reported(test_loss=0.75))).metric("test_loss")
    assert m.verdict.kind is VerdictKind.ABOVE
    assert m.verdict.factor == pytest.approx(2.5)
    assert m.verdict.text == "above, 2.5× over our highest of 3"


def test_ratios_give_the_difference_not_a_factor() -> None:
    above = summarize(three(Reported(train_ratio=1.372541))).metric("train_ratio")  # our max is 1.3
    assert above.verdict.kind is VerdictKind.ABOVE
    assert above.verdict.factor is None
    assert above.verdict.difference == pytest.approx(0.072541)
    assert above.verdict.text == "above, 0.0725 over our highest of 3"
    below = summarize(three(Reported(test_ratio=1.01308))).metric("test_ratio")  # our min is 1.146
    assert below.verdict.kind is VerdictKind.BELOW
    assert below.verdict.difference == pytest.approx(1.01308 - 1.146)
    assert below.verdict.text == "below, 0.133 under our lowest of 3"


def test_nothing_reported_wins_even_without_runs() -> None:
    r = summarize(three(Reported(train_ratio=1.2)))
    for metric in ("train_loss", "test_loss", "test_ratio"):
        assert r.metric(metric).notes is None
        assert r.metric(metric).verdict.kind is VerdictKind.NOT_REPORTED
    assert r.metric("train_loss").all.n == 3  # our numbers are still summarised
    none = summarize(study(Reported(), run("diverged")))
    assert all(m.verdict.kind is VerdictKind.NOT_REPORTED for m in none.metrics)


def test_dead_runs_are_counted_and_decide_the_verdict_but_not_the_live_summary() -> None:
    # four dead constant predictors at the targets' variance, three live fits
    dead = [run(loss=1.35 + 0.01 * k, ratio=0.97, dead=True) for k in range(4)]
    live = [run(loss=v, ratio=1.05 + v) for v in (0.02, 0.05, 0.03)]
    r = summarize(study(Reported(train_loss=1.2), *dead, *live, run("diverged")))
    assert (r.finished, r.dead, r.diverged, r.other) == (7, 4, 1, 0)
    m = r.metric("train_loss")
    assert m.all.n == 7
    assert m.all.median == pytest.approx(1.35)  # sorted: .02 .03 .05 1.35 1.36 1.37 1.38
    assert (m.all.min, m.all.max) == (0.02, pytest.approx(1.38))
    assert (m.live.n, m.live.median, m.live.min, m.live.max) == (3, 0.03, 0.02, 0.05)
    # the notes' 1.2 is inside our range only because the dead runs count
    assert m.verdict.kind is VerdictKind.WITHIN
    ratio = r.metric("train_ratio")
    assert ratio.live.median == pytest.approx(statistics.median([1.07, 1.10, 1.08]))


def test_a_preset_without_any_run() -> None:
    r = summarize(study(Reported(train_loss=0.1, train_ratio=1.1)))
    assert (r.finished, r.dead, r.diverged, r.other) == (0, 0, 0, 0)
    assert r.runs == ()
    m = r.metric("train_loss")
    assert (m.all.n, m.all.median, m.live.n) == (0, None, 0)
    assert m.verdict.kind is VerdictKind.NO_RUNS
    assert m.verdict.text == "no runs"


def test_other_statuses_are_left_out_and_counted() -> None:
    r = summarize(study(Reported(train_loss=0.2), run(loss=0.2), run("cancelled", loss=9.0),
                        run("failed", loss=9.0), run("running", loss=9.0)))
    assert (r.finished, r.diverged, r.other) == (1, 0, 3)
    assert r.metric("train_loss").all.max == 0.2
    assert len(r.runs) == 4


def test_a_str_enum_status_counts_like_its_value() -> None:
    class Status(str, Enum):
        FINISHED = "finished"
        DIVERGED = "diverged"

    base = run(loss=0.1)
    r = summarize(study(Reported(), Outcome(**{**base.__dict__, "status": Status.FINISHED}),
                        Outcome(**{**base.__dict__, "run_id": 99_999, "status": Status.DIVERGED})))
    assert (r.finished, r.diverged, r.other) == (1, 1, 0)


def test_a_nan_metric_is_left_out_of_the_statistics() -> None:
    r = summarize(study(Reported(train_loss=0.1), run(loss=math.nan), run(loss=0.1), run(loss=0.3)))
    assert r.metric("train_loss").all.n == 2
    assert r.metric("train_loss").all.median == pytest.approx(0.2)


def test_a_note_like_15_x_is_the_range_15_to_16() -> None:
    notes = Reported(note="train acc 15.x")
    assert notes_value(notes, "train_ratio") == NotesValue(15.0, 16.0, "15.x")
    assert notes_value(notes, "test_ratio") is None
    assert notes_value(notes, "train_loss") is None
    assert notes_value(Reported(note="loss became nan"), "train_loss") is None
    assert notes_value(Reported(note="test loss 3.x"), "test_loss") == NotesValue(3.0, 4.0, "3.x")

    def kind(*ratios: float) -> VerdictKind:
        return summarize(study(notes, *(run(ratio=v) for v in ratios))).metric("train_ratio").verdict.kind

    assert kind(15.0) is VerdictKind.WITHIN
    assert kind(15.99, 40.0) is VerdictKind.WITHIN
    assert kind(3.0, 15.2) is VerdictKind.WITHIN
    assert kind(16.0) is VerdictKind.BELOW  # 15.x is under 16
    assert kind(14.9) is VerdictKind.ABOVE
    below = summarize(study(notes, run(ratio=16.5), run(ratio=17.0))).metric("train_ratio").verdict
    assert below.difference == pytest.approx(-0.5)  # from the range's nearest end, 16


# --- renderers ---------------------------------------------------------------------------


def _sample() -> list:
    exp01 = study(Reported(train_ratio=1.2), *(run(loss=1.35, ratio=0.98, dead=True, seed=s) for s in range(2)),
                  *(run(loss=0.02 * (s + 1), ratio=1.1 + 0.05 * s, seed=s + 2) for s in range(3)),
                  name="exp01", number=1)
    exp04 = study(Reported(note="train acc 15.x"), *(run("diverged", seed=s) for s in range(3)),
                  name="exp04", number=4)
    exp08 = study(Reported(train_loss=0.00296, train_ratio=1.122541, test_loss=0.002974, test_ratio=1.01308),
                  *(run(loss=0.146 + 0.01 * s, ratio=1.02 + 0.004 * s, seed=s) for s in range(4)),
                  run("cancelled", seed=9), name="exp08", number=8)
    return reproduction([exp08, exp04, exp01])


def test_reports_come_in_experiment_order() -> None:
    assert [r.name for r in _sample()] == ["exp01", "exp04", "exp08"]


def test_markdown_has_one_row_per_preset_and_a_legend() -> None:
    reports = _sample()
    md = render(reports, "md")
    lines = md.splitlines()
    for r in reports:
        rows = [line for line in lines if line.startswith(f"| {r.number} | {r.name} | {r.setting} |")]
        assert len(rows) == 1
    exp08 = next(line for line in lines if line.startswith("| 8 | exp08 |"))
    assert "0.00296 (49× below)" in exp08
    assert "4/0/0 +1 left out" in exp08
    assert "15.x (all 3 diverged)" in md
    assert "mean |ŷ/y|, 1 is perfect" in md
    # exp01 had dead runs: its live-only row shows the three live fits' median loss 0.04
    live = md.split("Without the dead runs")[1]
    assert "| 1 | exp01 | 3 | 0.04 (0.02–0.06) |" in live
    assert "exp08" not in live


def test_csv_parses_back_to_the_same_numbers() -> None:
    reports = _sample()
    rows = list(csv.DictReader(io.StringIO(render(reports, "csv"))))
    assert [row["preset"] for row in rows] == [r.name for r in reports]
    for row, r in zip(rows, reports):
        assert (int(row["finished"]), int(row["dead"]), int(row["diverged"]), int(row["other"])) == (
            r.finished, r.dead, r.diverged, r.other)
        for m in r.metrics:
            assert int(row[f"{m.metric}_n"]) == m.all.n
            assert int(row[f"{m.metric}_live_n"]) == m.live.n
            assert row[f"{m.metric}_verdict"] == m.verdict.kind.value
            for key, value in ((f"{m.metric}_median", m.all.median), (f"{m.metric}_min", m.all.min),
                               (f"{m.metric}_max", m.all.max), (f"{m.metric}_live_median", m.live.median),
                               (f"{m.metric}_factor", m.verdict.factor)):
                assert (float(row[key]) if row[key] else None) == value  # full precision: exact
    exp08 = rows[2]
    assert float(exp08["train_loss_notes"]) == 0.00296
    assert float(exp08["train_loss_factor"]) == 0.146 / 0.00296
    assert rows[1]["train_ratio_notes"] == "" and rows[1]["train_ratio_notes_high"] == "16.0"


def test_json_has_every_run_and_every_summary() -> None:
    reports = _sample()
    doc = json.loads(render(reports, "json"))
    assert doc["format"] == "fnn-tui-reproduction" and doc["dead_std_fraction"] == 0.01
    run_ids = {run["run_id"] for p in doc["presets"] for run in p["runs"]}
    assert run_ids == {o.run_id for r in reports for o in r.runs}
    exp01 = doc["presets"][0]
    assert exp01["counts"] == {"finished": 5, "dead": 2, "diverged": 0, "other": 0,
                               "duplicates": 0, "excluded": 0}
    assert sum(run["dead"] for run in exp01["runs"]) == 2
    assert exp01["metrics"]["train_loss"]["all"]["median"] == 0.06
    assert exp01["metrics"]["train_loss"]["live"]["median"] == 0.04
    assert exp01["metrics"]["train_ratio"]["verdict"]["kind"] == "within"
    seeds = sorted(run["seed"] for run in exp01["runs"])
    assert seeds == [0, 1, 2, 3, 4]
    exp04 = doc["presets"][1]
    assert {run["status"] for run in exp04["runs"]} == {"diverged"}
    assert exp04["metrics"]["train_ratio"]["notes"] == {"text": "15.x", "low": 15.0, "high": 16.0, "exact": None}


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render([], "xlsx")
    assert render([], "csv").startswith("number,preset,setting,")
