"""Each statistic against a value worked out by hand or published (the numbers in the
comments are the workings)."""

from __future__ import annotations

import math

import pytest

from fnn_tui.report import stats

INF = math.inf


def test_wilson_intervals_match_the_worked_formula() -> None:
    # 5/10: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with z = 1.959964: 0.2366 to 0.7634
    five = stats.wilson(5, 10)
    assert five is not None and five.value == 0.5
    assert five.low == pytest.approx(0.23659, abs=1e-4) and five.high == pytest.approx(0.76341, abs=1e-4)
    # 0/10: the lower end is 0 and the upper is 2·(z²/2n)/(1 + z²/n) = 0.38415/1.38415 = 0.2775
    zero = stats.wilson(0, 10)
    assert zero is not None and zero.low == pytest.approx(0.0, abs=1e-12)
    assert zero.high == pytest.approx(0.27753, abs=1e-4)
    assert stats.wilson(0, 0) is None


def test_fisher_exact_gives_the_issues_numbers() -> None:
    # 5/10 dead against 0/10: C(10,5)·C(10,0)/C(20,5) = 252/15504 = 0.016254 each tail, 0.0325 both
    assert stats.fisher(5, 10, 0, 10) == pytest.approx(2 * 252 / 15504, rel=1e-9)
    assert stats.fisher(5, 10, 1, 10) == pytest.approx(0.1409, abs=1e-4)  # not significant at 0.05
    assert stats.fisher(3, 10, 3, 10) == pytest.approx(1.0)
    assert stats.fisher(0, 0, 1, 2) is None


def test_probability_of_being_lower_counts_pairs() -> None:
    # [1,2,3] against [2,3,4]: 6 of the 9 pairs lower, 2 ties at one half: 7/9
    assert stats.prob_lower([1, 2, 3], [2, 3, 4]) == pytest.approx(7 / 9)
    assert stats.prob_lower([2, 3, 4], [1, 2, 3]) == pytest.approx(2 / 9)
    # a diverged run (inf) is worse than any number and ties with another diverged one:
    # (1<2, 1<inf, inf vs 2 loses, inf=inf half) = 2.5/4
    assert stats.prob_lower([1, INF], [2, INF]) == pytest.approx(0.625)
    assert math.isnan(stats.prob_lower([], [1.0]))


def test_bootstrap_intervals_are_exact_when_the_sides_cannot_overlap_and_reproducible() -> None:
    p = stats.prob_lower_ci([1, 2, 3, 4], [10, 11, 12, 13], resamples=2000)
    assert p is not None and (p.value, p.low, p.high) == (1.0, 1.0, 1.0)
    d = stats.median_difference_ci([5, 5, 5], [2, 2, 2], resamples=2000)
    assert d is not None and (d.value, d.low, d.high) == (3.0, 3.0, 3.0)
    values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4]
    assert stats.median_ci(values) == stats.median_ci(values)  # seeded: the same digits every time
    m = stats.median_ci(values)
    assert m is not None and m.value == pytest.approx(0.35) and 0.1 <= m.low <= m.value <= m.high <= 0.9
    assert stats.median_ci([1.0]) is None and stats.prob_lower_ci([1.0], [2.0, 3.0]) is None


def test_welch_t_matches_the_hand_computation() -> None:
    # means 2.5 and 5, variances 5/3 and 20/3: se² = 5/12 + 20/12 = 25/12, t = -2.5/sqrt(25/12) = -sqrt(3);
    # Welch-Satterthwaite df = (25/12)² / ((5/12)²/3 + (20/12)²/3) = 4.41, two-sided p = 0.1516
    t, p = stats.welch([1, 2, 3, 4], [2, 4, 6, 8])
    assert t == pytest.approx(-math.sqrt(3), rel=1e-12)
    assert p == pytest.approx(0.1516, abs=5e-4)
    assert stats.welch([1.0], [2.0, 3.0]) is None and stats.welch([1, 1], [2, 2]) is None


def test_mann_whitney_and_wilcoxon_give_the_exact_small_sample_values() -> None:
    # complete separation of 3 and 3: 1 of the C(6,3) = 20 orderings each way, p = 2/20
    assert stats.mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    # five differences, all negative: the signed-rank sum is extreme, p = 2/2^5 = 0.0625
    median, p = stats.wilcoxon_paired([1, 2, 3, 4, 5], [2, 4, 6, 8, 10.5])
    assert median == -3.0 and p == pytest.approx(0.0625)
    assert stats.wilcoxon_paired([1, 2], [1, 2]) is None


def test_power_matches_cohens_tables() -> None:
    # two-sided alpha 0.05, power 0.8: d = 1.325 at n = 10 a side (G*Power), and the n a side
    # Cohen (1988) tabulates for d = 0.2, 0.5, 0.8: 394, 64, 26
    assert stats.smallest_effect(10, 10) == pytest.approx(1.325, abs=1e-3)
    assert [stats.seeds_needed(d) for d in (0.2, 0.5, 0.8)] == [394, 64, 26]
    assert stats.power(0.5, 64, 64) == pytest.approx(0.80, abs=0.01)
    assert stats.smallest_effect(1, 10) is None and stats.seeds_needed(0.0) is None
    assert stats.seeds_needed(0.001) is None  # past MAX_SEEDS_NEEDED


def test_the_effect_from_a_probability_inverts_the_normal_model() -> None:
    # P(X < Y) = Φ(d/√2) for two normals a distance d apart: d = 1 gives Φ(0.7071) = 0.7602
    assert stats.effect_from_probability(0.7602) == pytest.approx(1.0, abs=1e-3)
    assert stats.effect_from_probability(0.5) == 0.0
    assert stats.effect_from_probability(1.0) == INF


def test_percentile_and_quartiles() -> None:
    # 3 among [1,2,3,4]: 2 under (50%), 3 at or under (75%), the mean of the two: 62.5
    assert stats.percentile_of(3, [1, 2, 3, 4]) == 62.5
    assert stats.percentile_of(0, [1, 2]) == 0.0 and stats.percentile_of(9, [1, 2]) == 100.0
    assert stats.percentile_of(1, []) is None
    assert stats.quartiles([1, 2, 3, 4, 5]) == (3.0, 2.0, 4.0)
    assert stats.quartiles([]) is None
