"""Messages from the app's worker threads to the app (posted from those threads).

Training events are the core's own (:mod:`fnn_tui.core.events`), wrapped in one message
with the id of the run they belong to; the rest say what the worker follows and when the
store's runs have been read.
"""

from __future__ import annotations

from textual.message import Message

from fnn_tui.core.events import Event, StepProgress


class RunEvent(Message):
    """One of the trainer's events for run ``run_id`` (read from the store by the follower)."""

    def __init__(self, run_id: int, event: Event) -> None:
        super().__init__()
        self.run_id = run_id
        self.event = event

    def can_replace(self, message: Message) -> bool:
        """Only the newest step position inside an epoch matters to the progress bar."""
        return (isinstance(self.event, StepProgress) and isinstance(message, RunEvent)
                and message.run_id == self.run_id and isinstance(message.event, StepProgress))


class Following(Message):
    """The worker follows these runs (a new queue, or runs found going at start)."""

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids


class QueueEnded(Message):
    """The worker has nothing more to follow."""


class ResultsLoaded(Message):
    """The store's runs, the runs list's rows and the report's, all made off the UI thread."""

    # list[RunRecord], list[ResultRow], list[PresetReport] (None: not made this time),
    # dict[int, SeedRole]: each run's place in its study
    def __init__(self, records: list, rows: list, ask: int, reports: list | None = None,
                 roles: dict | None = None) -> None:
        super().__init__()
        self.records = records
        self.rows = rows
        self.ask = ask  # which request this answers: a later one supersedes it
        self.reports = reports
        self.roles = roles or {}
