"""The one type for a run's status, with what every front end asks of it.

The store keeps the value (a plain string column); the CLI, the app and the exports ask
the member for its label and style and whether the run is active, final or resumable,
instead of listing status strings of their own.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """Where a stored run stands. The value is what the store keeps."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        """The word shown in tables."""
        return self.value

    @property
    def style(self) -> str:
        """A Rich/Textual style: green done, red bad, yellow stopped, cyan going."""
        return _STYLES[self]

    @property
    def active(self) -> bool:
        """Queued or training now: a process owns it."""
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def final(self) -> bool:
        """A result that will not change: finished or diverged."""
        return self in (RunStatus.FINISHED, RunStatus.DIVERGED)

    @property
    def resumable(self) -> bool:
        """Stopped before its end with its finished epochs kept; ``fnn-tui resume`` continues it."""
        return self in RESUMABLE

    @property
    def bad(self) -> bool:
        """An outcome that makes a command exit with 1 (diverged, failed, crashed)."""
        return self in (RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.CRASHED)


_STYLES = {
    RunStatus.QUEUED: "dim",
    RunStatus.RUNNING: "cyan",
    RunStatus.FINISHED: "green",
    RunStatus.DIVERGED: "red",
    RunStatus.FAILED: "red",
    RunStatus.CRASHED: "red",
    RunStatus.CANCELLED: "yellow",
    RunStatus.INTERRUPTED: "yellow",
}
# failed: an error inside the run, such as a full disk, keeps its epochs and can go on
RESUMABLE = (RunStatus.INTERRUPTED, RunStatus.CRASHED, RunStatus.CANCELLED, RunStatus.FAILED)
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
