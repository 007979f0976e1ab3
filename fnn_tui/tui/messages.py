"""Messages from the training worker to the app (posted from the worker thread)."""

from __future__ import annotations

from textual.message import Message

from fnn_tui.core.events import EpochMetrics


class Following(Message):
    """The worker follows these runs (a new batch, or runs found going at start)."""

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids


class TrainingStarted(Message):
    """A followed run is training; ``history`` holds the epochs it already has (resumed, reattached)."""

    def __init__(self, run_id: int, preset: str, engine: str, device: str, epochs: int, steps: int,
                 queue_index: int, queue_size: int, history: list[EpochMetrics]) -> None:
        super().__init__()
        self.run_id, self.preset, self.engine, self.device = run_id, preset, engine, device
        self.epochs, self.steps, self.history = epochs, steps, history
        self.queue_index, self.queue_size = queue_index, queue_size


class StepAdvanced(Message):
    """Progress inside an epoch; a newer one replaces an undelivered older one."""

    def __init__(self, run_id: int, epoch: int, step: int, steps: int) -> None:
        super().__init__()
        self.run_id, self.epoch, self.step, self.steps = run_id, epoch, step, steps

    def can_replace(self, message: Message) -> bool:
        """Only the newest step position matters to the progress bar."""
        return isinstance(message, StepAdvanced) and message.run_id == self.run_id


class EpochDone(Message):
    """An epoch finished and is in the store."""

    def __init__(self, run_id: int, metrics: EpochMetrics, epochs: int) -> None:
        super().__init__()
        self.run_id, self.metrics, self.epochs = run_id, metrics, epochs


class TrainingEnded(Message):
    """A run ended: finished, diverged, cancelled, interrupted or failed."""

    def __init__(self, run_id: int, preset: str, status: str, message: str) -> None:
        super().__init__()
        self.run_id, self.preset, self.status, self.message = run_id, preset, status, message


class QueueEnded(Message):
    """The worker has nothing more to run."""


class ResultsLoaded(Message):
    """The store's runs and the results table's rows, both made off the UI thread."""

    def __init__(self, records: list, rows: list, ask: int) -> None:  # list[RunRecord], list[ResultRow]
        super().__init__()
        self.records = records
        self.rows = rows
        self.ask = ask  # which request this answers: a later one supersedes it
