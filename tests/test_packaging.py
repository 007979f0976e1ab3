"""A plain (non-editable) install must carry the presets, which live at the top of the repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fnn_tui.paths import builtin_presets_dir

ROOT = Path(__file__).resolve().parent.parent


def test_the_source_checkout_finds_the_top_level_presets() -> None:
    assert sorted(p.name for p in builtin_presets_dir().glob("*.toml")) == [f"exp{i:02d}.toml" for i in range(1, 12)]


def test_a_built_wheel_contains_the_eleven_presets_the_conclusions_and_the_stylesheet(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("fnn_tui-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = sorted(n for n in names if n.startswith("fnn_tui/presets/") and n.endswith(".toml"))
    assert presets == sorted([f"fnn_tui/presets/exp{i:02d}.toml" for i in range(1, 12)] + [
        "fnn_tui/presets/claims/conclusions.toml"])  # the notes' conclusions, beside the presets
    assert "fnn_tui/tui/app.tcss" in names
    for package in ("core", "store", "runs", "report", "cli", "tui"):
        assert f"fnn_tui/{package}/__init__.py" in names, package


def test_a_left_over_package_presets_folder_without_presets_is_not_taken(tmp_path: Path) -> None:
    """An old checkout keeps fnn_tui/presets/ with caches in it after the move to presets/."""
    import shutil

    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "fnn_tui", root / "fnn_tui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "presets", root / "presets")
    (root / "fnn_tui" / "presets" / "__pycache__").mkdir(parents=True)
    out = subprocess.run([sys.executable, "-c", "from fnn_tui.paths import builtin_presets_dir as b; print(b())"],
                         capture_output=True, text=True, timeout=60, cwd=root, env={"PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == root / "presets"
