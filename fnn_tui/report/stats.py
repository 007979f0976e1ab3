"""The statistics of a multi-seed comparison, each a thin call into :mod:`scipy.stats`.

Why these (see issue 18's anchors): with ten seeds a side, a median alone misleads when
several runs end dead, and a t-test alone misleads when the values are far from normal. So a
comparison reports rank-based effects (the probability that one side beats the other,
P(A better than B) = U / (n·m), as rliable does), bootstrap intervals (seeded, so a report
is reproducible to the digit), Welch's t-test, Fisher's exact test on failure counts, Wilson
intervals on those counts, and a power note (Colas et al. 2018: how many seeds an effect of
this size needs).

"Better" is "lower" everywhere here: the callers turn each metric into a score where lower
is better first (a loss as it is, a ratio as its distance to 1).

Nothing here knows runs or presets; every function takes plain sequences of floats. scipy
is imported inside the functions so that importing the report stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SEED = 20240518  # fixed: the same runs give the same intervals, to the digit
RESAMPLES = 10_000
CONFIDENCE = 0.95
POWER = 0.8
ALPHA = 0.05
MAX_SEEDS_NEEDED = 10_000  # beyond this the answer is "an effect too small to chase"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float

    def covers(self, x: float) -> bool:
        """Whether ``x`` lies in [low, high]."""
        return self.low <= x <= self.high


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval | None:
    """The rate k/n with its Wilson score interval (``None`` when n is 0)."""
    if n <= 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(k / n, float(ci.low), float(ci.high))


def quartiles(values: Sequence[float]) -> tuple[float, float, float] | None:
    """Median and the first and third quartiles (numpy's linear interpolation), or ``None``."""
    if not values:
        return None
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(med), float(q1), float(q3)


def median_ci(values: Sequence[float], *, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
              confidence: float = CONFIDENCE) -> Interval | None:
    """The median with a percentile-bootstrap interval; ``None`` for fewer than two values."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return None
    from scipy.stats import bootstrap

    res = bootstrap((x,), np.median, vectorized=True, n_resamples=resamples, method="percentile",
                    confidence_level=confidence, rng=_rng(seed))
    return Interval(float(np.median(x)), float(res.confidence_interval.low), float(res.confidence_interval.high))


def _median_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(a, axis=axis) - np.median(b, axis=axis)


def median_difference_ci(a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES,
                         seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> Interval | None:
    """median(a) − median(b) with a bootstrap interval that resamples each side on its own
    (a stratified bootstrap); ``None`` when either side has fewer than two values."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        return None
    from scipy.stats import bootstrap

    res = bootstrap((x, y), _median_difference, vectorized=True, n_resamples=resamples, method="percentile",
                    confidence_level=confidence, rng=_rng(seed))
    return Interval(float(_median_difference(x, y)), float(res.confidence_interval.low),
                    float(res.confidence_interval.high))


def _prob_lower(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    # P(a < b) + P(a == b) / 2 over all pairs; works on (..., n) and (..., m) stacks
    a = np.moveaxis(a, axis, -1)[..., :, None]
    b = np.moveaxis(b, axis, -1)[..., None, :]
    return (a < b).mean(axis=(-2, -1)) + 0.5 * (a == b).mean(axis=(-2, -1))


def prob_lower(a: Sequence[float], b: Sequence[float]) -> float:
    """P(A better than B), better being lower: U / (n·m), U being Mann–Whitney's U of B
    against A (ties count one half). ``inf`` stands for a run that diverged: worse than any
    finished run, tied with the other diverged ones."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return math.nan
    from scipy.stats import mannwhitneyu

    if np.isinf(x).any() or np.isinf(y).any():
        return float(_prob_lower(x, y))  # scipy's ranks cannot take inf; the pair count can
    u = mannwhitneyu(y, x, alternative="two-sided").statistic  # U of y: pairs where y > x
    return float(u / (x.size * y.size))


def prob_lower_ci(a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES,
                  seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> Interval | None:
    """:func:`prob_lower` with a stratified percentile-bootstrap interval; ``None`` when
    either side has fewer than two values."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        return None
    from scipy.stats import bootstrap

    res = bootstrap((x, y), _prob_lower, vectorized=True, n_resamples=resamples, method="percentile",
                    confidence_level=confidence, rng=_rng(seed))
    return Interval(prob_lower(x, y), float(res.confidence_interval.low), float(res.confidence_interval.high))


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The two-sided Mann–Whitney U test's p-value (``None`` with an empty side)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return None
    from scipy.stats import mannwhitneyu

    big = np.finfo(float).max  # inf only orders the runs here, and a huge number orders them alike
    p = mannwhitneyu(np.where(np.isinf(x), big, x), np.where(np.isinf(y), big, y), alternative="two-sided").pvalue
    return float(p)


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """Welch's t-test (unequal variances): (t, two-sided p), or ``None`` when either side has
    fewer than two values or both have no spread."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return None
    from scipy.stats import ttest_ind

    res = ttest_ind(x, y, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def fisher(k_a: int, n_a: int, k_b: int, n_b: int) -> float | None:
    """Fisher's exact test (two-sided) on the rates k_a/n_a and k_b/n_b; ``None`` with an empty side."""
    if n_a <= 0 or n_b <= 0:
        return None
    from scipy.stats import fisher_exact

    return float(fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]]).pvalue)


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """Paired values (same seed on both sides): the median of a − b and the two-sided
    Wilcoxon signed-rank p-value; ``None`` for fewer than two pairs or no difference at all."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    if d.size < 2 or not np.any(d != 0):
        return None
    from scipy.stats import wilcoxon

    return float(np.median(d)), float(wilcoxon(x, y).pvalue)


def _power(d: float, n_a: float, n_b: float, alpha: float) -> float:
    from scipy.stats import nct, t

    df = n_a + n_b - 2
    ncp = d * math.sqrt(n_a * n_b / (n_a + n_b))
    crit = t.ppf(1 - alpha / 2, df)
    upper, lower = nct.sf(crit, df, ncp), nct.cdf(-crit, df, ncp)
    if math.isnan(upper):  # scipy's nct gives up far in the tail, where the power is 1
        return 1.0
    return float(upper + (0.0 if math.isnan(lower) else lower))


def power(d: float, n_a: int, n_b: int, alpha: float = ALPHA) -> float:
    """The power of a two-sided two-sample t-test to see a standardized effect ``d`` (Cohen's d)."""
    return _power(abs(d), n_a, n_b, alpha)


def smallest_effect(n_a: int, n_b: int, target: float = POWER, alpha: float = ALPHA) -> float | None:
    """The smallest Cohen's d a two-sided t-test on n_a and n_b values sees with ``target``
    power (about 1.32 for 10 a side); ``None`` for fewer than two values a side."""
    if n_a < 2 or n_b < 2:
        return None
    from scipy.optimize import brentq

    return float(brentq(lambda d: _power(d, n_a, n_b, alpha) - target, 1e-6, 20.0))


def seeds_needed(d: float, target: float = POWER, alpha: float = ALPHA) -> int | None:
    """About how many seeds a side show an effect ``d`` with ``target`` power (the smallest n
    that reaches it); ``None`` for no effect or one past :data:`MAX_SEEDS_NEEDED`."""
    d = abs(d)
    if not math.isfinite(d) or d == 0:
        return None if d == 0 or math.isnan(d) else 2
    if _power(d, MAX_SEEDS_NEEDED, MAX_SEEDS_NEEDED, alpha) < target:
        return None
    low, high = 2, MAX_SEEDS_NEEDED  # power rises with n: bisect for the first n that reaches it
    while low < high:
        mid = (low + high) // 2
        if _power(d, mid, mid, alpha) >= target:
            high = mid
        else:
            low = mid + 1
    return low


def effect_from_probability(p: float) -> float:
    """The Cohen's d that gives P(A better than B) = ``p`` between two normal samples of equal
    spread (P = Φ(d/√2)): the rank effect in the unit the power note uses. Infinite at 0 and 1."""
    from scipy.stats import norm

    if not 0 < p < 1:
        return math.inf if p >= 1 else -math.inf
    return float(math.sqrt(2) * norm.ppf(p))


def percentile_of(value: float, values: Sequence[float]) -> float | None:
    """Where ``value`` falls among ``values``, in percent (0: under all, 100: over all; ties
    count one half, scipy's ``kind="mean"``); ``None`` with no values."""
    if not values:
        return None
    from scipy.stats import percentileofscore

    return float(percentileofscore(np.asarray(values, dtype=float), value, kind="mean"))
