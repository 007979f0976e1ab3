"""The ``fnn-tui`` command line: thin typer commands over the core, the store and the exporter.

Data goes to stdout, diagnostics to stderr. Exit codes: 0 success, 1 a run failed or
diverged, 2 bad input (one clear line, no traceback unless ``--debug``), 128+N a signal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from fnn_tui import __version__
from fnn_tui.paths import home_dir

app = typer.Typer(
    name="fnn-tui",
    help="A terminal lab runner for small PyTorch feed-forward-network experiments.\n\n"
    "With no command, opens the Textual app.",
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class Settings:
    """Options shared by every command."""

    def __init__(self, home: Path, presets: list[Path], debug: bool) -> None:
        self.home = home
        self.presets = presets
        self.debug = debug

    def catalog(self):  # noqa: ANN201
        """Every preset from the built-ins, the user folder and ``--presets``."""
        from fnn_tui.core.catalog import discover

        return discover(self.presets)


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj


@contextmanager
def bad_input(settings: Settings | None) -> Iterator[None]:
    """Turn the domain's input errors into one red line on stderr and exit code 2."""
    from fnn_tui.core.catalog import UnknownPresetError
    from fnn_tui.core.devices import DeviceError
    from fnn_tui.core.engines import EngineError
    from fnn_tui.core.presets import PresetError
    from fnn_tui.core.state import CheckpointError
    from fnn_tui.store.db import StoreError
    from fnn_tui.store.recorder import ResumeError

    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except PresetError as exc:
        if settings is not None and settings.debug:
            raise
        for line in str(exc).splitlines():
            err.print(f"[red]error:[/red] {escape(line)}", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (UnknownPresetError, DeviceError, EngineError, CheckpointError, ResumeError, StoreError, OSError) as exc:
        if settings is not None and settings.debug:
            raise
        message = exc.args[0] if isinstance(exc, LookupError) and exc.args else str(exc)
        err.print(f"[red]error:[/red] {escape(message)}", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"fnn-tui {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option(help="Store folder (default: $FNN_TUI_HOME or the user data dir).")] = None,
    presets: Annotated[list[Path] | None, typer.Option("--presets", help="Extra folder of preset TOML files (repeatable).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """A terminal lab runner for small PyTorch feed-forward-network experiments."""
    ctx.obj = Settings(home_dir(home), list(presets or []), debug)
    if ctx.invoked_subcommand is None:
        _open_app(ctx.obj, preset=None, device="auto", engine="auto", start=False)


# --- presets ------------------------------------------------------------------------------


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List the presets (built-in, user and --presets folders); broken ones show their error."""
    from fnn_tui.cli_render import presets_table

    s = _settings(ctx)
    out.print(presets_table(list(s.catalog().entries)))


@app.command()
def show(ctx: typer.Context, preset: Annotated[str, typer.Argument(help="Preset name (exp08), number (8) or TOML file.")]) -> None:
    """Show a preset's settings and the seed's reported numbers."""
    from fnn_tui.cli_render import preset_detail

    s = _settings(ctx)
    with bad_input(s):
        out.print(preset_detail(s.catalog().get(preset)))


@app.command()
def validate(ctx: typer.Context, files: Annotated[list[Path], typer.Argument(help="Preset TOML files to check.")]) -> None:
    """Check preset files; every problem is one line naming file, key, expected and found."""
    from fnn_tui.core.presets import PresetError, load_preset

    failed = False
    for path in files:
        try:
            load_preset(path)
        except PresetError as exc:
            failed = True
            for line in str(exc).splitlines():
                err.print(f"[red]error:[/red] {escape(line)}", markup=True, soft_wrap=True)
        else:
            out.print(f"{path}: ok")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


# --- training -----------------------------------------------------------------------------

DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
EngineOpt = Annotated[str, typer.Option(help="auto (fused on the CPU when it can), torch or fused.")]


@app.command()
def run(
    ctx: typer.Context,
    presets: Annotated[list[str] | None, typer.Argument(help="Preset names, numbers or TOML files.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Run every valid preset in order.")] = False,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    seed: Annotated[int | None, typer.Option(help="Override the data/init seed.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the number of epochs.")] = None,
    samples: Annotated[int | None, typer.Option(help="Override the number of samples.")] = None,
    jobs: Annotated[int, typer.Option(help="Presets trained at once, one process each (0: one per core).", min=0)] = 1,
    detach: Annotated[bool, typer.Option(help="Train in a background process that outlives this terminal.")] = False,
) -> None:
    """Train presets, store every epoch, and print the results table."""
    from fnn_tui.core.trainer import RunOptions, resolve

    s = _settings(ctx)
    with bad_input(s):
        catalog = s.catalog()
        if all_:
            chosen = catalog.valid()
        elif presets:
            chosen = [catalog.get(p) for p in presets]
        else:
            err.print("[red]error:[/red] name at least one preset, or use --all", markup=True)
            raise typer.Exit(EXIT_BAD_INPUT)
        chosen = [p.with_overrides(epochs=epochs, samples=samples, seed=seed) for p in chosen]
        options = RunOptions(device=device, engine=engine)
        for p in chosen:
            resolve(p, options)  # bad device/engine: an error before any work
        if detach:
            from fnn_tui.store.background import QueueItem, launch

            launched = launch(s.home, [QueueItem(preset=p) for p in chosen], options)
            ids = " ".join(str(i) for i in launched.run_ids)
            out.print(f"run {ids} training in the background (pid {launched.process.pid}); "
                      f"`fnn-tui attach {launched.run_ids[0]}` follows it, `fnn-tui stop {launched.run_ids[0]}` stops it")
            raise typer.Exit(EXIT_OK)
        n_jobs = jobs or os.cpu_count() or 1
        if n_jobs > 1 and len(chosen) > 1:
            from fnn_tui.cli_runs import run_in_pool

            ids, code = run_in_pool(s.home, chosen, options, min(n_jobs, len(chosen)), out, err)
        else:
            from fnn_tui.cli_runs import run_here

            ids, code = run_here(s.home, chosen, options, out, err)
        _print_results(s, ids)
    raise typer.Exit(code)


def _print_results(s: Settings, ids: list[int]) -> None:
    from fnn_tui.cli_render import results_table
    from fnn_tui.export import result_row
    from fnn_tui.store.runs import Store

    with Store(s.home) as store:
        records = [r for r in (store.get_run(i) for i in ids) if r is not None]
    if records:
        out.print(results_table([result_row(r) for r in records]))


@app.command()
def resume(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="The run's id (see `fnn-tui results`).")],
    device: Annotated[str | None, typer.Option(help="Continue on another device (default: the run's).")] = None,
) -> None:
    """Continue an interrupted, crashed, cancelled or failed run from its last checkpoint."""
    from fnn_tui.cli_runs import resume_here

    s = _settings(ctx)
    with bad_input(s):
        code = resume_here(s.home, run_id, device, out, err)
        _print_results(s, [run_id])
    raise typer.Exit(code)


@app.command()
def runs(ctx: typer.Context) -> None:
    """Runs queued or training now (in this store), with where they are."""
    from fnn_tui.cli_render import runs_table
    from fnn_tui.store.runs import Store

    s = _settings(ctx)
    with bad_input(s):
        with Store(s.home) as store:
            store.mark_stale_as_crashed()
            active = store.active_runs()
    if not active:
        err.print("no runs are going; `fnn-tui results` lists the stored ones")
        return
    out.print(runs_table(active, title="Active runs"))


@app.command()
def attach(
    ctx: typer.Context,
    run_id: Annotated[int | None, typer.Argument(help="The run to follow (default: the newest active one).")] = None,
) -> None:
    """Follow a background run live; Ctrl-C leaves it running."""
    from fnn_tui.cli_runs import attach_here
    from fnn_tui.store.runs import Store

    s = _settings(ctx)
    with bad_input(s):
        if run_id is None:
            with Store(s.home) as store:
                store.mark_stale_as_crashed()
                active = store.active_runs()
            if not active:
                err.print("[red]error:[/red] no runs are going; `fnn-tui results` lists the stored ones", markup=True)
                raise typer.Exit(EXIT_BAD_INPUT)
            run_id = active[-1].id
        code = attach_here(s.home, run_id, out, err)
        _print_results(s, [run_id])
    raise typer.Exit(code)


@app.command()
def stop(ctx: typer.Context, run_id: Annotated[int, typer.Argument(help="The run to stop.")]) -> None:
    """Stop a background run cleanly (it is stored as cancelled, finished epochs kept)."""
    from fnn_tui.store.background import NotRunningError, stop_run

    s = _settings(ctx)
    try:
        message = stop_run(s.home, run_id)
    except NotRunningError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    err.print(message)


@app.command(hidden=True)
def worker(ctx: typer.Context, items: Annotated[list[str], typer.Argument()]) -> None:
    """Train queued runs in order (the background process)."""
    from fnn_tui.worker import main as worker_main

    raise typer.Exit(worker_main(_settings(ctx).home, items))


# --- results ------------------------------------------------------------------------------


@app.command()
def results(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only runs of this preset (same as --preset).",
                                               show_default=False)] = None,
    preset: Annotated[str | None, typer.Option(help="Only runs of this preset.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.", min=1)] = 50,
) -> None:
    """Stored runs, newest first."""
    from fnn_tui.cli_render import runs_table
    from fnn_tui.store.runs import Store

    s = _settings(ctx)
    only = name or preset
    with bad_input(s):
        with Store(s.home) as store:
            store.mark_stale_as_crashed()
            records = store.list_runs(only, limit=limit)
    if not records:
        err.print(f"no runs of {only} stored" if only else "no runs stored yet: try `fnn-tui run exp08 --epochs 3`")
        return
    out.print(runs_table(records))


@app.command()
def export(
    ctx: typer.Context,
    format_: Annotated[str | None, typer.Option("--format", "-f", help="md, csv or json (default: from -o's suffix, else md).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (atomically); stdout if omitted.")] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Every finished run, not only the newest per preset.")] = False,
) -> None:
    """The results table (our numbers beside the seed's) as Markdown, CSV or JSON."""
    from fnn_tui.export import FORMATS, format_for_path, render, results_table, write_atomic
    from fnn_tui.store.runs import Store

    s = _settings(ctx)
    fmt_name = format_ or (format_for_path(output) if output else None) or "md"
    if fmt_name not in FORMATS:
        err.print(f"[red]error:[/red] unknown format {fmt_name!r}: expected md, csv or json", markup=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    with bad_input(s):
        with Store(s.home) as store:
            rows = results_table(store.list_runs(), latest_only=not all_runs)
        text = render(rows, fmt_name)
        if output is None:
            sys.stdout.write(text)
        else:
            try:
                write_atomic(output, text)
            except OSError as exc:
                raise OSError(f"cannot write {output}: {exc.strerror or exc}") from None
            err.print(f"wrote {len(rows)} rows to {output}")


# --- the app ------------------------------------------------------------------------------


@app.command()
def tui(
    ctx: typer.Context,
    preset: Annotated[str | None, typer.Option(help="Preset to select at start.")] = None,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    run_now: Annotated[bool, typer.Option("--run", help="Start the selected preset at once.")] = False,
) -> None:
    """Open the Textual app (the same as `fnn-tui` with no command)."""
    _open_app(_settings(ctx), preset=preset, device=device, engine=engine, start=run_now)


def _open_app(s: Settings, *, preset: str | None, device: str, engine: str, start: bool) -> None:
    with bad_input(s):
        try:
            from fnn_tui.tui.app import FnnApp
        except ImportError:  # the app arrives in a later version
            err.print("the Textual app is not available; see `fnn-tui --help`")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        from fnn_tui.core.devices import resolve_device
        from fnn_tui.core.engines import ENGINE_NAMES

        if preset is not None:
            s.catalog().get(preset)
        if device != "auto":
            resolve_device(device)
        if engine not in ENGINE_NAMES:
            err.print(f"[red]error:[/red] unknown engine {engine!r}: expected auto, torch or fused", markup=True)
            raise typer.Exit(EXIT_BAD_INPUT)
        FnnApp(home=s.home, preset_dirs=s.presets, preset=preset, device=device, engine=engine, start=start).run()


def main() -> None:
    """Console-script entry point."""
    app()
