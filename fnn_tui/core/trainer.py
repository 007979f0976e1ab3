"""The one trainer API both front ends call: ``train(preset, options, emit, stop_event)``.

It reads top to bottom like a training script: prepare (device, engine, data, model),
then per epoch: schedule, chunks of steps (with the stop check between chunks), divergence
check, evaluation (with the dead-network check), log. It never prints; everything it has to
say is an event.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fnn_tui.core.budget import memory_problems
from fnn_tui.core.data import Dataset, epoch_order, make_dataset
from fnn_tui.core.dead import is_dead, spread
from fnn_tui.core.devices import resolve_device
from fnn_tui.core.engines import Engine, EngineNote, choose_engine, engine_note
from fnn_tui.core.events import (
    EndEvent,
    EpochFinished,
    EpochMetrics,
    Event,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    StepProgress,
)
from fnn_tui.core.grid import grid_x
from fnn_tui.core.presets import Preset, PresetError
from fnn_tui.core.state import CheckpointError, TrainState, check_state
from fnn_tui.core.status import RunStatus

CHUNK_SECONDS = 0.1  # target time between stop checks and progress events


class StopFlag(Protocol):
    """Anything with ``is_set()``, such as :class:`threading.Event`; a ``status`` attribute
    (:class:`~fnn_tui.core.stopping.StopRequest`) says whether it was the user or a signal."""

    def is_set(self) -> bool: ...


def stop_reason(stop_event: StopFlag) -> RunStatus:
    """Cancelled (the user's stop) unless the flag says it was a signal (interrupted)."""
    status = getattr(stop_event, "status", RunStatus.CANCELLED)
    return RunStatus.INTERRUPTED if status == RunStatus.INTERRUPTED else RunStatus.CANCELLED


@dataclass(frozen=True)
class RunOptions:
    """How to run a preset: on which device and with which engine."""

    device: str = "auto"
    engine: str = "auto"


@dataclass(frozen=True)
class ResolvedRun:
    """A run's concrete device and engine, checked before any work."""

    device: str
    engine: str


def resolve(preset: Preset, options: RunOptions) -> ResolvedRun:
    """Check device and engine; raises ``DeviceError`` or ``EngineError`` on bad input."""
    device = resolve_device(options.device, batch_size=preset.training.batch_size)
    engine = choose_engine(
        options.engine, device=device, activation=preset.model.activation, loss=preset.training.loss
    )
    return ResolvedRun(device=device, engine=engine)


def engine_cost(preset: Preset, run: ResolvedRun) -> EngineNote:
    """Which engine this run uses on its device and what that costs
    (:func:`fnn_tui.core.engines.engine_note`)."""
    return engine_note(run.engine, device=run.device, activation=preset.model.activation,
                       loss=preset.training.loss)


def _make_engine(preset: Preset, run: ResolvedRun, data: Dataset, resume: TrainState | None) -> Engine:
    if run.engine == "fused":
        from fnn_tui.core.engines.fused_engine import FusedEngine

        return FusedEngine(preset, data, run.device, resume)
    from fnn_tui.core.engines.torch_engine import TorchEngine

    return TorchEngine(preset, data, run.device, resume)


def check_resume(preset: Preset, resume: TrainState) -> None:
    """Refuse a checkpoint that belongs to another preset, is past the end, or whose
    tensors do not fit the preset's network (checked before any engine sees them)."""
    if resume.preset_hash != preset.digest():
        raise CheckpointError("the checkpoint was made from a different preset (its hash does not match)")
    if resume.epoch > preset.training.epochs:
        raise CheckpointError(f"the checkpoint is at epoch {resume.epoch}, past the preset's {preset.training.epochs}")
    check_state(resume, preset)


def train(
    preset: Preset,
    options: RunOptions,
    emit: Callable[[Event], None],
    stop_event: StopFlag | None = None,
    resume: TrainState | None = None,
) -> EndEvent:
    """Train ``preset``, sending every event to ``emit``; return the final event.

    Bad input (device, engine, checkpoint, not enough memory) raises before any work. Once training has
    started, every outcome is an event: finished, diverged, cancelled or failed.
    """
    run = resolve(preset, options)
    if resume is not None:
        check_resume(preset, resume)
    # memory may have gone since the preset was validated: refuse before allocating
    short = memory_problems(preset)
    if short:
        raise PresetError(preset.source or preset.name, short)
    t = preset.training
    seed = preset.data.seed
    started = time.perf_counter()
    try:
        data = make_dataset(preset.data)
        engine = _make_engine(preset, run, data, resume)
        target_std = spread(data.y_test)  # once: the yardstick of the dead-network check
        start_epoch = resume.epoch if resume is not None else 0
        start_step = resume.step if resume is not None else 0
        steps = engine.steps_per_epoch
        if start_step >= steps:
            raise CheckpointError(f"the checkpoint is at step {start_step} of an epoch of {steps} steps")
        emit(RunStarted(preset.name, run.engine, run.device, seed, t.epochs, steps, start_epoch, start_step))
        toml, digest = preset.to_toml(), preset.digest()
        fit_x = grid_x(preset)
        chunk = 32
        last: EpochMetrics | None = None
        for epoch in range(start_epoch, t.epochs):
            epoch_start = time.perf_counter()
            # schedule: StepLR's closed form, so a resumed run gets the same rate
            lr = t.lr_at(epoch)
            engine.set_epoch(epoch, epoch_order(engine.n_train, seed, epoch), lr)
            step = 0
            if resume is not None and epoch == start_epoch and start_step:
                # continue a run stopped inside this epoch from the step it reached
                assert resume.step_losses is not None and resume.step_ratios is not None
                engine.restore_step_log(resume.step_losses, resume.step_ratios)
                step = start_step
            # steps, in chunks: stop check and progress between chunks
            while step < steps:
                if stop_event is not None and stop_event.is_set():
                    here = None
                    if step:  # inside an epoch: keep the position so resume continues from it
                        params, momentum = engine.snapshot()
                        losses, ratios = engine.step_log(step)
                        here = TrainState(epoch, params, momentum, toml, digest, run.engine, seed,
                                          step, losses, ratios)
                    end: EndEvent = RunCancelled(epoch, time.perf_counter() - started, here,
                                                 status=stop_reason(stop_event))
                    emit(end)
                    return end
                stop = min(step + chunk, steps)
                chunk_start = time.perf_counter()
                bad = engine.run_steps(step, stop)
                if bad >= 0:
                    end = RunDiverged(
                        epoch + 1, bad + 1, "training loss became NaN or infinite", time.perf_counter() - started
                    )
                    emit(end)
                    return end
                elapsed = time.perf_counter() - chunk_start
                chunk = _next_chunk(chunk, stop - step, elapsed)
                step = stop
                emit(StepProgress(epoch + 1, step, steps))
            # evaluate (and whether the network has gone dead: a constant prediction) and log
            train_loss, train_ratio = engine.train_metrics()
            test_loss, test_ratio, mae, pred_std = engine.evaluate()
            if not all(math.isfinite(v) for v in (train_loss, test_loss)):
                end = RunDiverged(epoch + 1, 0, "test loss became NaN or infinite", time.perf_counter() - started)
                emit(end)
                return end
            last = EpochMetrics(
                epoch + 1, train_loss, train_ratio, test_loss, test_ratio, mae, lr,
                time.perf_counter() - epoch_start, dead=is_dead(pred_std, target_std),
            )
            params, momentum = engine.snapshot()
            state = TrainState(epoch + 1, params, momentum, toml, digest, run.engine, seed)
            fit = engine.predict(fit_x) if fit_due(epoch + 1, t.epochs) else None
            emit(EpochFinished(last, t.epochs, state, fit=fit))
        if last is None:  # resumed from a checkpoint that was already complete
            raise CheckpointError("the checkpoint is already at the last epoch: nothing to resume")
        end = RunFinished(last, time.perf_counter() - started)
        emit(end)
        return end
    except CheckpointError:
        raise
    except Exception as exc:  # an unexpected failure becomes an event, not a crash
        end = RunFailed(f"{exc.__class__.__name__}: {exc}", time.perf_counter() - started)
        emit(end)
        return end


def fit_due(epoch: int, epochs: int) -> bool:
    """Whether epoch ``epoch`` (1-based) stores y_hat on the plot grid: about 30 fits a run
    (every epoch of a short run, every 5th of a 150-epoch one), the first and the last always.
    One fit costs about 2% of an exp08 epoch of the fused engine, so every k-th keeps it near 0.1%."""
    every = max(1, epochs // 30)
    return epoch == 1 or epoch == epochs or epoch % every == 0


def _next_chunk(chunk: int, done: int, elapsed: float) -> int:
    """Grow or shrink the chunk so one chunk takes about ``CHUNK_SECONDS``."""
    if elapsed <= 0:
        return chunk * 2
    per_step = elapsed / max(done, 1)
    target = int(CHUNK_SECONDS / per_step)
    return max(1, min(target, chunk * 4, 1_000_000))
