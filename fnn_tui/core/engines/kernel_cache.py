"""Where Numba caches the compiled kernels, and when a cached kernel is stale.

Numba caches a function next to its source (``__pycache__``) when that folder is writable.
Inside an installed package that is wrong: pip removes only the files it installed, so an
uninstall, or an editable install over a plain one, leaves ``site-packages/fnn_tui/`` with
the cache files and no ``__init__.py``, which Python then imports as an empty namespace
package ahead of anything else. So the kernels are cached outside the package, for every
install kind (plain, editable, read-only, a source checkout):

    $FNN_TUI_CACHE, else $NUMBA_CACHE_DIR, else the user cache folder's ``fnn-tui/numba``
    (platformdirs), else a temporary folder of this user; inside it one folder per
    fnn-tui version and package location.

Numba stamps a cached function with its own file only; the multi-seed kernels call
functions of other files. Here every function of :data:`KERNEL_FILES` carries one stamp
of all of them (newest change time, total size), so a change to any of them, or another
version, never loads old machine code.

:func:`install` must run before the first ``@njit(cache=True)`` of these files is
decorated (Numba picks a function's cache place then); ``fused_kernels`` calls it first.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from fnn_tui import __version__

CACHE_ENV = "FNN_TUI_CACHE"

# The files whose code the kernels are compiled from. A kernel calls functions of the other
# files (the multi-seed kernels: multi_passes, multi_plain and lanes' vector intrinsics).
KERNEL_FILES = ("fused_kernels.py", "lanes.py", "multi_kernels.py", "multi_passes.py", "multi_plain.py")

_FOLDER = Path(__file__).resolve().parent
_FILES = [_FOLDER / name for name in KERNEL_FILES]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def cache_root() -> Path:
    """The folder all fnn-tui kernel caches live in (read each time: tests point it elsewhere)."""
    for env in (CACHE_ENV, "NUMBA_CACHE_DIR"):
        if os.environ.get(env):
            return Path(os.environ[env]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("fnn-tui", appauthor=False)) / "numba"


def cache_dir() -> Path | None:
    """This version's and this package location's cache folder, created; None if no folder
    can be written (then Numba places the cache as it would)."""
    # another install of the same version (a checkout beside a wheel) gets its own folder,
    # so two installs in turn do not overwrite each other's index
    where = hashlib.sha1(str(_FOLDER).encode()).hexdigest()[:12]
    sub = Path(f"fnn-tui-{__version__}") / f"engines_{where}"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    for root in (cache_root(), Path(tempfile.gettempdir()) / f"fnn-tui-numba-{uid}"):
        if _writable(root / sub):
            return root / sub
    return None


def source_stamp() -> tuple[float, int]:
    """One stamp for every kernel file: the newest change time and the total size."""
    stats = [f.stat() for f in _FILES if f.exists()]
    return max(st.st_mtime for st in stats), sum(st.st_size for st in stats)


def install() -> None:
    """Put the cache of every function of :data:`KERNEL_FILES` in :func:`cache_dir`, stamped
    with :func:`source_stamp`. With a Numba whose cache internals differ, at least the
    cache folder is moved out of the package (``numba.config.CACHE_DIR``)."""
    try:
        from numba.core import caching

        base = caching._CacheLocator
        registry = caching.CacheImpl._locator_classes
    except (ImportError, AttributeError):
        folder = cache_dir()
        if folder is not None:
            import numba

            numba.config.CACHE_DIR = str(folder)
        return
    if any(c.__name__ == "KernelFilesLocator" for c in registry):
        return

    class KernelFilesLocator(base):  # type: ignore[misc, valid-type]
        def __init__(self, folder: Path, lineno: int) -> None:
            self._folder = folder
            self._lineno = lineno

        def ensure_cache_path(self) -> None:
            self._folder.mkdir(parents=True, exist_ok=True)

        def get_cache_path(self) -> str:
            return str(self._folder)

        def get_disambiguator(self) -> str:
            return str(self._lineno)

        def get_source_stamp(self) -> tuple[float, int]:
            return source_stamp()

        @classmethod
        def from_function(cls, py_func, py_file):
            if Path(py_file).resolve() not in _FILES:
                return None
            folder = cache_dir()
            if folder is None:
                return None
            return cls(folder, py_func.__code__.co_firstlineno)

    registry.insert(0, KernelFilesLocator)
