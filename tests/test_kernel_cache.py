"""Compiled kernels are cached outside the package, per version, never next to the source.

A cache inside site-packages outlives pip's uninstall and turns the package's leftover
folder into a namespace package (issue 19); tests/test_install.py runs that whole sequence.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fnn_tui
from fnn_tui.core.engines import fused_kernels, kernel_cache, multi_kernels, multi_passes, multi_plain

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(fnn_tui.__file__).resolve().parent


def _cache_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")}


def test_every_kernel_is_cached_in_the_named_cache_folder_outside_the_package() -> None:
    root = Path(os.environ[kernel_cache.CACHE_ENV]).resolve()  # set by conftest
    functions = (fused_kernels.run_steps, fused_kernels.evaluate, fused_kernels.predict, multi_kernels.run_steps,
                 multi_kernels.column_means, multi_plain.run_plain, multi_passes._backward)
    for function in functions:
        locator = function._cache._impl._locator  # Numba's cache of this function
        assert type(locator).__name__ == "KernelFilesLocator", function
        path = Path(locator.get_cache_path()).resolve()
        assert path.is_relative_to(root), path
        assert not path.is_relative_to(PACKAGE), path
        assert f"fnn-tui-{fnn_tui.__version__}" in path.parts, path


def test_the_cache_folder_is_chosen_by_fnn_tui_cache_then_numba_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FNN_TUI_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert kernel_cache.cache_dir().is_relative_to(tmp_path / "mine")
    monkeypatch.delenv("FNN_TUI_CACHE")
    assert kernel_cache.cache_dir().is_relative_to(tmp_path / "numba")


def test_another_version_or_another_install_does_not_share_a_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FNN_TUI_CACHE", str(tmp_path))
    this = kernel_cache.cache_dir()
    monkeypatch.setattr(kernel_cache, "__version__", "0.0.0-other")
    other = kernel_cache.cache_dir()
    assert this != other and this.parent.name != other.parent.name
    # the folder of the package is part of the name: a wheel and a checkout of one version differ
    monkeypatch.setattr(kernel_cache, "_FOLDER", tmp_path / "elsewhere" / "engines")
    assert kernel_cache.cache_dir().name != other.name


def test_an_unwritable_cache_folder_falls_back_to_a_temporary_one(monkeypatch, tmp_path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("FNN_TUI_CACHE", str(blocked / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    folder = kernel_cache.cache_dir()
    assert folder is not None and folder.is_relative_to(tmp_path / "tmp")


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is the user cache folder on Linux")
def test_by_default_a_compiled_kernel_goes_to_the_user_cache_folder_not_the_package(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FNN_TUI_CACHE", "NUMBA_CACHE_DIR")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=str(ROOT))
    before = _cache_files(PACKAGE)
    code = ("import numpy as np; from fnn_tui.core.engines import fused_kernels as k;"
            "print(k.metric_means(np.arange(5.0), 2.0))")  # compiles one kernel and caches it
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(tuple(float(v) for v in (0.0, 0.5, 1.0, np.sqrt(2.0))))
    cached = _cache_files(tmp_path / "xdg" / "fnn-tui" / "numba" / f"fnn-tui-{fnn_tui.__version__}")
    assert any(p.name.startswith("fused_kernels.metric_means") for p in cached), cached
    assert _cache_files(PACKAGE) == before  # nothing new next to the source
