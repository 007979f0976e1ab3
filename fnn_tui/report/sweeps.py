"""A stored sweep as the report sees it: its variants, their runs over the sweep's seeds, one
row per variant (n, dead, diverged, median and range of each metric), the best variant
marked, and the estimate of what is left to train.

A variant's runs are the stored runs of its study (:meth:`Preset.study_digest`) whose seed
is one of the sweep's, the newest finished or diverged one per seed; nothing else links a
run to a sweep, so the report of a sweep run again, or resumed after a kill, is the report
of the same runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fnn_tui.core.presets import Preset, parse_preset
from fnn_tui.core.status import RunStatus
from fnn_tui.core.variants import Grid, _show, apply_settings, describe
from fnn_tui.report.reproduction import METRICS, Spread, spread_of
from fnn_tui.store.runs import RunRecord, Store
from fnn_tui.store.sweeps import SweepRecord, get_sweep, save_sweep

FORMATS = ("md", "csv", "json")
RANKED_BY = "test_loss"  # the best variant: the lowest median test loss over its seeds


@dataclass(frozen=True)
class Sweep:
    """A stored sweep, resolved: its base preset, its grid, seeds and every variant."""

    name: str
    base: Preset
    grid: Grid
    seeds: tuple[int, ...]
    settings: tuple[dict[str, Any], ...]  # each variant's grid settings, in grid order
    variants: tuple[Preset, ...]

    @property
    def swept(self) -> list[str]:
        """The keys with more than one value (the others are shared by every variant)."""
        return [key for key, values, _ in self.grid.axes if len(values) > 1]


def grid_name(base: Preset, grid: Grid) -> str:
    """A new sweep's default name, ``exp08-lr-hidden``: the base preset and the short names
    of the keys it sweeps (of every key when none has several values)."""
    keys = [k for k, values, _ in grid.axes if len(values) > 1] or [k for k, _, _ in grid.axes]
    return "-".join([base.name, *(k.split(".", 1)[1] for k in keys)])


def store_new_sweep(store: Store, base: Preset, grid: Grid, seeds: Iterable[int]) -> Sweep:
    """Store the sweep of ``grid`` on ``base`` under its default name, or under the first free
    ``NAME-2``, ``NAME-3``... when that name holds another grid or base; the same sweep made
    again is the stored one, with the new seeds added. (The app's settings form; the command
    line asks for ``--name`` instead.)"""
    base = base.with_overrides(seed=0)
    first = name = grid_name(base, grid)
    n = 1
    while (stored := get_sweep(store, name)) is not None and \
            (stored.base_toml, stored.grid) != (base.to_toml(), grid.to_data()):
        n += 1
        name = f"{first}-{n}"
    seeds = sorted(set(seeds) | set(stored.seeds if stored is not None else ()))
    return resolve(save_sweep(store, name=name, preset=base.name, base_toml=base.to_toml(), grid=grid.to_data(),
                              seeds=seeds))


def resolve(record: SweepRecord) -> Sweep:
    """The sweep's variants, from its stored base and grid (validated again: a stored sweep
    whose settings no longer validate is a one-line error, like a broken preset)."""
    base = parse_preset(record.base_toml, source=f"sweep {record.name}", name=record.preset)
    grid = Grid.from_data(record.grid)
    settings = grid.combinations()
    return Sweep(name=record.name, base=base, grid=grid, seeds=tuple(record.seeds), settings=tuple(settings),
                 variants=tuple(apply_settings(base, s) for s in settings))


@dataclass(frozen=True)
class VariantRow:
    """One variant over the sweep's seeds."""

    settings: dict[str, Any]  # the swept settings only
    study: str
    finished: int
    dead: int
    diverged: int
    missing: int  # seeds not finished or diverged yet
    metrics: dict[str, Spread]
    runs: tuple[int, ...]  # the run ids counted
    best: bool = False

    @property
    def name(self) -> str:
        """The swept settings in the words of ``--set``."""
        return describe(self.settings) or "(the base)"


@dataclass(frozen=True)
class SweepReport:
    """The report of one sweep."""

    name: str
    preset: str
    shared: str  # the settings every variant has (the base's overrides and one-value keys)
    seeds: tuple[int, ...]
    rows: tuple[VariantRow, ...]
    caution: str  # "" unless the best's spread overlaps the runner-up's


def chosen_runs(store: Store, sweep: Sweep) -> dict[str, dict[int, RunRecord]]:
    """For each variant's study, its newest finished or diverged run per sweep seed."""
    wanted = {v.study_digest() for v in sweep.variants}
    seeds = set(sweep.seeds)
    chosen: dict[str, dict[int, RunRecord]] = {s: {} for s in wanted}
    for record in store.list_runs(sweep.base.name):  # newest first
        if record.study in wanted and record.seed in seeds and record.status.final:
            chosen[record.study].setdefault(record.seed, record)
    return chosen


def _row(settings: dict[str, Any], study: str, runs: Iterable[RunRecord], seeds: int) -> VariantRow:
    runs = list(runs)
    finished = [r for r in runs if r.status == RunStatus.FINISHED and r.final is not None]
    metrics = {}
    for metric in METRICS:
        values = [v for r in finished if (v := getattr(r.final, metric)) is not None and not math.isnan(v)]
        metrics[metric] = spread_of(values)
    return VariantRow(
        settings=settings, study=study, finished=len(finished),
        dead=sum(1 for r in finished if r.final is not None and r.final.dead),
        diverged=sum(1 for r in runs if r.status == RunStatus.DIVERGED), missing=seeds - len(runs),
        metrics=metrics, runs=tuple(sorted(r.id for r in runs)),
    )


def sweep_report(store: Store, sweep: Sweep, catalog_base: Preset | None = None) -> SweepReport:
    """One row per variant; the best (lowest median test loss) marked, with a caution when
    its range overlaps the runner-up's."""
    chosen = chosen_runs(store, sweep)
    swept = set(sweep.swept)
    rows = []
    for settings, variant in zip(sweep.settings, sweep.variants):
        study = variant.study_digest()
        rows.append(_row({k: v for k, v in settings.items() if k in swept}, study, chosen[study].values(),
                         len(sweep.seeds)))
    ranked = sorted((r for r in rows if r.metrics[RANKED_BY].n), key=lambda r: r.metrics[RANKED_BY].median)
    caution = ""
    if ranked:
        best = ranked[0]
        rows = [VariantRow(**{**r.__dict__, "best": r is best}) for r in rows]
        if len(ranked) > 1:
            a, b = best.metrics[RANKED_BY], ranked[1].metrics[RANKED_BY]
            if a.max is not None and b.min is not None and a.max >= b.min:
                caution = (f"the best variant's test loss range ({_num(a.min)}–{_num(a.max)}) overlaps the "
                           f"runner-up's ({ranked[1].name}: {_num(b.min)}–{_num(b.max)}): more seeds may reorder them")
            if best.finished < 3:
                caution = caution or f"the best variant stands on {best.finished} finished seed(s): more seeds tell more"
    return SweepReport(name=sweep.name, preset=sweep.base.name, shared=shared_text(sweep, catalog_base), seeds=sweep.seeds,
                       rows=tuple(rows), caution=caution)


# --- renderers ---------------------------------------------------------------------------


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def cell(s: Spread) -> str:
    """A metric's cell: ``median (min–max)``, or the one value, or a dash."""
    if s.n == 0:
        return "—"
    if s.n == 1 or s.min == s.max:
        return _num(s.median)
    return f"{_num(s.median)} ({_num(s.min)}–{_num(s.max)})"


def shared_text(sweep: Sweep, catalog_base: Preset | None = None) -> str:
    """The settings every variant of ``sweep`` has, in the words of ``--set``: the base's
    overrides against the catalog's preset (``samples=1000, epochs=20``) and the one-value keys."""
    shared_settings = {k: values[0] for k, values, _ in sweep.grid.axes if len(values) == 1}
    base_diff = ""
    if catalog_base is not None:
        from fnn_tui.core.variants import difference

        base_diff = difference(catalog_base, sweep.base)
    return ", ".join(p for p in (base_diff, describe(shared_settings)) if p)


def shape_text(sweep: Sweep | Grid) -> str:
    """The swept keys and how many values each: ``lr 5 x hidden 2``."""
    grid = sweep if isinstance(sweep, Grid) else sweep.grid
    return " x ".join(f"{k.split('.', 1)[1]} {len(v)}" for k, v, _ in grid.axes if len(v) > 1) or "one variant"


def seeds_text(seeds: Iterable[int]) -> str:
    """Seeds as ``--seeds`` takes them: ``0-9`` for a run of them, else a list."""
    seeds = sorted(seeds)
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def title(report: SweepReport) -> str:
    """The line that says what the sweep is."""
    shared = f" ({report.shared})" if report.shared else ""
    variants, seeds = len(report.rows), len(report.seeds)
    return (f"Sweep {report.name}: {report.preset}{shared}, {variants} variant{'' if variants == 1 else 's'} x "
            f"{seeds} seed{'' if seeds == 1 else 's'} ({seeds_text(report.seeds)})")


def render_markdown(report: SweepReport) -> str:
    """A title, a pipe table (one row per variant, the best in bold) and the notes under it."""
    header = ["variant", "runs n/dead/div", *[m.replace("_", " ") for m in METRICS]]
    lines = [f"{title(report)}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in report.rows:
        name = f"**{r.name}** (best)" if r.best else r.name
        missing = f" +{r.missing} to do" if r.missing else ""
        cells = [name, f"{r.finished}/{r.dead}/{r.diverged}{missing}", *[cell(r.metrics[m]) for m in METRICS]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Each cell: median (min–max) over the variant's finished seeds; n/dead/div: finished, of them "
                  "dead, diverged. The best variant has the lowest median test loss."]
    if report.caution:
        lines += ["", f"Caution: {report.caution}."]
    return "\n".join(lines) + "\n"


def _flat(r: VariantRow) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": r.name}
    row.update({k.split(".", 1)[1]: _show(v) for k, v in r.settings.items()})
    row.update(finished=r.finished, dead=r.dead, diverged=r.diverged, missing=r.missing, best=r.best)
    for metric in METRICS:
        s = r.metrics[metric]
        row.update({f"{metric}_median": s.median, f"{metric}_min": s.min, f"{metric}_max": s.max})
    return row


def render_csv(report: SweepReport) -> str:
    """One line per variant: its settings, counts and each metric's median, min and max."""
    rows = [_flat(r) for r in report.rows]
    out = io.StringIO()
    fields = list(rows[0]) if rows else ["variant"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return out.getvalue()


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def render_json(report: SweepReport) -> str:
    """The report as one JSON object."""
    doc = {
        "sweep": report.name, "preset": report.preset, "shared": report.shared, "seeds": list(report.seeds),
        "caution": report.caution,
        "variants": [{
            "variant": r.name, "settings": {k: v for k, v in r.settings.items()}, "finished": r.finished,
            "dead": r.dead, "diverged": r.diverged, "missing": r.missing, "best": r.best, "runs": list(r.runs),
            "metrics": {m: {"n": s.n, "median": _finite(s.median), "min": _finite(s.min), "max": _finite(s.max)}
                        for m, s in r.metrics.items()},
        } for r in report.rows],
    }
    return json.dumps(doc, indent=2) + "\n"


def render(report: SweepReport, fmt: str) -> str:
    """The report in ``md``, ``csv`` or ``json``."""
    return {"md": render_markdown, "csv": render_csv, "json": render_json}[fmt](report)


# --- the time a plan will take ---------------------------------------------------------------


def _params(preset: Preset) -> int:
    sizes = preset.model.sizes
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def measured_cost(store: Store) -> tuple[float, int] | None:
    """Seconds per lane-step per parameter, as this store's finished runs measured it (their
    wall time over their steps), and how many groups it stands on; ``None`` without any.

    The runs of one group share one wall time (they were created in the same second, with
    the same settings but the seed), so a group counts once, over its padded lanes."""
    from fnn_tui.core.group import padded_lanes

    groups: dict[tuple[str, int], list[RunRecord]] = {}
    for r in store.list_runs(statuses=(RunStatus.FINISHED,)):
        if r.wall_seconds and r.steps_per_epoch and r.epochs_done and r.engine == "fused":
            groups.setdefault((r.study, int(r.started_at)), []).append(r)
    costs = []
    for runs in groups.values():
        r = runs[0]
        try:
            preset = parse_preset(r.preset_toml, source=f"run {r.id}", name=r.preset)
        except ValueError:
            continue
        lanes = padded_lanes(len(runs)) if len(runs) > 1 else 1
        wall = max(x.wall_seconds or 0.0 for x in runs)
        costs.append(wall / (r.epochs_done * r.steps_per_epoch * lanes * _params(preset)))
    return (statistics.median(costs), len(costs)) if costs else None


def estimate_seconds(cost: float, work: list[tuple[Preset, int, int]]) -> float:
    """The time of ``work``: (variant, seeds to train, epochs left each), each variant's
    seeds in groups of up to 16 lanes, at ``cost`` seconds per lane-step per parameter."""
    from fnn_tui.core.group import default_lanes, padded_lanes

    total = 0.0
    most = default_lanes()
    for preset, seeds, epochs in work:
        steps = epochs * math.ceil(preset.data.n_train / preset.training.batch_size)
        while seeds > 0:
            take = min(seeds, most)
            lanes = padded_lanes(take) if take > 1 else 1
            total += cost * steps * lanes * _params(preset)
            seeds -= take
    return total
