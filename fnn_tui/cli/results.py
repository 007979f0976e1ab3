"""The ``export`` command: the results table (the newest finished run of each preset).

The runs list is :mod:`fnn_tui.cli.runs`; the report (one row per preset over its seeds)
is :mod:`fnn_tui.cli.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fnn_tui.cli.common import (
    app,
    bad_input,
    command_line,
    examples,
    output_format,
    settings,
    write_output,
)


@app.command(epilog=examples(("fnn-tui export", "Markdown on stdout"),
                             ("fnn-tui export -o results.csv", "CSV, chosen by the file's suffix")))
def export(
    ctx: typer.Context,
    format_: Annotated[str | None, typer.Option("--format", "-f", help="md, csv or json (default: from -o's suffix, else md).",
                                                metavar="FORMAT")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="File to write (atomically; a device or FIFO in place); "
                                                "stdout if omitted.")] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Every run that trained (finished, diverged, stopped), "
                                                              "not only the newest per preset.")] = False,
) -> None:
    """The results table: the newest finished run of each preset beside the notes' numbers."""
    from fnn_tui.report.export import FORMATS, render, results_table
    from fnn_tui.report.provenance import provenance
    from fnn_tui.report.studies import variant_names
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    fmt_name = output_format(format_, output, FORMATS)
    with bad_input(s):
        with Store(s.home, reading=True) as store:
            records = store.list_runs()
            rows = results_table(records, latest_only=not all_runs, variants=variant_names(s.catalog(), records))
        made = provenance(command_line(ctx), devices=(r.device for r in rows), engines=(r.engine for r in rows))
        write_output(render(rows, fmt_name, made), output, f"{len(rows)} rows")
