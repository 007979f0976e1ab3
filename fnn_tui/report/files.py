"""Writing a file the user named (``-o``, ``--figures``, the app's Save), by one rule.

What the name is decides how it is written:

- a regular file, or a name that does not exist yet: atomically (a temp file in the same
  folder, fsync, ``os.replace``), so it appears whole or not at all; an existing file
  keeps its permissions;
- a symlink is followed: what it points to is written by these same rules (a regular file
  atomically, next to the file it points to); the link itself stays;
- a character device (``/dev/null``, ``/dev/full``, a terminal): written in place, never
  replaced by the rename (as root that would put a plain file in place of the device for
  every process of the machine);
- a FIFO (named pipe): written in place when a process reads it; without a reader it is
  refused at once instead of waiting forever;
- a folder, a socket or a block device (a disk): refused.

Every failure is a :class:`CannotWrite`: one line, "cannot write <the name given>: <why>",
never the temp file's name.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

NAME_MAX = 255  # bytes of one name in a folder, on the file systems Linux uses


class CannotWrite(OSError):
    """A file the user named cannot be written; ``str(error)`` is the one line to show."""

    def __init__(self, target: Path | str, reason: str, code: int = 0) -> None:
        super().__init__(code, reason)
        self.target = target
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot write {self.target}: {self.reason}"


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` by the module's rule; return ``path``."""
    data = text.encode("utf-8")
    return write_file(path, lambda fh: fh.write(data))


def check_target(path: Path | str) -> None:
    """Refuse, before any work, a name that :func:`write_file` would refuse by its kind (a
    folder, a socket, a disk) or whose folder does not exist; writes nothing."""
    shown = Path(path)
    path = shown.expanduser()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _cannot(shown, exc) from None
    if st is None or stat.S_ISREG(st.st_mode):
        target = Path(os.path.realpath(path)) if path.is_symlink() else path
        folder = target.parent if str(target.parent) else Path(".")
        if not folder.is_dir():
            raise CannotWrite(shown, f"folder {folder} does not exist", errno.ENOENT)
    elif not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        raise CannotWrite(shown, f"it is {_kind(st.st_mode)}", errno.EINVAL)


def check_folder(folder: Path | str) -> None:
    """Refuse, before any work, a folder to write into that is a file; writes nothing."""
    shown = Path(folder)
    folder = shown.expanduser()
    if folder.exists() and not folder.is_dir():
        raise CannotWrite(shown, "it is a file, not a folder", errno.ENOTDIR)


def write_file(path: Path | str, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` with a binary file that ends up as ``path``, by the module's rule.

    Raises :class:`CannotWrite` (naming ``path`` as given) for every ``OSError``; other
    errors of ``write`` pass through, and nothing is left behind.
    """
    shown = Path(path)
    path = shown.expanduser()
    try:
        st = os.stat(path)  # follows a symlink
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _cannot(shown, exc) from None
    if st is None or stat.S_ISREG(st.st_mode):
        target = Path(os.path.realpath(path)) if path.is_symlink() else path
        _write_atomic(shown, target, write, None if st is None else st.st_mode)
    elif stat.S_ISCHR(st.st_mode):
        _write_in_place(shown, path, write, os.O_WRONLY)
    elif stat.S_ISFIFO(st.st_mode):
        _write_in_place(shown, path, write, os.O_WRONLY | os.O_NONBLOCK)
    else:
        raise CannotWrite(shown, f"it is {_kind(st.st_mode)}", errno.EINVAL)
    return shown


def _kind(mode: int) -> str:
    return ("a folder; name a file inside it" if stat.S_ISDIR(mode)
            else "a socket, not a file" if stat.S_ISSOCK(mode)
            else "a block device (a disk), not a file" if stat.S_ISBLK(mode)
            else "not a regular file")


def ensure_folder(folder: Path | str) -> Path:
    """Make ``folder`` (and its parents) for files the user asked to be written into it;
    :class:`CannotWrite` naming it when it cannot be one."""
    check_folder(folder)
    shown = Path(folder)
    folder = shown.expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CannotWrite(shown, "it is a file, not a folder", errno.ENOTDIR) from None
    except NotADirectoryError:
        raise CannotWrite(shown, "a part of its path is a file, not a folder", errno.ENOTDIR) from None
    except OSError as exc:
        raise _cannot(shown, exc) from None
    return shown


def temp_name(name: str) -> str:
    """The temp file's name for ``name``: hidden, unique, and never longer than a name may be
    (a 250-byte name still gets its temp file)."""
    suffix = f".{uuid.uuid4().hex[:8]}.tmp"
    room = NAME_MAX - 1 - len(suffix)
    raw = os.fsencode(name)
    if len(raw) > room:
        name = raw[:room].decode("utf-8", "ignore")  # cut at a whole character
    return f".{name}{suffix}"


def _write_atomic(shown: Path, target: Path, write: Callable[[BinaryIO], object], mode: int | None) -> None:
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise CannotWrite(shown, f"folder {folder} does not exist", errno.ENOENT)
    tmp = folder / temp_name(target.name)
    try:
        # open(..., "xb") rather than mkstemp: a new file gets the umask's mode, not 0600
        with open(tmp, "xb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), stat.S_IMODE(mode))  # an existing file keeps its mode
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _cannot(shown, exc) from None
        raise


def _write_in_place(shown: Path, path: Path, write: Callable[[BinaryIO], object], flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO and flags & os.O_NONBLOCK:
            raise CannotWrite(shown, "it is a FIFO (named pipe) and no process reads it", errno.ENXIO) from None
        raise _cannot(shown, exc) from None
    try:
        if flags & os.O_NONBLOCK:  # a reader is there: write as to any pipe, waiting when it is full
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        kind = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(kind) or stat.S_ISFIFO(kind)):  # replaced since it was looked at
            raise CannotWrite(shown, "it changed while it was being opened; try again", errno.EAGAIN)
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            write(fh)
            fh.flush()
    except CannotWrite:
        raise
    except OSError as exc:
        raise _cannot(shown, exc) from None
    finally:
        if fd >= 0:
            os.close(fd)


def _cannot(shown: Path, exc: OSError) -> CannotWrite:
    if isinstance(exc, CannotWrite):
        return exc
    if isinstance(exc, NotADirectoryError):
        return CannotWrite(shown, "a part of its folder is a file, not a folder", exc.errno or 0)
    return CannotWrite(shown, exc.strerror or str(exc), exc.errno or 0)
