"""Does the notes' reasoning hold? The eight conclusions of the notes' 调参总结, tested.

The conclusions are data (``presets/claims/conclusions.toml``, shipped beside the presets):
each has the notes' own sentence, how we read it (the rows compared, a metric, an epoch, a
direction: A better than B, A worse than B, or equal within a margin), the factor the
sentence names, and its confounds: every other setting that differs between the two rows.
A test recomputes the confounds from the presets, so the file cannot drift from them.

A conclusion drawn from two rows that differ in more than the named factor is tested twice:
as the notes drew it (row A against row B), and controlled, where the base row is compared
with itself with only the named factor changed (:func:`controlled_variant`), over the same
seeds.

Verdict rules (:func:`verdict`), on P(A better than B) with its bootstrap 95% interval
(:mod:`fnn_tui.report.compare`; better is lower, a diverged run ranks worst):

- ``not run``: a side has no run counted (nothing finished or diverged at that epoch).
- ``not shown``: every run on both sides diverged, or every run on both sides is dead (or
  diverged): neither learnt anything to compare.
- ``needs seeds``: a side has a single run, so there is no interval.
- **better** (``worse`` is the mirror, on 1 − P): *supported* when the interval lies above
  0.5, *contradicted* when it lies below; otherwise, when the observed P points the claimed
  way and about N seeds a side would show it at 80% power (the power note's N, from
  d = √2·Φ⁻¹(P)) with N above the seeds used, *needs about N seeds*; else *not shown* (the
  interval covers no difference).
- **equal** within a margin m: *supported* when the interval lies inside [0.5 − m, 0.5 + m],
  *contradicted* when it lies wholly outside it, *not shown* otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from fnn_tui.core.presets import Preset, preset_to_dict
from fnn_tui.paths import builtin_presets_dir
from fnn_tui.report.compare import MetricComparison
from fnn_tui.report.reproduction import METRICS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONCLUSIONS_FILE = "claims/conclusions.toml"
SEEDS = 10  # the seeds (0..9) a conclusion's studies are trained over when none are asked for
DIRECTIONS = ("better", "worse", "equal")
SETTING_SECTIONS = ("data", "model", "training")  # what a run computes; the seed is left out


# --- the conclusions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Conclusion:
    """One of the notes' conclusions and our reading of it."""

    number: int
    key: str  # a short name, e.g. "wider-not-deeper"
    notes: str  # the notes' own sentence
    claim: str  # the sentence in English, as we read it
    a: str  # preset names
    b: str
    metric: str
    epoch: int | None  # 1-based; None: the last epoch
    direction: str  # A "better" than B, "worse", or "equal" within margin
    margin: float
    factor: tuple[str, ...]  # the settings the sentence names, as dotted keys
    base: str  # "a" or "b": the row the controlled test changes
    confounds: tuple[str, ...]  # every other setting that differs between A and B
    reading: str  # why we read it so


def conclusions_path() -> Path:
    """The shipped conclusions file."""
    return builtin_presets_dir() / CONCLUSIONS_FILE


def load_conclusions(path: Path | None = None) -> list[Conclusion]:
    """Read and check the conclusions file (a ValueError names the entry and the key)."""
    path = path or conclusions_path()
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    result = []
    for i, c in enumerate(doc.get("conclusion", []), 1):
        where = f"{path.name}: conclusion {i}"
        try:
            item = Conclusion(
                number=int(c["number"]), key=str(c["key"]), notes=str(c["notes"]), claim=str(c["claim"]),
                a=str(c["a"]), b=str(c["b"]), metric=str(c["metric"]),
                epoch=int(c["epoch"]) if c.get("epoch") else None, direction=str(c["direction"]),
                margin=float(c.get("margin", 0.0)), factor=tuple(c["factor"]), base=str(c["base"]),
                confounds=tuple(c.get("confounds", ())), reading=str(c["reading"]),
            )
        except KeyError as exc:
            raise ValueError(f"{where}: missing key {exc.args[0]!r}") from None
        if item.metric not in METRICS:
            raise ValueError(f"{where}: metric {item.metric!r} is not one of {', '.join(METRICS)}")
        if item.direction not in DIRECTIONS:
            raise ValueError(f"{where}: direction {item.direction!r} is not one of {', '.join(DIRECTIONS)}")
        if item.base not in ("a", "b"):
            raise ValueError(f"{where}: base must be \"a\" or \"b\", found {item.base!r}")
        result.append(item)
    return result


# --- settings ----------------------------------------------------------------------------


def settings_of(preset: Preset) -> dict[str, Any]:
    """The preset's training settings as dotted keys (``model.hidden``), the seed left out."""
    doc = preset_to_dict(preset)
    return {f"{section}.{key}": value for section in SETTING_SECTIONS for key, value in doc[section].items()
            if (section, key) != ("data", "seed")}


def differing(a: Preset, b: Preset) -> list[str]:
    """Every setting (dotted key) whose value differs between ``a`` and ``b``, sorted."""
    sa, sb = settings_of(a), settings_of(b)
    return sorted(k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k))


def confounds(a: Preset, b: Preset, factor: Sequence[str]) -> list[str]:
    """The settings that differ between the two rows besides the named factor."""
    return [k for k in differing(a, b) if k not in factor]


def controlled_variant(preset: Preset, changes: dict[str, Any]) -> Preset:
    """``preset`` with the settings ``changes`` (dotted keys; ``None`` removes an optional
    one) and nothing else changed, validated as a preset file is: a variant, as
    ``fnn-tui run --set`` makes it (:func:`fnn_tui.core.variants.apply_settings`)."""
    from fnn_tui.core.variants import apply_settings

    return apply_settings(preset, changes)


def describe_changes(changes: dict[str, Any]) -> str:
    """``model.hidden=[40, 40]``, as the variant's label."""
    def show(v: Any) -> str:
        if v is None:
            return "none"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(str(x) for x in v) + "]"
        return f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={show(v)}" for k, v in changes.items())


@dataclass(frozen=True)
class Sides:
    """The presets a conclusion compares: as the notes did, and controlled (when confounded)."""

    a: Preset
    b: Preset
    controlled_a: Preset | None  # the controlled pair; None when nothing but the factor differs
    controlled_b: Preset | None
    changes: dict[str, Any]  # what the controlled variant changes in the base row

    def presets(self) -> list[Preset]:
        """Every preset to train, each study once."""
        seen: dict[str, Preset] = {}
        for p in (self.a, self.b, self.controlled_a, self.controlled_b):
            if p is not None:
                seen.setdefault(p.study_digest(), p)
        return list(seen.values())


def sides(c: Conclusion, a: Preset, b: Preset) -> Sides:
    """The presets of ``c`` given its two rows (overrides such as epochs already applied)."""
    if not confounds(a, b, c.factor):
        return Sides(a, b, None, None, {})
    base, other = (a, b) if c.base == "a" else (b, a)
    sa, so = settings_of(base), settings_of(other)
    changes = {k: so.get(k) for k in c.factor if sa.get(k) != so.get(k)}
    variant = controlled_variant(base, changes)
    ca, cb = (base, variant) if c.base == "a" else (variant, base)
    return Sides(a, b, ca, cb, changes)


# --- verdicts ----------------------------------------------------------------------------


class VerdictKind(str, Enum):
    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    NOT_SHOWN = "not shown"
    NEEDS_SEEDS = "needs seeds"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    text: str  # e.g. "needs about 24 seeds"
    why: str  # the statistic behind it

    @property
    def label(self) -> str:
        return self.text


def _stat(m: MetricComparison) -> str:
    p = m.p_better
    prob = (f"P(A better) {p.value:.2f} [{p.low:.2f}, {p.high:.2f}]" if p is not None
            else f"P(A better) {m.p_better_value:.2f}" if m.p_better_value is not None else "no P")
    dead = f"dead {m.a.dead}/{m.a.n} vs {m.b.dead}/{m.b.n}"
    if m.fisher_dead is not None and (m.a.dead or m.b.dead):
        dead += f" (Fisher p {m.fisher_dead:.2g})"
    div = f", diverged {m.a.diverged}/{m.a.n} vs {m.b.diverged}/{m.b.n}" if m.a.diverged or m.b.diverged else ""
    return f"{prob}; n = {m.a.n}/{m.b.n}; {dead}{div}"


def verdict(direction: str, margin: float, m: MetricComparison) -> Verdict:
    """The verdict on one comparison, by the rules in the module docstring."""
    why = _stat(m)
    if m.a.n == 0 or m.b.n == 0:
        return Verdict(VerdictKind.NOT_RUN, "not run", f"n = {m.a.n}/{m.b.n}")
    if m.a.finished == 0 and m.b.finished == 0:
        return Verdict(VerdictKind.NOT_SHOWN, "not shown: all diverged", why)
    if m.a.dead + m.a.diverged == m.a.n and m.b.dead + m.b.diverged == m.b.n:
        return Verdict(VerdictKind.NOT_SHOWN, "not shown: all dead", why)
    p = m.p_better
    if p is None:
        return Verdict(VerdictKind.NEEDS_SEEDS, "needs seeds: n = 1", why)
    if direction == "equal":
        low, high = 0.5 - margin, 0.5 + margin
        if low <= p.low and p.high <= high:
            return Verdict(VerdictKind.SUPPORTED, "supported", why)
        if p.low > high or p.high < low:
            return Verdict(VerdictKind.CONTRADICTED, "contradicted", why)
        return Verdict(VerdictKind.NOT_SHOWN, "not shown", why)
    lo, hi, value = (p.low, p.high, p.value) if direction == "better" else (1 - p.high, 1 - p.low, 1 - p.value)
    if lo > 0.5:
        return Verdict(VerdictKind.SUPPORTED, "supported", why)
    if hi < 0.5:
        return Verdict(VerdictKind.CONTRADICTED, "contradicted", why)
    n = min(m.a.n, m.b.n)
    if value > 0.5 and m.seeds_needed is not None and m.seeds_needed > n:
        return Verdict(VerdictKind.NEEDS_SEEDS, f"needs about {m.seeds_needed} seeds", why)
    return Verdict(VerdictKind.NOT_SHOWN, "not shown", why)
