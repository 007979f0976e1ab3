"""Commands that read the store: ``results`` (the runs list) and ``export`` (the results table).

The report (one row per preset over its seeds) is :mod:`fnn_tui.cli.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fnn_tui.cli.common import (
    MAX_SQL_INT,
    app,
    bad_input,
    err,
    examples,
    literal,
    out,
    output_format,
    preset_name,
    settings,
    write_output,
)

# --- results ------------------------------------------------------------------------------


@app.command()
def results(
    ctx: typer.Context,
    preset: Annotated[str | None, typer.Argument(help="Only runs of this preset: name (exp08), number (8) or "
                                                 "TOML file.", metavar="PRESET", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many runs.", min=1, metavar="N")] = 50,
) -> None:
    """The runs list: every stored run, newest first ("dead" under a dead network's status)."""
    from fnn_tui.cli.render import runs_table
    from fnn_tui.report.studies import variant_names
    from fnn_tui.runs.liveness import reap
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    only = None if preset is None else preset_name(s, preset)
    with bad_input(s):
        with Store(s.home, reading=True) as store:
            reap(store)
            records = store.list_runs(only, limit=min(limit, MAX_SQL_INT))  # more than SQLite counts: all
    if not records:
        err.print(f"no runs of {literal(only)} stored" if only else "no runs stored yet: try `fnn-tui run exp08 --epochs 3`")
        return
    out.print(runs_table(records, variants=variant_names(s.catalog(), records)))


@app.command(epilog=examples(("fnn-tui export", "Markdown on stdout"),
                             ("fnn-tui export -o results.csv", "CSV, chosen by the file's suffix")))
def export(
    ctx: typer.Context,
    format_: Annotated[str | None, typer.Option("--format", "-f", help="md, csv or json (default: from -o's suffix, else md).",
                                                metavar="FORMAT")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (atomically); stdout if omitted.",
                                                metavar="FILE")] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Every run that trained (finished, diverged, stopped), "
                                                              "not only the newest per preset.")] = False,
) -> None:
    """The results table: the newest finished run of each preset beside the notes' numbers."""
    from fnn_tui.report.export import FORMATS, render, results_table
    from fnn_tui.report.studies import variant_names
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    fmt_name = output_format(format_, output, FORMATS)
    with bad_input(s):
        with Store(s.home, reading=True) as store:
            records = store.list_runs()
            rows = results_table(records, latest_only=not all_runs, variants=variant_names(s.catalog(), records))
        write_output(render(rows, fmt_name), output, f"{len(rows)} rows")
