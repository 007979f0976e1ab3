"""The ``compare`` and ``claims`` commands: two studies side by side with statistics, and
the notes' eight conclusions judged over seeds (training what is missing).

The statistics are :mod:`fnn_tui.report.compare`'s, the conclusions and verdict rules
:mod:`fnn_tui.report.claims`'s; this module reads the options, trains through the one
planner call (:func:`_train_missing`) and writes the text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from fnn_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_RUN_FAILED,
    DeviceOpt,
    EngineOpt,
    Settings,
    app,
    bad_input,
    command_line,
    err,
    examples,
    fail,
    literal,
    output_format,
    say_figures_written,
    settings,
    write_output,
)
from fnn_tui.report.claims import SEEDS as CLAIMS_SEEDS

SetOpt = list[str] | None


def parse_changes(items: list[str] | None, option: str) -> dict[str, Any]:
    """``key=value`` settings as ``run --set`` takes them (full or short keys, ``none`` clears
    an optional one), checked the same way; a message names ``option`` (``--set-a``)."""
    from fnn_tui.core.presets import PresetError
    from fnn_tui.core.variants import parse_settings

    try:
        return parse_settings(items or [])
    except PresetError as exc:
        raise PresetError(exc.source.replace("--set", option, 1), exc.problems) from None



@app.command(epilog=examples(("fnn-tui compare 10 11", "rows 10 and 11 over their stored seeds"),
                             ("fnn-tui compare 3 3 --set-b lr=0.5 --metric test_loss",
                              "row 3 against itself with another learning rate")))
def compare(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Side A: a preset name, number or TOML file.", metavar="A",
                                     show_default=False)],
    b: Annotated[str, typer.Argument(help="Side B.", metavar="B", show_default=False)],
    metric: Annotated[list[str] | None, typer.Option("--metric", help="train_loss, train_ratio, test_loss or "
                                                     "test_ratio (repeatable; default: all four).",
                                                     metavar="METRIC")] = None,
    epoch: Annotated[int | None, typer.Option("--epoch", help="Compare at this epoch (default: the last).",
                                              metavar="N", min=1)] = None,
    set_a: Annotated[SetOpt, typer.Option("--set-a", help="Change a setting of A: KEY=VALUE as `run --set` takes it (repeatable).",
                                          metavar="KEY=VALUE")] = None,
    set_b: Annotated[SetOpt, typer.Option("--set-b", help="Change a setting of B.", metavar="KEY=VALUE")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="The studies trained with this many epochs.",
                                               metavar="N")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="The studies trained with this many samples.",
                                                metavar="N")] = None,
    format_: Annotated[str | None, typer.Option("--format", "-f", help="md, csv or json (default: from -o's "
                                                "suffix, else md).", metavar="FORMAT")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (atomically); stdout if "
                                                "omitted.", metavar="FILE")] = None,
) -> None:
    """Compare two studies with statistics: counts, medians, intervals, tests and a power note."""
    from fnn_tui.report.compare import FORMATS, preset_side, render
    from fnn_tui.report.compare import compare as compare_sides
    from fnn_tui.report.provenance import provenance_of, stamped
    from fnn_tui.report.reproduction import METRICS
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    fmt_name = output_format(format_, output, FORMATS)
    for m in metric or []:
        if m not in METRICS:
            raise fail(f"--metric {m}: expected one of {', '.join(METRICS)}")
    with bad_input(s):
        changes_a, changes_b = parse_changes(set_a, "--set-a"), parse_changes(set_b, "--set-b")
        with Store(s.home, reading=True) as store:
            side_a = preset_side(store, s.catalog(), a, changes_a, epochs=epochs, samples=samples, epoch=epoch)
            side_b = preset_side(store, s.catalog(), b, changes_b, epochs=epochs, samples=samples, epoch=epoch)
            made = provenance_of(command_line(ctx), store, [r.run_id for side in (side_a, side_b) for r in side.counted()])
        empty = [(side, name, sets) for side, name, sets in ((side_a, a, set_a), (side_b, b, set_b))
                 if not side.counted()]
        if empty:
            labels = " or ".join(side.label for side, _, _ in empty)
            hint = " and ".join(f"`{_run_command(name, sets or [], epochs, samples)}`" for _, name, sets in empty)
            raise fail(f"no finished or diverged run of {labels} at the {_epoch(epoch)}: "
                       f"compare reads stored runs only; train some first, e.g. {hint}")
        result = compare_sides(side_a, side_b, tuple(metric or METRICS), epoch)
        write_output(stamped(render(result, fmt_name), fmt_name, made), output,
                     f"the comparison of {side_a.label} and {side_b.label}")


def _run_command(name: str, sets: list[str], epochs: int | None, samples: int | None) -> str:
    """The `fnn-tui run` that trains the study a side reads (its --set-a/--set-b as --set)."""
    import shlex

    words = ["fnn-tui", "run", shlex.quote(name), *[f"--set {shlex.quote(item)}" for item in sets]]
    words += [f"--epochs {epochs}"] * (epochs is not None) + [f"--samples {samples}"] * (samples is not None)
    return " ".join([*words, "--seeds 10"])


def _epoch(epoch: int | None) -> str:
    return "last epoch" if epoch is None else f"epoch {epoch}"


def _train_missing(s: Settings, presets: list, seeds: list[int], options, jobs: int) -> int:
    """Train the seeds of ``presets`` the store does not have yet; the exit code of training.

    The one call into the planner, as ``fnn-tui run --seeds`` makes it.
    """
    from fnn_tui.cli.progress import train_here
    from fnn_tui.runs.plan import plan
    from fnn_tui.store.runs import Store

    with Store(s.home) as store:
        planned = plan(store, presets, options, seeds)
    if planned.summary():
        err.print(f"skipped: {planned.summary()}" if planned.done or planned.active else planned.summary(),
                  soft_wrap=True)
    if not planned.tasks:
        return 0
    err.print(f"training {len(planned.run_ids)} runs the conclusions need", soft_wrap=True)
    _, code = train_here(s.home, planned.tasks, jobs, err)
    return code


@app.command(epilog=examples(("fnn-tui claims", "train what is missing over seeds 0-9, then the eight verdicts"),
                             ("fnn-tui claims --no-train -o claims.md --figures figures",
                              "the verdicts from the stored runs, with one figure each")))
def claims(
    ctx: typer.Context,
    seeds: Annotated[str, typer.Option("--seeds", help="The seeds of every study: N (0..N-1), a list or a range.",
                                       metavar="SEEDS")] = str(CLAIMS_SEEDS),
    no_train: Annotated[bool, typer.Option("--no-train", help="Judge from the stored runs only; train nothing.")] = False,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Every row with this many epochs (not the notes' "
                                               "settings: the output says so).", metavar="N")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="Every row with this many samples (not the notes' "
                                                "settings).", metavar="N")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Processes to train in (0: one per core).", min=0,
                                      metavar="N")] = 0,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    format_: Annotated[str | None, typer.Option("--format", "-f", help="md or json (default: from -o's suffix, "
                                                "else md).", metavar="FORMAT")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (atomically); stdout if "
                                                "omitted.", metavar="FILE")] = None,
    figures: Annotated[Path | None, typer.Option("--figures", help="Also write one figure per conclusion into DIR.",
                                                 metavar="DIR")] = None,
) -> None:
    """The notes' eight tuning conclusions, each with a verdict over seeds (and controlled)."""
    from fnn_tui.core.group import planned_runs
    from fnn_tui.core.trainer import RunOptions
    from fnn_tui.report.claims import load_conclusions
    from fnn_tui.report.provenance import provenance_of, stamped
    from fnn_tui.report.verdicts import FORMATS, claim_sides, counted_run_ids, judge, presets_to_train, render
    from fnn_tui.runs.plan import SeedsError, parse_seeds
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    fmt_name = output_format(format_, output, FORMATS)
    try:
        seed_list = parse_seeds(seeds)
    except SeedsError as exc:
        raise fail(str(exc)) from None
    with bad_input(s):
        conclusions = load_conclusions()
        all_sides = claim_sides(conclusions, s.catalog(), epochs=epochs, samples=samples)
        presets = presets_to_train(all_sides)
        options = RunOptions(device=device, engine=engine)
        planned_runs([p.with_overrides(seed=x) for p in presets for x in seed_list], options)  # bad device/engine
        with Store(s.home):  # a damaged or locked store: one line before any work
            pass
        code = 0 if no_train else _train_missing(s, presets, seed_list, options, jobs or os.cpu_count() or 1)
        with Store(s.home, reading=figures is None) as store:
            results = judge(store, conclusions, all_sides, seeds=seed_list)
            made = provenance_of(command_line(ctx), store, counted_run_ids(results))
        differs = ", ".join(p for p in (f"{epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "",
                                        f"{samples} samples" if samples else "") if p)
        differs = f"every row run with {differs}" if differs else ""
        text = stamped(render(results, fmt_name, differs=differs), fmt_name, made)
        if figures is not None:
            _figures(results, figures, made)
        write_output(text, output, f"the verdicts of {len(results)} conclusions")
    if code > EXIT_RUN_FAILED:  # a signal; a diverged run is one of the outcomes the verdicts count
        raise typer.Exit(code)


def _figures(results, folder: Path, made=None) -> None:
    from fnn_tui.report.claim_figures import write_claim_figures
    from fnn_tui.report.figures import MatplotlibMissing

    try:
        written = write_claim_figures(results, folder, made)
    except MatplotlibMissing as exc:
        err.print(f"[red]error:[/red] {literal(exc)}", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    say_figures_written(len(written), folder)
