"""The ``table`` command: the results table (each preset's study, its median over the seeds
of the preset's own settings, beside the notes). ``export`` is its old name, kept hidden
for one version.

Which runs form a study is :mod:`fnn_tui.report.studies`'s; the rows are
:mod:`fnn_tui.report.export`'s. This module reads the options and writes the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fnn_tui.cli.common import (
    app,
    bad_input,
    command_line,
    err,
    examples,
    literal,
    out,
    output_format,
    settings,
    terminal_text,
    write_output,
)

FORMATS = ("text", "md", "csv", "json")


def table(
    ctx: typer.Context,
    format_: Annotated[str | None, typer.Option(
        "--format", "-f", help="text (a table for the terminal), md, csv or json (default: from -o's suffix, "
        "else text on stdout and md in a file).", metavar="FORMAT")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (atomically); stdout if omitted.",
                                                metavar="FILE")] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="One row per run that trained (finished, diverged, "
                                                              "stopped) instead of one per preset.")] = False,
) -> None:
    """The results table: each preset's median over its seeds (its own settings) beside the notes."""
    from fnn_tui.report.export import results_table, run_rows
    from fnn_tui.report.provenance import provenance
    from fnn_tui.report.studies import load_studies, variant_names
    from fnn_tui.runs.liveness import reap
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    fmt_name = output_format(format_, output, FORMATS, terminal="text")
    with bad_input(s):
        with Store(s.home, reading=True) as store:
            reap(store)
            if all_runs:
                records = store.list_runs()
                rows, left_out = run_rows(records, variant_names(s.catalog(), records)), []
                used = [r for r in records if r.status.final and not r.excluded]
            else:
                studies = load_studies(store, s.catalog())
                rows, left_out = results_table(studies)
                used = [r for st in studies if st.records and not st.differs for r in st.records]
        made = provenance(command_line(ctx), devices=(r.device for r in used), engines=(r.engine for r in used))
        _write(rows, left_out, fmt_name, output, all_runs=all_runs, made=made)
    if ctx.info_name == "export":  # after the work: an error stays the one line on stderr
        err.print("note: `fnn-tui export` is now `fnn-tui table`; the old name goes in the next version",
                  soft_wrap=True)


def _write(rows: list, left_out: list, fmt_name: str, output: Path | None, *, all_runs: bool, made=None) -> None:
    from fnn_tui.cli.render import study_table, trained_table
    from fnn_tui.report.export import render

    what = f"{len(rows)} row{'' if len(rows) == 1 else 's'}"
    if fmt_name == "text":
        drawn = trained_table(rows) if all_runs else study_table(rows)  # type: ignore[arg-type]
        if output is None:
            if rows:  # (no empty table on the terminal: the lines below say why there is none)
                out.print(drawn)
        else:
            write_output(terminal_text(drawn), output, what)
    else:
        write_output(render(rows, fmt_name, made), output, what)
    for st in left_out:
        err.print(f"left out {literal(st.preset.name)}: its runs have other settings than the preset's "
                  f"({literal(st.differs)}); `fnn-tui report {literal(st.preset.name)}` shows them", soft_wrap=True)
    if not rows:
        err.print("no study of a preset's own settings is stored yet: try `fnn-tui run exp08 --seeds 3`"
                  if not all_runs else "no run has trained yet: try `fnn-tui run exp08 --epochs 3`", soft_wrap=True)


TABLE_HELP = examples(("fnn-tui table", "the table, drawn for the terminal"),
                      ("fnn-tui table -o results.md", "Markdown for a lab report (or .csv, .json)"))
app.command("table", epilog=TABLE_HELP)(table)
app.command("export", hidden=True, epilog=TABLE_HELP)(table)
