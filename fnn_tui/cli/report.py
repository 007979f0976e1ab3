"""The ``report`` command: one row per preset over all its seeds, beside the notes.

Which runs stand for a preset is decided once, in :mod:`fnn_tui.report.studies`; the
statistics and verdicts are :mod:`fnn_tui.report.reproduction`'s. This module only reads
the options, picks the presets and writes the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fnn_tui.cli.common import (
    EXIT_BAD_INPUT,
    Settings,
    app,
    bad_input,
    check_output,
    command_line,
    err,
    examples,
    fail,
    out,
    output_format,
    say_figures_written,
    settings,
    terminal_text,
    write_output,
)

FORMATS = ("text", "md", "csv", "json")


def preset_names(s: Settings, wanted: list[str], stored: set[str]) -> list[str]:
    """The preset names that ``wanted`` (names, numbers or TOML files) stand for; a name
    only the store knows (a preset file since removed) is accepted as it is."""
    from fnn_tui.core.catalog import UnknownPresetError

    catalog = s.catalog()
    names = []
    for item in wanted:
        try:
            names.append(catalog.get(item).name)
        except UnknownPresetError:
            if item not in stored:
                raise
            names.append(item)
    return names


@app.command(epilog=examples(("fnn-tui report 4 8", "two presets, drawn for the terminal"),
                             ("fnn-tui report -o report.md --figures figs", "Markdown with a figure per preset"),
                             ("fnn-tui report -f md", "the Markdown on stdout")))
def report(
    ctx: typer.Context,
    presets: Annotated[list[str] | None, typer.Argument(
        help="Only these presets (names or numbers); every preset if none.", metavar="PRESET",
        show_default=False)] = None,
    format_: Annotated[str | None, typer.Option(
        "--format", "-f", help="text (a table for the terminal), md, csv or json (default: from -o's suffix, "
        "else text on stdout and md in a file).", metavar="FORMAT")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write (atomically; a device or FIFO in place); stdout if omitted.", metavar="FILE")] = None,
    figures: Annotated[Path | None, typer.Option(
        "--figures", help="Also write one figure per preset (loss curves and fit) into DIR; a Markdown "
        "report links them.", metavar="DIR")] = None,
    sweep: Annotated[str | None, typer.Option(
        "--sweep", help="The report of a stored sweep instead: one row per variant over its seeds (and with "
        "--figures, the metric against each swept setting).", metavar="NAME")] = None,
) -> None:
    """The report: each preset over all its seeds beside the notes' numbers, with a verdict;
    in Markdown, of every preset, also the notes' conclusions judged from the stored runs."""
    from fnn_tui.cli.render import report_table
    from fnn_tui.report.provenance import provenance
    from fnn_tui.report.reproduction import render, reproduction
    from fnn_tui.report.studies import load_studies
    from fnn_tui.runs.liveness import reap
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    fmt_name = output_format(format_, output, FORMATS, terminal="text")
    if sweep is not None:
        if presets:
            raise fail("--sweep NAME reports one sweep: leave out the presets")
        from fnn_tui.cli.sweep import report_sweep

        with bad_input(s):  # a sweep's report has no terminal table (yet): Markdown on the terminal
            report_sweep(s, sweep, "md" if fmt_name == "text" else fmt_name, output, figures,
                         None if fmt_name == "text" and output is None and figures is None else command_line(ctx))
        return
    if figures is not None:
        check_output(figures, folder=True)
    with bad_input(s):
        with Store(s.home, reading=figures is None) as store:  # figures of old runs may be recomputed
            reap(store)
            stored = {r.preset for r in store.list_runs()}
            names = preset_names(s, presets, stored) if presets else None
            studies = load_studies(store, s.catalog(), names)
            reports = reproduction(s.study for s in studies)
            counted = [r for st in studies for r in st.records]
            made = provenance(command_line(ctx), devices=(r.device for r in counted), engines=(r.engine for r in counted))
            text = "" if fmt_name == "text" else render(reports, fmt_name, made)
            if fmt_name == "md" and names is None:
                text += _claims_section(store, s)
            if figures is not None:
                text = _with_figures(store, studies, figures, text if fmt_name == "md" else None, output,
                                     command_line(ctx)) or text
        runs = sum(len(r.runs) for r in reports)
        what = f"the report of {len(reports)} presets ({runs} runs)"
        if fmt_name == "text":
            if output is None:
                out.print(report_table(reports))
                return
            text = terminal_text(report_table(reports))
        write_output(text, output, what)


def _claims_section(store, s: Settings) -> str:
    """The notes' conclusions judged from the stored runs (nothing trained), when any of
    their studies has runs; `fnn-tui claims` trains what is missing."""
    from fnn_tui.report.verdicts import judge_store, render_markdown

    results, differs = judge_store(store, s.catalog())
    if not any(r.notes.comparison.a.n or r.notes.comparison.b.n for r in results):
        return ""
    return "\n" + render_markdown(results, differs=differs) + "\n`fnn-tui claims` trains the seeds these verdicts miss.\n"


def _with_figures(store, studies, folder: Path, markdown: str | None, output: Path | None,
                  command: str) -> str | None:
    """Write the studies' figures into ``folder``; return the Markdown with links to them."""
    from fnn_tui.report.figures import MatplotlibMissing
    from fnn_tui.report.plotstore import link_figures, write_report_figures

    chosen = {st.preset.name: st.study_hash for st in studies if st.records}
    try:
        written = write_report_figures(store, [st.preset for st in studies if st.records], folder, studies=chosen,
                                       command=command)
    except MatplotlibMissing as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    say_figures_written(len(written), folder)
    if markdown is None:
        return None
    return link_figures(markdown, written, relative_to=output.parent if output is not None else Path.cwd())
