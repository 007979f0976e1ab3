"""The ``fnn-tui`` command line (typer): :func:`main` is the console script."""

from __future__ import annotations

from fnn_tui.cli.main import app, main

__all__ = ["app", "main"]
