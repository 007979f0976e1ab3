"""The notes' conclusions as data, the controlled variants and the verdict rules on
constructed studies (clear win, clear loss, overlap, all dead, all diverged, n = 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fnn_tui.core.catalog import Catalog
from fnn_tui.core.presets import PresetError
from fnn_tui.core.status import RunStatus
from fnn_tui.report.claims import (
    VerdictKind,
    confounds,
    controlled_variant,
    differing,
    load_conclusions,
    sides,
    verdict,
)
from fnn_tui.report.compare import Side, SideRun, compare, compare_metric, render

NOTES = Path("/work/shared/lab/lab1-fnn-notes.md")


def side(catalog: Catalog, losses: list[float | None], *, dead: int = 0, name: str = "exp10") -> Side:
    """A side of ``len(losses)`` seeds: ``None`` is a diverged run, the first ``dead`` finished are dead."""
    runs = []
    for seed, loss in enumerate(losses):
        if loss is None:
            runs.append(SideRun(seed + 1, seed, RunStatus.DIVERGED, False, {}))
        else:
            runs.append(SideRun(seed + 1, seed, RunStatus.FINISHED, seed < dead, {"test_loss": loss, "train_loss": loss}))
    return Side(name, catalog.get(name), tuple(runs))


def judged(a: Side, b: Side, direction: str = "better", margin: float = 0.0):
    m = compare_metric(a, b, "test_loss", resamples=2000)
    return verdict(direction, margin, m), m


# --- the file ----------------------------------------------------------------------------


def test_the_file_has_the_eight_conclusions_with_rows_that_exist(catalog: Catalog) -> None:
    conclusions = load_conclusions()
    assert [c.number for c in conclusions] == list(range(1, 9))
    for c in conclusions:
        catalog.get(c.a), catalog.get(c.b)
        assert c.notes and c.claim and c.reading


def test_the_files_confounds_are_the_presets_differences_besides_the_factor(catalog: Catalog) -> None:
    for c in load_conclusions():
        a, b = catalog.get(c.a), catalog.get(c.b)
        assert list(c.confounds) == confounds(a, b, c.factor), c.key
        assert set(c.factor) <= set(differing(a, b)), f"{c.key}: the factor must differ between the rows"


@pytest.mark.skipif(not NOTES.is_file(), reason="the lab notes are not on this machine")
def test_every_sentence_is_the_notes_own() -> None:
    summary = NOTES.read_text(encoding="utf-8").split("## 调参总结")[1].replace("\\_", "_")  # Markdown escapes
    for c in load_conclusions():
        assert c.notes in summary, c.key


def test_the_controlled_variant_changes_only_the_named_factor(catalog: Catalog) -> None:
    conclusions = {c.key: c for c in load_conclusions()}
    c = conclusions["norm-little-effect"]
    s = sides(c, catalog.get(c.a), catalog.get(c.b))
    assert s.controlled_b == catalog.get("exp05")  # the base row, unchanged
    assert s.controlled_a is not None and differing(s.controlled_a, catalog.get("exp05")) == ["model.norm"]
    assert s.controlled_a.model.norm == "mean-var" and s.controlled_a.name == "exp05"
    assert s.controlled_a.study_digest() != catalog.get("exp05").study_digest()
    unconfounded = conclusions["decay-settles"]
    assert sides(unconfounded, catalog.get("exp11"), catalog.get("exp10")).controlled_a is None


def test_a_variant_is_validated_like_a_preset_file(catalog: Catalog) -> None:
    # the variants' own validation (core/variants.py: apply_settings), with `--set`'s words
    with pytest.raises(PresetError, match="training.lr: expected a finite number > 0, found -1"):
        controlled_variant(catalog.get("exp03"), {"training.lr": -1.0})
    removed = controlled_variant(catalog.get("exp10"), {"training.clip": None})
    assert removed.training.clip is None and removed.training.l2 == catalog.get("exp10").training.l2


# --- verdicts ----------------------------------------------------------------------------


def test_a_clear_win_is_supported_and_a_clear_loss_contradicted(catalog: Catalog) -> None:
    good, bad = [0.01 * (i + 1) for i in range(10)], [1.0 + 0.1 * i for i in range(10)]
    win, m = judged(side(catalog, good), side(catalog, bad, name="exp11"))
    assert win.kind is VerdictKind.SUPPORTED and m.p_better_value == 1.0
    loss, _ = judged(side(catalog, bad), side(catalog, good, name="exp11"))
    assert loss.kind is VerdictKind.CONTRADICTED
    worse, _ = judged(side(catalog, bad), side(catalog, good, name="exp11"), "worse")
    assert worse.kind is VerdictKind.SUPPORTED
    assert "n = 10/10" in win.why


def test_overlapping_sides_show_nothing_or_ask_for_seeds(catalog: Catalog) -> None:
    a = [float(i) for i in range(10)]
    same, m = judged(side(catalog, a), side(catalog, [x + 0.5 for x in a], name="exp11"))
    # P = 0.55: it points the claimed way, and about 1500 seeds a side would show so small an effect
    assert m.p_better is not None and m.p_better.covers(0.5)
    assert same.kind is VerdictKind.NEEDS_SEEDS and same.text == f"needs about {m.seeds_needed} seeds"
    assert m.seeds_needed is not None and m.seeds_needed > 100
    wrong_way, _ = judged(side(catalog, [x + 0.5 for x in a]), side(catalog, a, name="exp11"))
    assert wrong_way.kind is VerdictKind.NOT_SHOWN


def test_equal_within_a_margin(catalog: Catalog) -> None:
    a = [float(i) for i in range(40)]
    b = [x + 0.5 for x in a]
    equal, _ = judged(side(catalog, a), side(catalog, b, name="exp11"), "equal", 0.2)
    assert equal.kind is VerdictKind.SUPPORTED
    apart, _ = judged(side(catalog, a), side(catalog, [x + 100 for x in a], name="exp11"), "equal", 0.2)
    assert apart.kind is VerdictKind.CONTRADICTED
    few, _ = judged(side(catalog, a[:4]), side(catalog, b[:4], name="exp11"), "equal", 0.2)
    assert few.kind is VerdictKind.NOT_SHOWN  # four a side: the interval is wider than the margin


def test_all_dead_all_diverged_and_a_single_run(catalog: Catalog) -> None:
    dead, m = judged(side(catalog, [1.31, 1.32, 1.30], dead=3), side(catalog, [1.33, 1.35], dead=2, name="exp11"))
    assert dead.kind is VerdictKind.NOT_SHOWN and dead.text == "not shown: all dead"
    assert (m.a.dead, m.b.dead) == (3, 2)
    diverged, m = judged(side(catalog, [None, None]), side(catalog, [None, None, None], name="exp11"))
    assert diverged.text == "not shown: all diverged" and (m.a.diverged, m.b.diverged) == (2, 3)
    one, m = judged(side(catalog, [0.1]), side(catalog, [0.5, 0.6], name="exp11"))
    assert one.kind is VerdictKind.NEEDS_SEEDS and m.p_better is None and m.p_better_value == 1.0
    # one side diverged throughout, the other learnt: the diverged side is the worse one
    lost, _ = judged(side(catalog, [None, None, None]), side(catalog, [0.5, 0.6, 0.7], name="exp11"))
    assert lost.kind is VerdictKind.CONTRADICTED
    nothing, _ = judged(Side("exp10", catalog.get("exp10"), ()), side(catalog, [0.5], name="exp11"))
    assert nothing.kind is VerdictKind.NOT_RUN


def test_dead_runs_count_and_their_rates_are_tested(catalog: Catalog) -> None:
    a = side(catalog, [1.3] * 5 + [0.01 * i for i in range(1, 6)], dead=5)
    b = side(catalog, [0.02 * i for i in range(1, 11)], name="exp11")
    m = compare_metric(a, b, "test_loss", resamples=1000)
    assert (m.a.dead, m.a.n, m.b.dead) == (5, 10, 0)
    assert m.fisher_dead == pytest.approx(0.0325, abs=1e-4)
    assert m.a.dead_rate is not None and m.a.dead_rate.low == pytest.approx(0.2366, abs=1e-4)


def test_seeds_pair_when_the_data_and_the_widths_agree(catalog: Catalog) -> None:
    a = side(catalog, [0.1, 0.2, 0.3, 0.4], name="exp10")
    b = side(catalog, [0.2, 0.3, 0.4, 0.6], name="exp11")  # rows 10 and 11: same data and widths
    c = compare(a, b, ("test_loss",), resamples=1000)
    assert c.paired and c.metrics[0].paired is not None and c.metrics[0].paired.pairs == 4
    assert c.metrics[0].paired.median_difference == pytest.approx(-0.1)
    other = compare(a, side(catalog, [0.2, 0.3, 0.4, 0.6], name="exp05"), ("test_loss",), resamples=1000)
    assert not other.paired and other.metrics[0].paired is None
    md = render(c, "md")
    assert "paired (same seed: same data and initial weights): 4 pairs" in md and "power: with n = 4 and 4" in md
