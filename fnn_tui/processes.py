"""Which process a pid is: a mark of when and where it started, stored with a run's pid.

A pid alone cannot tell a run's process from a later one that got the same pid; the
kernel's start time of the process (in clock ticks since boot) can, within one boot and
one pid namespace, so the mark holds all three: ``"<boot id> <pid namespace> <ticks>"``.
Where ``/proc`` does not tell them (not Linux) there is no mark, and a live pid is taken
for the run's process as before. Reading ``/proc`` is all this module does: the store
writes the mark, :mod:`fnn_tui.runs.liveness` compares it.
"""

from __future__ import annotations

import functools
import os


@functools.cache
def _here() -> str | None:
    """This machine's boot and this process's pid namespace, or ``None`` without ``/proc``."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return None
    return f"{boot} {namespace}"


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; ``None`` when it is gone or
    ``/proc`` cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[-1].split()
        return int(fields[19])  # field 22 of proc(5); the name before ")" may hold spaces
    except (OSError, IndexError, ValueError):
        return None


def start_mark(pid: int) -> str | None:
    """The mark of process ``pid`` (seen from this process), or ``None`` when it cannot be made."""
    here = _here()
    ticks = start_ticks(pid) if here is not None else None
    return None if ticks is None else f"{here} {ticks}"


def own_mark() -> str | None:
    """This process's mark (made once: a process's start time does not change)."""
    return _own(os.getpid())


@functools.cache
def _own(pid: int) -> str | None:  # keyed by pid: a forked child makes its own
    return start_mark(pid)


def same_place(mark: str) -> bool:
    """Whether ``mark`` was made on this boot in this pid namespace, so its pid can be checked here."""
    here = _here()
    return here is not None and mark.rsplit(" ", 1)[0] == here
