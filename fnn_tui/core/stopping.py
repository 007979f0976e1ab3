"""Stop flags the trainer polls between chunks of steps.

A user's Stop ends a run as "cancelled"; a signal (SIGTERM, SIGINT, SIGHUP) ends it as
"interrupted", resumable, and the process then exits with 128 + the signal number.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from fnn_tui.core.status import RunStatus


class StopRequest:
    """A thread-safe stop flag that remembers why it was set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.status = RunStatus.CANCELLED
        self.signum: int | None = None

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()

    def set(self, status: RunStatus = RunStatus.CANCELLED, signum: int | None = None) -> None:
        """Ask the run to stop; the first reason given wins."""
        if not self._event.is_set():
            self.status = status
            self.signum = signum
        self._event.set()


STOP_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGINT", None), getattr(signal, "SIGHUP", None)) if s
)


def install_signal_stop(stop: StopRequest) -> None:
    """Turn SIGTERM, SIGINT and SIGHUP into an "interrupted" stop (main thread only)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        stop.set(RunStatus.INTERRUPTED, signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
