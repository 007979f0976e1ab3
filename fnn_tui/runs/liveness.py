"""Whether a run's process is alive, and marking the runs whose process is gone.

Kept out of the store (which only knows rows): this is the one place that looks at
processes to decide that a "running" run has crashed.
"""

from __future__ import annotations

import os

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
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        pass
    return True


def reap(store: Store, grace: float = 5.0) -> list[int]:
    """Mark active runs whose process is gone as crashed; return their ids."""
    return store.mark_stale_as_crashed(pid_alive, grace=grace)
