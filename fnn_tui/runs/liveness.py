"""Whether a run's process is alive, and marking the runs whose process is gone.

Kept out of the store (which only knows rows): this is the one place that looks at
processes to decide that a "running" run has crashed. A run's row holds its process's pid
and start mark (:mod:`fnn_tui.processes`); on this machine that is proof either way, so a
run whose process is gone (or whose pid now belongs to another process) is crashed at
once. Only where that cannot be checked (another host, another boot or pid namespace, no
pid) does a run wait for its heartbeat to go stale.
"""

from __future__ import annotations

import os

from fnn_tui.processes import same_place, start_mark
from fnn_tui.store.runs import Store


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        pass
    return True


def process_alive(pid: int | None, mark: str | None) -> bool | None:
    """Whether the process a run recorded (``pid`` and its start ``mark``) is alive: ``True``,
    ``False`` (gone, a zombie, or the pid reused by a process that started later), or
    ``None`` when this machine cannot tell (no pid; a mark of another boot or pid namespace)."""
    if not pid:
        return None
    if mark is not None and not same_place(mark):
        return None
    if not pid_alive(pid):
        return False
    if mark is None:  # recorded without a mark (an older fnn-tui, or no /proc): the pid is all there is
        return True
    return start_mark(pid) == mark  # gone since, or another process's pid now


def reap(store: Store, grace: float = 5.0) -> list[int]:
    """Mark active runs whose process is gone as crashed; return their ids.

    A run of this machine whose process is known dead is crashed at once; ``grace`` is only
    for a run of this host without a recorded pid. Runs whose process cannot be checked from
    here (another host, boot or pid namespace) are crashed when their heartbeat is older
    than the store's ``STALE_SECONDS``.
    """
    return store.mark_stale_as_crashed(process_alive, grace=grace)
