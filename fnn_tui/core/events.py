"""Typed events the trainer emits to its one callback, and the per-epoch metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fnn_tui.core.status import RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from fnn_tui.core.state import TrainState


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch measured. ``ratio`` is the notes' "acc": mean |y_hat / y|, 1.0 is perfect."""

    epoch: int  # 1-based
    train_loss: float  # MSE part only, mean over the epoch's steps
    train_ratio: float  # mean |y_hat / y| over the epoch's steps
    test_loss: float
    test_ratio: float
    test_mae: float
    lr: float
    seconds: float
    dead: bool = False  # the network predicts (nearly) a constant over the test inputs


@dataclass(frozen=True)
class RunStarted:
    """Training is about to start (after data, model and device are ready)."""

    preset: str
    engine: str
    device: str
    seed: int
    epochs: int
    steps_per_epoch: int
    start_epoch: int = 0  # epochs already done (non-zero when resuming)
    start_step: int = 0  # steps already done in the next epoch (resuming inside an epoch)
    lane: int = 0  # which seed of a group trained together (0 for a single run)


@dataclass(frozen=True)
class StepProgress:
    """Progress inside an epoch, sent between chunks of steps."""

    epoch: int  # 1-based epoch in progress
    step: int  # steps done in this epoch
    steps_per_epoch: int


@dataclass(frozen=True)
class EpochFinished:
    """An epoch is done; ``state`` is everything needed to continue from here (``None`` when
    the epoch is read back from the store rather than trained in this process, and for a
    group's lanes, whose states come from :class:`GroupEpochFinished`)."""

    metrics: EpochMetrics
    epochs: int
    state: TrainState | None = None
    lane: int = 0
    # y_hat on the preset's plot grid (core.grid), every few epochs and at the last; else None
    fit: np.ndarray | None = None


@dataclass(frozen=True)
class RunFinished:
    """All epochs are done."""

    final: EpochMetrics
    wall_seconds: float
    lane: int = 0


@dataclass(frozen=True)
class RunDiverged:
    """The loss became NaN or infinite; finished epochs are kept."""

    epoch: int  # 1-based epoch in which it happened
    step: int  # 1-based step in that epoch (0: during evaluation)
    reason: str
    wall_seconds: float
    lane: int = 0


@dataclass(frozen=True)
class RunCancelled:
    """Stopped on request; ``epochs_done`` complete epochs are kept, and ``state`` holds the
    position inside the next epoch when it stopped there (``None`` at an epoch boundary).
    ``status`` says why: the user's stop (cancelled) or a signal (interrupted)."""

    epochs_done: int
    wall_seconds: float
    state: TrainState | None = None
    status: RunStatus = RunStatus.CANCELLED
    lane: int = 0


@dataclass(frozen=True)
class RunFailed:
    """An unexpected error stopped the run; ``status`` is crashed when its process vanished."""

    error: str
    wall_seconds: float
    status: RunStatus = RunStatus.FAILED
    lane: int = 0


@dataclass(frozen=True)
class GroupEpochFinished:
    """Epoch ``epoch`` is done for every lane of a group still training: one event, so a
    recorder can store the whole group's epoch in one transaction.

    The lanes' events carry no ``state``: building a checkpoint for every lane every epoch
    cost about a millisecond per epoch of ten lanes, and a group checkpoints every few
    seconds. ``state(lane)`` builds one, for this epoch, while the event is being handled;
    once the group has trained on it raises ``RuntimeError`` rather than give a later state.
    """

    epoch: int  # 1-based
    lanes: tuple[EpochFinished, ...]
    state: Callable[[int], TrainState]


Event = RunStarted | StepProgress | EpochFinished | GroupEpochFinished | RunFinished | RunDiverged | RunCancelled | RunFailed
EndEvent = RunFinished | RunDiverged | RunCancelled | RunFailed


def end_status(event: EndEvent) -> RunStatus:
    """The status a run has after this end event."""
    if isinstance(event, RunFinished):
        return RunStatus.FINISHED
    if isinstance(event, RunDiverged):
        return RunStatus.DIVERGED
    return event.status


def diverged_where(event: RunDiverged) -> str:
    """``epoch 3, step 17`` (or ``epoch 3`` when it happened in evaluation)."""
    return f"epoch {event.epoch}" + (f", step {event.step}" if event.step else "")
