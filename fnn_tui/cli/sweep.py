"""The ``sweep`` and ``sweeps`` commands: a grid of settings x seeds of one preset, stored by
name, trained until every (variant, seed) pair is done.

A sweep is checked whole before any work (every key, value and range, every variant, the
grid's size, the device and engine); then it is stored, and the pairs not done yet are
planned and trained exactly as ``run --seeds`` trains them (:func:`train_sweep`, the one
place a sweep trains). Its runs are ordinary runs of the base preset: a sweep stopped or
killed, run again, resumes its stopped runs from their checkpoints and starts the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fnn_tui.cli.common import (
    EXIT_OK,
    DeviceOpt,
    EngineOpt,
    ExecutorOpt,
    RayAddressOpt,
    Settings,
    app,
    bad_input,
    check_executor,
    err,
    examples,
    fail,
    literal,
    out,
    say_figures_written,
    settings,
)

if TYPE_CHECKING:
    from fnn_tui.core.presets import Preset
    from fnn_tui.core.trainer import RunOptions
    from fnn_tui.report.sweeps import Sweep
    from fnn_tui.store.runs import Store


def _seed_list(text: str) -> list[int]:
    from fnn_tui.runs.plan import SeedsError, parse_seeds

    try:
        return parse_seeds(text)
    except SeedsError as exc:
        raise fail(str(exc)) from None


@app.command(epilog=examples(
    ("fnn-tui sweep 8 --set lr=0.001,0.01,0.1 --set hidden=[20,20,30],[50,50] --seeds 10", "6 variants x 10 seeds"),
    ("fnn-tui sweep 8 --set lr=log(1e-3,1e-1,5) --dry-run", "the plan and its time, nothing trained"),
    ("fnn-tui sweep sweeps/lr.toml", "a sweep kept in a file ([sweep] table)"),
    ("fnn-tui sweep exp08-lr-hidden", "a stored sweep again: only the pairs not done"),
))
def sweep(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        help="A preset (name, number or TOML file) with --set, a sweep file (\\[sweep] table), or a stored sweep's name.",
        metavar="PRESET|FILE|SWEEP", show_default=False)],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUES (repeatable): one value, a list 0.001,0.01,0.1 (hidden=[20,20,30],[50,50]), "
        "log(a,b,n) or lin(a,b,n); keys as in `run --set`.", metavar="KEY=VALUES")] = None,
    seeds: Annotated[str | None, typer.Option(
        "--seeds", help="N (seeds 0..N-1), a list 3,7,11 or a range 0-9 (default: 1, or the stored sweep's).",
        metavar="SEEDS")] = None,
    name: Annotated[str | None, typer.Option("--name", help="The sweep's name (default: PRESET-KEY-KEY...).",
                                             metavar="NAME")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Override the number of epochs.", metavar="N")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="Override the number of samples.", metavar="N")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and its estimated time; train and store nothing.")] = False,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    jobs: Annotated[int, typer.Option("--jobs", help="Processes training at once (0: one per core).", min=0,
                                      metavar="N")] = 1,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Train every (variant, seed) pair of a grid of settings not done yet, stored as one sweep."""
    from fnn_tui.core.group import planned_runs
    from fnn_tui.core.trainer import RunOptions
    from fnn_tui.core.variants import check_size
    from fnn_tui.report.sweeps import resolve as resolve_sweep
    from fnn_tui.store.runs import Store
    from fnn_tui.store.sweeps import SweepRecord, get_sweep, save_sweep

    s = settings(ctx)
    with bad_input(s):
        seed_list = _seed_list(seeds) if seeds is not None else None
        stored, fresh = _request(s, target, set_ or [], seed_list, name, epochs, samples)
        check_size(fresh.grid, len(fresh.seeds))
        options = RunOptions(device=device, engine=engine)
        # bad device/engine: an error before any work (the planner's rule: a sweep on a GPU is GPU groups)
        planned_runs([v.with_overrides(seed=s) for v in fresh.variants for s in fresh.seeds], options)
        with Store(s.home, reading=dry_run) as store:
            if stored is None:
                stored = get_sweep(store, fresh.name) if not store.read_only else None
                if stored is not None and (stored.base_toml, stored.grid) != (fresh.base.to_toml(), fresh.grid.to_data()):
                    raise fail(f"a sweep named {fresh.name!r} is stored with another grid or base: give --name NAME "
                               f"for this one, or `fnn-tui sweep {fresh.name}` runs that one again")
            if dry_run:
                _print_plan(store, fresh, jobs, _catalog_base(s, fresh.base.name))
                raise typer.Exit(EXIT_OK)
            record: SweepRecord = save_sweep(store, name=fresh.name, preset=fresh.base.name,
                                             base_toml=fresh.base.to_toml(), grid=fresh.grid.to_data(),
                                             seeds=list(fresh.seeds))
        sweep_ = resolve_sweep(record)
        check_executor(executor, ray_address)  # Ray missing or not answering: before any training
        code = train_sweep(s.home, sweep_, options, jobs or os.cpu_count() or 1, executor=executor, address=ray_address)
        _print_report(s, sweep_.name)
    raise typer.Exit(code)


def _request(s: Settings, target: str, sets: list[str], seeds: list[int] | None, name: str | None,
             epochs: int | None, samples: int | None):
    """What the command line asks for: (the stored sweep it names, or None; the sweep to run)."""
    from fnn_tui.core.sweepfile import read_sweep_file
    from fnn_tui.core.variants import Grid, check_size, parse_grid
    from fnn_tui.report.sweeps import grid_name, resolve
    from fnn_tui.store.runs import Store
    from fnn_tui.store.sweeps import SweepRecord, get_sweep

    path = Path(target)
    if target.endswith(".toml") or path.is_file():
        text = read_sweep_file(path)
        if sets:
            raise fail(f"{target}: the sweep file gives the settings; leave out --set (or add them to its [sweep.grid])")
        base = s.catalog().get(text.preset)
        grid: Grid = text.grid
        seeds = seeds if seeds is not None else _seed_list(text.seeds)
        name = name or text.name
    elif not sets:
        from fnn_tui.store.db import DB_NAME

        record = None
        if (s.home / DB_NAME).exists():
            with Store(s.home, reading=True) as store:
                record = get_sweep(store, target)
        if record is None:
            raise fail(f"no stored sweep named {target!r}: give a preset with --set KEY=VALUES (fnn-tui sweep 8 "
                       "--set lr=0.001,0.01), a sweep file, or see `fnn-tui sweeps`")
        if epochs is not None or samples is not None or name is not None:
            raise fail(f"sweep {target!r} is stored with its settings: --epochs, --samples and --name do not apply "
                       "to it (make a new sweep for other settings)")
        if seeds is not None:
            record = SweepRecord(**{**record.__dict__, "seeds": sorted(set(record.seeds) | set(seeds))})
        check_size(Grid.from_data(record.grid), len(record.seeds))
        return record, resolve(record)
    else:
        base = s.catalog().get(target)
        grid = parse_grid(sets)
        seeds = seeds if seeds is not None else [0]
    base = base.with_overrides(epochs=epochs, samples=samples, seed=0)
    if not grid.axes:
        raise fail("a sweep needs at least one setting: --set KEY=VALUES")
    name = name or grid_name(base, grid)
    if not name.strip() or not name.isprintable() or len(name) > 200:
        raise fail(f"--name {name!r}: expected a name of printable characters (at most 200)")
    check_size(grid, len(set(seeds)))  # before any variant is made
    record = SweepRecord(id=0, name=name, preset=base.name, base_toml=base.to_toml(), grid=grid.to_data(),
                         seeds=sorted(set(seeds)), created_at=0.0)
    fresh: Sweep = resolve(record)
    return None, fresh


def train_sweep(home: Path, sweep_: Sweep, options: RunOptions, jobs: int, *, executor: str = "local",
                address: str | None = None) -> int:
    """Train the sweep's pairs not done yet, as ``run --seeds`` does: planned
    (:func:`~fnn_tui.runs.plan.plan`; variants of one network share a kernel), then
    :func:`~fnn_tui.cli.progress.train_here`. The one place a sweep trains; returns the exit code."""
    from fnn_tui.cli.progress import train_here
    from fnn_tui.runs.plan import plan
    from fnn_tui.store.runs import Store

    with Store(home) as store:
        planned = plan(store, list(sweep_.variants), options, list(sweep_.seeds))
    total = len(sweep_.variants) * len(sweep_.seeds)
    if not planned.tasks:
        err.print(f"sweep {literal(sweep_.name)}: all {total} runs are done or training"
                  + (f" ({planned.summary()})" if planned.summary() else ""), soft_wrap=True)
        return EXIT_OK
    err.print(f"sweep {literal(sweep_.name)}: training {len(planned.run_ids)} of {total} runs in "
              f"{len(planned.tasks)} {'task' if len(planned.tasks) == 1 else 'tasks'}"
              + (f"; skipped: {planned.summary()}" if planned.summary() else ""), soft_wrap=True)
    from fnn_tui.cli.train import say_gpu_groups

    say_gpu_groups(planned.tasks, options)
    _, code = train_here(home, planned.tasks, jobs, err, executor=executor, address=address)
    return code


def _print_plan(store: Store, sweep_: Sweep, jobs: int, catalog_base: Preset | None = None) -> None:
    """The dry run: variants x seeds, what is done, and the time of the rest (on stdout)."""
    from rich.table import Table

    from fnn_tui.core.trainer import RunOptions
    from fnn_tui.core.variants import describe
    from fnn_tui.report.sweeps import estimate_seconds, measured_cost, seeds_text, shape_text, shared_text
    from fnn_tui.runs.plan import plan

    planned = plan(store, list(sweep_.variants), RunOptions(), list(sweep_.seeds), dry=True)
    total = len(sweep_.variants) * len(sweep_.seeds)
    shared = shared_text(sweep_, catalog_base)

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    out.print(f"sweep {literal(sweep_.name)}: {literal(sweep_.base.name)}{literal(f' ({shared})' if shared else '')}, "
              f"{shape_text(sweep_)} = {count(len(sweep_.variants), 'variant')} x {count(len(sweep_.seeds), 'seed')} "
              f"({seeds_text(sweep_.seeds)}) = {count(total, 'run')}", soft_wrap=True)
    out.print(f"done {len(planned.done)}, training now {len(planned.active)}, to resume {len(planned.resumed)}, "
                  f"to start {len(planned.todo) - len(planned.resumed)}", soft_wrap=True)
    todo: dict[str, list[int]] = {}
    work: list[tuple[Preset, int, int]] = []
    by_study = {v.study_digest(): v for v in sweep_.variants}
    for preset, left in planned.todo:
        todo.setdefault(preset.study_digest(), []).append(left)
    for study, epochs in todo.items():
        variant = by_study[study]
        for left in sorted(set(epochs)):
            work.append((variant, epochs.count(left), left))
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("variant")
    table.add_column("to train", justify="right")

    for combo, variant in zip(sweep_.settings, sweep_.variants):
        swept = {k: v for k, v in combo.items() if k in sweep_.swept}
        table.add_row(literal(describe(swept) or "(the base)"), f"{len(todo.get(variant.study_digest(), []))}/"
                      f"{len(sweep_.seeds)}")
    out.print(table)
    cost = measured_cost(store)
    if not work:
        out.print("nothing to train")
    elif cost is None:
        out.print("estimate: none yet; no finished run in this store to measure the engine's cost from "
                      "(train one, e.g. `fnn-tui run 8 --epochs 3`)", soft_wrap=True)
    else:
        per, groups = cost
        seconds = estimate_seconds(per, work)
        if jobs > 1:
            seconds /= min(jobs, len(work))
        out.print(f"estimate: {_duration(seconds)} of training ({'one process' if jobs <= 1 else f'{jobs} processes'}), "
                      f"from {per * 1e9:.3g} ns per lane-step per parameter measured over {groups} "
                      f"{'group' if groups == 1 else 'groups'} of finished runs in this store (kernel compiles not counted)",
                      soft_wrap=True)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _print_report(s: Settings, name: str) -> None:
    from fnn_tui.report.sweeps import render_markdown, resolve, sweep_report
    from fnn_tui.store.runs import Store
    from fnn_tui.store.sweeps import get_sweep

    with Store(s.home) as store:
        record = get_sweep(store, name)
        if record is None:
            return
        sweep_ = resolve(record)
        report = sweep_report(store, sweep_, _catalog_base(s, sweep_.base.name))
    out.print(literal(render_markdown(report)), soft_wrap=True)


def _catalog_base(s: Settings, name: str) -> Preset | None:
    from fnn_tui.core.catalog import UnknownPresetError
    from fnn_tui.core.presets import PresetError

    try:
        return s.catalog().get(name)
    except (UnknownPresetError, PresetError):
        return None


@app.command()
def sweeps(ctx: typer.Context) -> None:
    """The stored sweeps: name, preset, grid, seeds and how many runs are done."""
    from rich.table import Table

    from fnn_tui.report.sweeps import chosen_runs, resolve, seeds_text
    from fnn_tui.store.db import DB_NAME
    from fnn_tui.store.runs import Store
    from fnn_tui.store.sweeps import list_sweeps

    s = settings(ctx)
    with bad_input(s):
        records = []
        if (s.home / DB_NAME).exists():
            with Store(s.home, reading=True) as store:
                records = [(r, resolve(r)) for r in list_sweeps(store)]
                done = {r.name: sum(len(v) for v in chosen_runs(store, sw).values()) for r, sw in records}
    if not records:
        err.print("no sweeps stored yet: try `fnn-tui sweep 8 --set lr=0.001,0.01,0.1 --epochs 3`")
        raise typer.Exit(EXIT_OK)
    table = Table(title="Sweeps", title_justify="left")
    for col in ("name", "preset", "grid", "seeds", "done"):
        table.add_column(col)
    for record, sw in records:
        grid = " x ".join(f"{k.split('.', 1)[1]} {len(v)}" for k, v, _ in sw.grid.axes)
        table.add_row(literal(record.name), literal(record.preset), grid, seeds_text(record.seeds),
                      f"{done[record.name]}/{len(sw.variants) * len(sw.seeds)}")
    out.print(table)


def report_sweep(s: Settings, name: str, fmt: str, output: Path | None, figures: Path | None,
                 command: str | None = None) -> None:
    """``report --sweep NAME``: the sweep's report in ``fmt`` to ``output`` (or stdout), and its
    figures into ``figures``; Markdown links them. ``command`` made them: their provenance
    (None: the terminal's Markdown, which has none)."""
    from fnn_tui.cli.common import write_output
    from fnn_tui.report.figures import MatplotlibMissing
    from fnn_tui.report.provenance import provenance_of, stamped
    from fnn_tui.report.sweeps import render, resolve, sweep_report
    from fnn_tui.store.db import DB_NAME
    from fnn_tui.store.runs import Store
    from fnn_tui.store.sweeps import get_sweep, list_sweeps

    record = None
    known: list[str] = []
    if (s.home / DB_NAME).exists():
        with Store(s.home, reading=True) as store:
            record = get_sweep(store, name)
            known = [r.name for r in list_sweeps(store)]
            if record is not None:
                sweep_ = resolve(record)
                report = sweep_report(store, sweep_, _catalog_base(s, sweep_.base.name))
                made = (provenance_of(command, store, [i for row in report.rows for i in row.runs])
                        if command is not None else None)
    if record is None:
        import difflib

        match = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {match[0]!r}?" if match else "; `fnn-tui sweeps` lists them"
        raise fail(f"no stored sweep named {name!r}{hint}")
    text = stamped(render(report, fmt), fmt, made)
    if figures is not None:
        from fnn_tui.report.sweep_figures import write_sweep_figures

        try:
            written = write_sweep_figures(report, list(sweep_.grid.axes), figures, made=made)
        except MatplotlibMissing as exc:
            raise fail(str(exc)) from None
        say_figures_written(len(written), figures)
        if fmt == "md":
            base = output.parent if output is not None else Path.cwd()
            links = [f"![{report.name}: {key.split('.', 1)[1]}]({os.path.relpath(path, base)})"
                     for key, path in written.items()]
            text += "\n" + "\n\n".join(links) + "\n"
    write_output(text, output, f"the report of sweep {name} ({len(report.rows)} variants)")
