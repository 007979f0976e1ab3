"""Commands that train or watch runs: ``run``, ``resume``, ``active`` (the live queue),
``attach``, ``stop`` and the hidden ``worker`` (the background process)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from fnn_tui.cli.common import (
    EXIT_BAD_INPUT,
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
    literal,
    out,
    run_id_arg,
    settings,
)


@app.command(epilog=examples(("fnn-tui run 8 --epochs 3", "preset exp08 for three epochs"),
                             ("fnn-tui run 8 --set lr=0.05 --set hidden=[50,50]", "a variant of exp08"),
                             ("fnn-tui run --all --seeds 10 --jobs 0", "every preset over seeds 0-9, one process per core")))
def run(
    ctx: typer.Context,
    presets: Annotated[list[str] | None, typer.Argument(help="Preset names, numbers or TOML files.",
                                                        metavar="PRESET", show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Run every valid preset in order.")] = False,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    seed: Annotated[int | None, typer.Option("--seed", help="Override the data/init seed.", metavar="N")] = None,
    seeds: Annotated[str | None, typer.Option(
        "--seeds",
        help="Train several seeds of each preset: N (seeds 0..N-1), a list 3,7,11 or a range 0-9. "
        "Seeds already finished or diverged with the same settings are skipped, stopped ones resumed.",
        metavar="SEEDS")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Override the number of epochs.", metavar="N")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="Override the number of samples.", metavar="N")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Change a setting (repeatable): KEY=VALUE with a full key (training.lr=0.05) or a short one "
        "(lr=0.05, hidden=[50,50], norm=mean-var, clip=none); checked as a preset file is.",
        metavar="KEY=VALUE")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Tasks trained at once, one process each (0: one per core).", min=0,
                                      metavar="N")] = 1,
    again: Annotated[bool, typer.Option("--again", help="Train seeds already done with these settings once more "
                                        "(stored as repeats).")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Train in a background process that outlives this terminal.")] = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Train presets, store every epoch, and print the runs trained (run id, seed, numbers).

    A seed already finished or diverged with the same settings is not trained again (say
    --again for a repeat); one queued or training in another process is left to it; a
    stopped one is resumed.
    """
    from fnn_tui.core.group import planned_runs
    from fnn_tui.core.trainer import RunOptions, engine_cost
    from fnn_tui.runs.plan import plan

    s = settings(ctx)
    with bad_input(s):
        seed_list = _seeds(seed, seeds)
        catalog = s.catalog()
        if all_:
            chosen = catalog.valid()
        elif presets:
            chosen = [catalog.get(p) for p in presets]
        else:
            err.print("[red]error:[/red] name at least one preset, or use --all", markup=True)
            raise typer.Exit(EXIT_BAD_INPUT)
        chosen = [p.with_overrides(epochs=epochs, samples=samples, seed=seed) for p in chosen]
        if set_:
            from fnn_tui.core.variants import apply_settings, parse_settings

            changes = parse_settings(set_)
            chosen = [apply_settings(p, changes) for p in chosen]
        options = RunOptions(device=device, engine=engine)
        runs = _runs(chosen, seed_list)
        resolved = planned_runs(runs, options)  # bad device/engine: an error before any work
        warnings = []
        for p, run in zip(runs, resolved):
            note = engine_cost(p, run)
            if note.warn and note.text not in warnings:
                warnings.append(note.text)
        from fnn_tui.store.runs import Store

        with Store(s.home) as store:  # a damaged, read-only, locked or lost store: one line before any work
            pass
        check_executor(executor, ray_address, connect=not detach)  # Ray missing or not answering: before any work
        with Store(s.home) as store:
            planned = plan(store, chosen, options, seed_list, again=again)  # bad device/engine: before any work
        if not planned.tasks:
            err.print(f"nothing to train: {planned.summary()}; `fnn-tui report` sums them up", soft_wrap=True)
            raise typer.Exit(EXIT_OK)
        if planned.summary():
            skipped = (planned.done and not planned.repeats) or planned.active
            err.print(f"skipped: {planned.summary()}" if skipped else planned.summary(), soft_wrap=True)
        for line in warnings:  # what the device choice costs, before it is paid
            err.print(f"[yellow]warning:[/yellow] {literal(line)}", markup=True, soft_wrap=True)
        say_gpu_groups(planned.tasks, options)
        jobs = jobs or os.cpu_count() or 1
        if detach:
            from fnn_tui.runs.background import launch

            launched = launch(s.home, planned.tasks, jobs, executor=executor, address=ray_address)
            ids = " ".join(str(i) for i in launched.run_ids)
            out.print(f"run {ids} training in the background (pid {launched.process.pid}); "
                      f"`fnn-tui attach {launched.run_ids[0]}` follows it, `fnn-tui stop {launched.run_ids[0]}` stops it")
            _say_device_choice(runs, options, resolved)
            raise typer.Exit(EXIT_OK)
        from fnn_tui.cli.progress import train_here

        ids, code = train_here(s.home, planned.tasks, jobs, err, executor=executor, address=ray_address)
        _print_results(s, ids)
        _say_device_choice(runs, options, resolved)  # after the work: an error stays the one line
    raise typer.Exit(code)


def _runs(chosen: list, seeds: list[int] | None) -> list:
    """Each run the request names (a preset at one seed), once."""
    runs = {}
    for p in chosen:
        for seed in [p.data.seed] if seeds is None else seeds:
            run = p.with_overrides(seed=seed)
            runs.setdefault(run.digest(), run)
    return list(runs.values())


def say_gpu_groups(tasks: list, options) -> None:
    """One line on stderr before the work when the GPU group engine trains some of ``tasks``
    (how many lanes), or when ``--device cuda`` wanted it for several runs and it cannot run here."""
    from fnn_tui.core.engines import CUDA_GROUP_ENGINE

    groups = [t for t in tasks if t.engine == CUDA_GROUP_ENGINE]
    if groups:
        sizes = sorted({t.lanes for t in groups}, reverse=True)
        lanes = (f"{groups[0].lanes} {'lane' if groups[0].lanes == 1 else 'lanes'}" if len(groups) == 1
                 else f"{len(groups)} groups of {' or '.join(map(str, sizes))} lanes")
        picked = "device auto picked " if options.device.strip().lower() == "auto" else ""
        err.print(f"{picked}{groups[0].device}: the {CUDA_GROUP_ENGINE} GPU group engine, {lanes} "
                  f"(a lane per seed)", soft_wrap=True)
        return
    if options.device.strip().lower().startswith("cuda") and sum(t.lanes for t in tasks) > 1:
        from fnn_tui.core.engines.cuda_group import unusable_reason

        why = unusable_reason()
        if why is not None:
            err.print(f"the {CUDA_GROUP_ENGINE} GPU group engine cannot run here ({literal(why)}): "
                      "each seed trains alone on the PyTorch engine", soft_wrap=True)


def _say_device_choice(chosen: list, options, resolved: list) -> None:
    """One line on stderr per distinct choice of ``--device auto``: what it picked and why
    (the GPU group engine's choice is said by :func:`say_gpu_groups`)."""
    from fnn_tui.core.devices import device_choice
    from fnn_tui.core.engines import CUDA_GROUP_ENGINE

    said = []
    for preset, run in zip(chosen, resolved):
        if run.engine == CUDA_GROUP_ENGINE:
            continue
        why = device_choice(options.device, batch_size=preset.training.batch_size, resolved=run.device)
        if why and why not in said:
            said.append(why)
            err.print(literal(why), soft_wrap=True)


def _seeds(seed: int | None, seeds: str | None) -> list[int] | None:
    """The seeds asked for (``None``: one run per preset, as the preset or --seed says)."""
    from fnn_tui.runs.plan import SeedsError, parse_seeds

    if seeds is None:
        return None
    if seed is not None:
        err.print("[red]error:[/red] --seed and --seeds together: use --seeds alone (--seeds 7-7 is seed 7)",
                  markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        return parse_seeds(seeds)
    except SeedsError as exc:
        err.print(f"[red]error:[/red] {literal(str(exc))}", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _print_results(s: Settings, ids: list[int]) -> None:
    from fnn_tui.cli.render import trained_table
    from fnn_tui.report.export import result_row
    from fnn_tui.report.studies import variant_names
    from fnn_tui.store.runs import Store

    with Store(s.home) as store:
        records = [r for r in (store.get_run(i) for i in ids) if r is not None]
    records.sort(key=lambda r: (r.number, r.preset, r.seed, r.id))  # the notes' table order
    if records:
        names = variant_names(s.catalog(), records)
        out.print(trained_table([result_row(r, names[r.id]) for r in records]))


@app.command(epilog=examples(("fnn-tui resume 12", "continue run 12 where it stopped"),
                             ("fnn-tui resume 12 --device cpu", "the same, on the CPU")))
def resume(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="The run's id (see `fnn-tui runs`).", metavar="RUN",
                                          callback=run_id_arg, show_default=False)],
    device: Annotated[str | None, typer.Option("--device", help="Continue on another device (default: the run's).",
                                               metavar="DEVICE")] = None,
) -> None:
    """Continue an interrupted, crashed, cancelled or failed run from its last checkpoint."""
    from fnn_tui.cli.progress import resume_here

    s = settings(ctx)
    with bad_input(s):
        code = resume_here(s.home, run_id, device, err)
        _print_results(s, [run_id])
    raise typer.Exit(code)


@app.command()
def active(ctx: typer.Context) -> None:
    """Runs queued or training now (in this store), with where they are (this was `fnn-tui runs` once)."""
    from fnn_tui.cli.render import runs_table
    from fnn_tui.runs.liveness import reap
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    with bad_input(s):
        with Store(s.home, reading=True) as store:
            reap(store)
            going = store.active_runs()
    if not going:
        err.print("no runs are going; `fnn-tui runs` lists the stored ones")
        return
    out.print(runs_table(going, title="Active runs"))


@app.command()
def attach(
    ctx: typer.Context,
    run_id: Annotated[int | None, typer.Argument(help="The run to follow (default: the newest active one).",
                                                 metavar="RUN", show_default=False,
                                                 callback=run_id_arg)] = None,
) -> None:
    """Follow a background run live; Ctrl-C leaves it running."""
    from fnn_tui.cli.progress import attach_here
    from fnn_tui.runs.liveness import reap
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    with bad_input(s):
        if run_id is None:
            with Store(s.home) as store:
                reap(store)
                active = store.active_runs()
            if not active:
                err.print("[red]error:[/red] no runs are going; `fnn-tui runs` lists the stored ones", markup=True)
                raise typer.Exit(EXIT_BAD_INPUT)
            run_id = active[-1].id
        code = attach_here(s.home, run_id, err)
        _print_results(s, [run_id])
    raise typer.Exit(code)


@app.command()
def stop(ctx: typer.Context, run_id: Annotated[int, typer.Argument(help="The run to stop.", metavar="RUN", show_default=False,
                                                               callback=run_id_arg)]) -> None:
    """Stop a background run cleanly (it is stored as cancelled, finished epochs kept)."""
    from fnn_tui.runs.background import NotRunningError, stop_run

    s = settings(ctx)
    try:
        message = stop_run(s.home, run_id)
    except NotRunningError as exc:
        err.print(f"[red]error:[/red] {literal(exc)}", markup=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    err.print(message)


@app.command(hidden=True)
def worker(ctx: typer.Context, items: Annotated[list[str], typer.Argument(metavar="TASK")],
           jobs: Annotated[int, typer.Option("--jobs", min=1, metavar="N")] = 1,
           executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None) -> None:
    """Train planned tasks (the background process)."""
    from fnn_tui.runs.worker import main as worker_main

    raise typer.Exit(worker_main(settings(ctx).home, items, jobs, executor=executor, address=ray_address))
