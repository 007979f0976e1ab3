"""Commands about presets: ``list``, ``show``, ``validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fnn_tui.cli.common import EXIT_BAD_INPUT, app, bad_input, err, literal, out, settings


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List the presets (built-in, user and --presets folders); broken ones show their error."""
    from fnn_tui.cli.render import presets_table

    s = settings(ctx)
    out.print(presets_table(list(s.catalog().entries)))


@app.command()
def show(ctx: typer.Context, preset: Annotated[str, typer.Argument(help="Preset name (exp08), number (8) or TOML file.",
                                                                     metavar="PRESET", show_default=False)]) -> None:
    """Show a preset's settings and the numbers the notes report for it."""
    from fnn_tui.cli.render import preset_detail

    s = settings(ctx)
    with bad_input(s):
        out.print(preset_detail(s.catalog().get(preset)))


@app.command()
def validate(ctx: typer.Context, files: Annotated[list[Path], typer.Argument(help="Preset TOML files to check.", metavar="FILE")]) -> None:
    """Check preset files; every problem is one line naming file, key, expected and found."""
    from fnn_tui.core.presets import PresetError, load_preset

    failed = False
    for path in files:
        try:
            load_preset(path)
        except PresetError as exc:
            failed = True
            for line in str(exc).splitlines():
                err.print(f"[red]error:[/red] {literal(line)}", markup=True, soft_wrap=True)
        else:
            out.print(f"{literal(path)}: ok")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)
