"""Stop flags the trainer polls between chunks of steps.

A user's Stop ends a run as "cancelled"; a signal (SIGTERM, SIGINT, SIGHUP) ends it as
"interrupted", resumable, and the process then exits with 128 + the signal number.
"""

from __future__ import annotations

import signal
from types import FrameType

from fnn_tui.core.status import RunStatus


class StopRequest:
    """A stop flag that remembers why it was set, safe to set from a signal handler.

    It takes no lock: a handler runs in the main thread between two bytecodes, possibly
    while that thread is itself inside :meth:`set` (a second signal, or a stop asked in
    code), and a lock held there would never be released. Plain attribute writes are
    atomic under the GIL, which is all the threads that read the flag need.
    """

    def __init__(self) -> None:
        self._set = False
        self.status = RunStatus.CANCELLED
        self.signum: int | None = None

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._set

    def set(self, status: RunStatus = RunStatus.CANCELLED, signum: int | None = None) -> None:
        """Ask the run to stop; the first reason given wins."""
        if not self._set:
            self.status = status
            self.signum = signum
        self._set = True


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
