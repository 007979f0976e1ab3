"""Where fnn-tui keeps things: the run store's home and the user presets folder."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "fnn-tui"
HOME_ENV = "FNN_TUI_HOME"
CONFIG_ENV = "FNN_TUI_CONFIG"


def home_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The store's folder: ``--home``, else ``$FNN_TUI_HOME``, else the user data directory."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_presets_dir() -> Path:
    """The user's own presets: ``$FNN_TUI_CONFIG/presets`` or the user config directory's."""
    env = os.environ.get(CONFIG_ENV)
    base = Path(env).expanduser() if env else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    return base / "presets"


def builtin_presets_dir() -> Path:
    """The eleven built-in presets: ``presets/`` at the top of a source checkout, installed
    inside the package (``fnn_tui/presets``) by ``pip install .``."""
    package = Path(__file__).resolve().parent
    installed = package / "presets"
    # a source checkout updated across the move can keep an old fnn_tui/presets folder with
    # only caches in it (git leaves untracked files): only a folder of presets counts
    if installed.is_dir() and any(installed.glob("*.toml")):
        return installed
    return package.parent / "presets"
