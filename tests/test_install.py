"""README's two install commands in one fresh venv, then an uninstall (issue 19).

A plain install, a first fused run, an editable install over it: `fnn-tui` must still
import from any folder, and `pip uninstall` must leave nothing of the package in
site-packages. It builds a venv and installs torch into it (a minute or two), so it runs
only with FNN_TUI_INSTALL_TEST=1 (`.ci/run` sets it).

Dependencies come from pip's local indexes where it has them (see _install_dependencies),
the rest as pip is configured; the project is built without build isolation and from a
copy of the checkout, so neither install writes into the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(os.environ.get("FNN_TUI_INSTALL_TEST") != "1",
                                reason="slow (a fresh venv with torch): set FNN_TUI_INSTALL_TEST=1")


def _run(args: list[str], *, env: dict[str, str], cwd: Path, timeout: int = 600) -> str:
    out = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, f"{' '.join(args)} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _local_indexes(pip: str, env: dict[str, str], cwd: Path) -> list[str]:
    """The file:// indexes of pip's configuration (a machine's local copy of the registry)."""
    config = subprocess.run([pip, "config", "list"], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=60).stdout
    urls: list[str] = []
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("index-url"):
            urls += [u for u in value.strip("'\"").split() if u.startswith("file:") and u not in urls]
    return urls


def _install_dependencies(pip: str, env: dict[str, str], cwd: Path) -> None:
    """torch (the build these tests run with), the build tools and fnn-tui's dependencies.

    Where pip has local indexes, everything they hold comes from them alone, without a
    look-up on the network for each package; only what they lack is fetched as pip is
    configured, by the project's install after this. Nothing compiled to bytecode: torch's
    thousands of files would double the time."""
    wanted = [f"torch=={torch.__version__.split('+')[0]}", "setuptools>=68", "wheel",
              *tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]]
    local = _local_indexes(pip, env, cwd)
    if not local:
        _run([pip, "install", "-q", "--no-compile", *wanted], env=env, cwd=cwd)
        return
    only_local = ["--index-url", local[0], *(a for u in local[1:] for a in ("--extra-index-url", u))]
    for _ in range(len(wanted)):
        out = subprocess.run([pip, "install", "-q", "--no-compile", *only_local, *wanted], env=env, cwd=cwd,
                             capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        if out.returncode == 0:
            return
        missing = re.search(r"No matching distribution found for ([A-Za-z0-9._-]+)", out.stderr)
        assert missing, out.stderr[-3000:]
        name = missing.group(1).lower().replace("_", "-")
        wanted = [w for w in wanted if re.split(r"[<>=!~;\[ ]", w, maxsplit=1)[0].lower().replace("_", "-") != name]
        assert wanted, out.stderr[-3000:]


def _package_files(site: Path) -> list[str]:
    return sorted(p.name for p in site.iterdir() if "fnn_tui" in p.name.lower() or "fnn-tui" in p.name.lower())


def test_plain_install_run_editable_install_list_uninstall(tmp_path: Path) -> None:
    source = tmp_path / "checkout"
    shutil.copytree(ROOT / "fnn_tui", source / "fnn_tui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "presets", source / "presets")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "FNN_TUI_CACHE", "NUMBA_CACHE_DIR", "PYTHONHOME")}
    # the default cache place (the user cache folder), moved into tmp_path
    # pip's own cache stays where it was; the user cache folder (the kernels' default place) moves
    env.setdefault("PIP_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip"))
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), NO_COLOR="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")

    _run([sys.executable, "-m", "venv", str(venv)], env=env, cwd=elsewhere)
    python, pip, fnn = str(venv / "bin" / "python"), str(venv / "bin" / "pip"), str(venv / "bin" / "fnn-tui")
    _install_dependencies(pip, env, elsewhere)
    # README's first command (what the local indexes lack comes from pip's other sources here)
    _run([pip, "install", "-q", "--no-build-isolation", str(source)], env=env, cwd=elsewhere)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     env=env, cwd=elsewhere).strip())
    assert (site / "fnn_tui" / "__init__.py").exists()

    # a first run: the fused engine compiles its kernels and caches them
    home = tmp_path / "store"
    _run([fnn, "--home", str(home), "run", "8", "--epochs", "1", "--samples", "200", "--engine", "fused"],
         env=env, cwd=elsewhere)
    leftovers = [str(p.relative_to(site)) for p in (site / "fnn_tui").rglob("*")
                 if p.is_file() and p.suffix in (".nbi", ".nbc")]
    assert leftovers == []
    cached = list((tmp_path / "xdg" / "fnn-tui" / "numba").rglob("*.nbi"))
    assert cached, "no kernel was cached in the user cache folder"

    # README's test command over it: an editable install in the same venv
    _run([pip, "install", "-q", "--no-build-isolation", "-e", str(source)], env=env, cwd=elsewhere)
    assert not (site / "fnn_tui").exists(), _package_files(site)  # the plain install's folder went whole
    listing = _run([fnn, "list"], env=env, cwd=elsewhere)
    assert "exp08" in listing and "exp11" in listing, listing
    where = _run([python, "-c", "import fnn_tui; print(fnn_tui.__file__, fnn_tui.__version__)"], env=env, cwd=elsewhere)
    assert where.split()[0] == str(source / "fnn_tui" / "__init__.py"), where
    # a second run loads the kernels from the cache (the editable install has its own folder)
    _run([fnn, "--home", str(home), "run", "8", "--epochs", "1", "--samples", "200", "--engine", "fused"],
         env=env, cwd=elsewhere)
    assert list((source / "fnn_tui").rglob("*.nbi")) == []

    _run([pip, "uninstall", "-y", "fnn-tui"], env=env, cwd=elsewhere)
    assert _package_files(site) == []
    assert not Path(fnn).exists()
