"""The ``fnn-tui`` command line: thin typer commands over the runs, the store and the reports.

The commands live in small modules by what they act on; importing them registers them on
the one typer app of :mod:`fnn_tui.cli.common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fnn_tui import __version__
from fnn_tui.cli import compare as compare_commands
from fnn_tui.cli import plots as plot_commands
from fnn_tui.cli import presets as preset_commands
from fnn_tui.cli import report as report_commands
from fnn_tui.cli import runs as runs_commands
from fnn_tui.cli import sweep as sweep_commands
from fnn_tui.cli import table as table_commands
from fnn_tui.cli import train as train_commands
from fnn_tui.cli.common import Settings, app, fail, out
from fnn_tui.cli.tui import open_app
from fnn_tui.paths import home_dir

# importing them registers their commands
COMMAND_MODULES = (preset_commands, report_commands, runs_commands, table_commands, train_commands,
                   plot_commands, compare_commands, sweep_commands)



def _version(value: bool) -> None:
    if value:
        out.print(f"fnn-tui {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    home: Annotated[str | None, typer.Option("--home", help="Store folder (default: $FNN_TUI_HOME or the user data dir).",
                                             metavar="DIR")] = None,
    presets: Annotated[list[Path] | None, typer.Option("--presets", help="Extra folder of preset TOML files (repeatable).",
                                                        metavar="DIR")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """A terminal lab runner for small PyTorch feed-forward-network experiments."""
    if home is not None and not home.strip():
        raise fail("--home is empty: name the store folder, e.g. --home ~/fnn-runs (or leave it out for the default)")
    for folder in presets or []:
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise fail(f"the presets folder {folder} {what}: check --presets")
    ctx.obj = Settings(home_dir(home), list(presets or []), debug)
    if ctx.invoked_subcommand is None:
        open_app(ctx.obj, preset=None, device="auto", engine="auto", start=False)


def main() -> None:
    """Console-script entry point."""
    app()
