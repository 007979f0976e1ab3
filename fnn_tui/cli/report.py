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
    err,
    examples,
    out,
    output_format,
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
        "--output", "-o", help="File to write (atomically); stdout if omitted.", metavar="FILE")] = None,
    figures: Annotated[Path | None, typer.Option(
        "--figures", help="Also write one figure per preset (loss curves and fit) into DIR; a Markdown "
        "report links them.", metavar="DIR")] = None,
) -> None:
    """The report: each preset over all its seeds beside the notes' numbers, with a verdict."""
    from fnn_tui.cli.render import report_table
    from fnn_tui.report.reproduction import render, reproduction
    from fnn_tui.report.studies import load_studies
    from fnn_tui.runs.liveness import reap
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    fmt_name = output_format(format_, output, FORMATS, terminal="text")
    with bad_input(s):
        with Store(s.home, reading=figures is None) as store:  # figures of old runs may be recomputed
            reap(store)
            stored = {r.preset for r in store.list_runs()}
            names = preset_names(s, presets, stored) if presets else None
            studies = load_studies(store, s.catalog(), names)
            reports = reproduction(s.study for s in studies)
            text = "" if fmt_name == "text" else render(reports, fmt_name)
            if figures is not None:
                text = _with_figures(store, studies, figures, text if fmt_name == "md" else None, output) or text
        runs = sum(len(r.runs) for r in reports)
        what = f"the report of {len(reports)} presets ({runs} runs)"
        if fmt_name == "text":
            if output is None:
                out.print(report_table(reports))
                return
            text = terminal_text(report_table(reports))
        write_output(text, output, what)


def _with_figures(store, studies, folder: Path, markdown: str | None, output: Path | None) -> str | None:
    """Write the studies' figures into ``folder``; return the Markdown with links to them."""
    from fnn_tui.report.figures import MatplotlibMissing
    from fnn_tui.report.plotstore import link_figures, write_report_figures

    chosen = {st.preset.name: st.records[0].study for st in studies if st.records}
    try:
        written = write_report_figures(store, [st.preset for st in studies if st.records], folder, studies=chosen)
    except MatplotlibMissing as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    err.print(f"wrote {len(written)} figures to {escape(str(folder))}", soft_wrap=True)
    if markdown is None:
        return None
    return link_figures(markdown, written, relative_to=output.parent if output is not None else Path.cwd())
