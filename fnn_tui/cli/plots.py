"""The ``plot`` command: a preset's study, or one run, as a figure file (PNG, SVG or PDF);
several presets (``plot 5 10 11``) or runs (``--run 3 --run 7``) are overlaid on one figure.

The argument names a preset exactly as ``fnn-tui run`` does (``exp08``, ``8``, a TOML
file), so ``plot 8`` and ``run 8`` mean the same preset; one run is named with ``--run N``
(the run column of ``fnn-tui runs``), as the option says. A number alone is never
guessed to be a run id: the two readings would draw different figures without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fnn_tui.cli.common import (
    EXIT_BAD_INPUT,
    Settings,
    app,
    bad_input,
    command_line,
    err,
    out,
    run_id_arg,
    settings,
)

if TYPE_CHECKING:
    from fnn_tui.core.presets import Preset
    from fnn_tui.store.runs import Store

# matplotlib missing is the environment's problem, not a run's failure: the bad-input code
# (2) with its one line saying what to install
EXIT_NO_MATPLOTLIB = EXIT_BAD_INPUT


@app.command()
def plot(
    ctx: typer.Context,
    presets: Annotated[list[str] | None, typer.Argument(
        help="Preset names, numbers or TOML files, as for `run`: plots the study (every seed); several "
        "are overlaid.", metavar="PRESET", show_default=False)] = None,
    run_ids: Annotated[list[int] | None, typer.Option(
        "--run", help="Plot this run instead (its id from `fnn-tui runs`); repeat it to overlay runs.",
        metavar="N", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write: .png, .svg or .pdf "
        "(default: fnn-PRESET-study.png, or fnn-PRESET-runN.png with --run, in the current folder).", metavar="FILE",
        show_default=False)] = None,
) -> None:
    """The loss curves and the fitted function, as a 1600x600 figure.

    [b]fnn-tui plot exp08[/b]: the study of exp08 (every seed faintly, the median run on top).
    [b]fnn-tui plot --run 12 -o run12.svg[/b]: run 12 alone.
    [b]fnn-tui plot 5 10 11[/b]: three presets' studies overlaid; [b]--run 3 --run 7[/b]: two runs.
    A bare number is a preset (8 = exp08, as for `run`); use --run for a run id.
    """
    from fnn_tui.report.figures import MatplotlibMissing, figure_format, write_figure, write_overlay
    from fnn_tui.report.plotstore import NothingToPlot, figure_name, plot_for_preset, plot_for_run
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    for run_id in run_ids or []:
        run_id_arg(run_id)
    if bool(presets) == bool(run_ids):
        err.print("[red]error:[/red] name a preset (fnn-tui plot exp08; several are overlaid) or a run "
                  "(fnn-tui plot --run 12; repeat --run to overlay), not both or neither", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if output is not None:
        try:
            figure_format(output)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
    with bad_input(s):
        with Store(s.home) as store:
            try:
                if run_ids:
                    items = [plot_for_run(store, run_id, s.catalog()) for run_id in run_ids]
                else:
                    items = [plot_for_preset(store, _catalog_preset(s, p, store)) for p in presets or []]
            except NothingToPlot as exc:
                err.print(f"[red]error:[/red] {exc}", markup=True, soft_wrap=True)
                raise typer.Exit(EXIT_BAD_INPUT) from None
        if len(items) == 1:
            path = output or Path(figure_name(items[0].preset_name, run_ids[0] if run_ids else None))
        else:
            path = output or Path("fnn-" + ("-".join(d.preset_name for d in items) if not run_ids
                                            else "runs-" + "-".join(map(str, run_ids))) + ".png")
        try:
            made = command_line(ctx)
            written = (write_figure(items[0], path, command=made) if len(items) == 1
                       else write_overlay(items, path, command=made))
        except MatplotlibMissing as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, soft_wrap=True)
            raise typer.Exit(EXIT_NO_MATPLOTLIB) from None
    out.print(str(written), soft_wrap=True)


def _catalog_preset(s: Settings, name: str, store: Store) -> Preset | str:
    """The catalog's preset, or the name alone when only the store knows it (a user preset
    since removed); a number with no such preset hints at ``--run``."""
    from fnn_tui.core.catalog import UnknownPresetError

    try:
        return s.catalog().get(name)
    except UnknownPresetError:
        if store.list_runs(name, limit=1):
            return name
        if name.isdigit():
            raise UnknownPresetError(f"no preset exp{int(name):02d}; to plot run {name} use `fnn-tui plot --run {name}`") from None
        raise
