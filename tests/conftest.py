"""Shared fixtures: every test gets its own store home and an empty user config folder."""

from __future__ import annotations

from pathlib import Path

import pytest

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
