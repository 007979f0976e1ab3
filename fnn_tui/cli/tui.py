"""The ``tui`` command: open the Textual app."""

from __future__ import annotations

from typing import Annotated

import typer

from fnn_tui.cli.common import (
    EXIT_BAD_INPUT,
    DeviceOpt,
    EngineOpt,
    ExecutorOpt,
    RayAddressOpt,
    Settings,
    app,
    bad_input,
    check_executor,
    err,
    fail,
    settings,
)


@app.command()
def tui(
    ctx: typer.Context,
    preset: Annotated[str | None, typer.Option("--preset", help="Preset to select at start: name, number or TOML file.",
                                               metavar="PRESET")] = None,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    run_now: Annotated[bool, typer.Option("--run", help="Start the selected preset at once.")] = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Open the Textual app (the same as `fnn-tui` with no command)."""
    open_app(settings(ctx), preset=preset, device=device, engine=engine, start=run_now, executor=executor,
             ray_address=ray_address)


def open_app(s: Settings, *, preset: str | None, device: str, engine: str, start: bool, executor: str = "local",
             ray_address: str | None = None) -> None:
    """Check the choices given on the command line, then run the app."""
    with bad_input(s):
        check_executor(executor, ray_address, connect=False)
        from fnn_tui.core.devices import resolve_device
        from fnn_tui.core.engines import ENGINE_NAMES

        if preset is not None:
            s.catalog().get(preset)
        if device != "auto":
            resolve_device(device)
        if engine not in ENGINE_NAMES:
            err.print(f"[red]error:[/red] unknown engine {engine!r}: expected auto, torch or fused", markup=True)
            raise typer.Exit(EXIT_BAD_INPUT)
        from fnn_tui.store.runs import Store

        with Store(s.home):  # a damaged, read-only, locked or lost store: one line, before Textual starts
            pass
        from fnn_tui.tui.app import FnnApp

        fnn = FnnApp(home=s.home, preset_dirs=s.presets, preset=preset, device=device, engine=engine, start=start,
                     executor=executor, ray_address=ray_address)
        fnn.run()
    if fnn.store_error is not None:  # the store failed while the app ran
        raise fail(fnn.store_error)
