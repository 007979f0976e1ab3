"""Shared fixtures: every test gets its own store home and an empty user config folder.

Compiled kernels are cached under the checkout's .pytest_cache (FNN_TUI_CACHE, also for the
processes the tests start), not in the user cache folder of the machine; set before fnn_tui
is imported, as Numba picks a kernel's cache place when the kernel is defined.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("FNN_TUI_CACHE", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "fnn-tui-kernels"))

from fnn_tui.core.catalog import Catalog, discover
from fnn_tui.core.presets import Preset

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point FNN_TUI_HOME and FNN_TUI_CONFIG at temporary folders."""
    home = tmp_path / "home"
    monkeypatch.setenv("FNN_TUI_HOME", str(home))
    monkeypatch.setenv("FNN_TUI_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("NO_COLOR", "1")
    return home


@pytest.fixture
def home(isolated_dirs: Path) -> Path:
    """The store folder of this test."""
    return isolated_dirs


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The built-in presets."""
    return discover(include_user=False)


@pytest.fixture
def tiny08(catalog: Catalog) -> Preset:
    """exp08 cut down to 300 samples and 3 epochs."""
    return catalog.get("exp08").with_overrides(samples=300, epochs=3)
