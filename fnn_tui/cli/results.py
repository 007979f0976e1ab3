"""The ``results`` command: the runs list (every stored run).

The results table (``table``) is :mod:`fnn_tui.cli.table`; the report (one row per preset
over its seeds, with a verdict) is :mod:`fnn_tui.cli.report`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fnn_tui.cli.common import (
    MAX_SQL_INT,
    app,
    bad_input,
    err,
    literal,
    out,
    preset_name,
    settings,
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
    out.print(runs_table(records))
