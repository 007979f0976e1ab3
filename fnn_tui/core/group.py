"""Train several runs of one network together: ``train_lanes``, the K-lane ``train``.

Per-sample SGD on these small networks leaves most of a CPU's vector unit idle; the
multi-seed fused engine fills it with one run per lane (see
:mod:`fnn_tui.core.engines.multi_kernels`). This module is the epoch loop around it. It
reads like :func:`fnn_tui.core.trainer.train` and emits the same events, each carrying the
``lane`` it belongs to, so a caller records lane i exactly as a single run of
``presets[i]``: its checkpoints are interchangeable with the fused engine's. A lane that
diverges is reported and frozen while the others go on; stop and resume act on the group.

The lanes need not be seeds of one preset: each lane has its own seed and its own
learning rate, schedule (``decay_factor``, ``decay_every``), momentum, L2 and clip
(:data:`PER_LANE`); every other setting must be equal, which :func:`lane_key` says. The fused
engine on the CPU groups runs (:func:`group_capacity`); ``train_group`` is the
seeds-of-one-preset case.
On a CUDA device the same loop drives the GPU group engine
(:mod:`fnn_tui.core.engines.cuda_group`, thousands of lanes a launch): :func:`group_run`
says which engine a group gets.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Hashable, Sequence
from functools import cache
from pathlib import Path

from fnn_tui.core.devices import DeviceError, resolve_device
from fnn_tui.core.engines import CUDA_GROUP_ENGINE, EngineError, cuda_kernel_setting, fused_unsupported_reason
from fnn_tui.core.events import (
    EndEvent,
    EpochFinished,
    EpochMetrics,
    Event,
    GroupEpochFinished,
    RunCancelled,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    StepProgress,
)
from fnn_tui.core.grid import grid_x
from fnn_tui.core.presets import Preset
from fnn_tui.core.state import CheckpointError, TrainState
from fnn_tui.core.trainer import (
    ResolvedRun,
    RunOptions,
    StopFlag,
    _next_chunk,
    check_resume,
    fit_due,
    resolve,
    stop_reason,
)


@cache
def default_lanes() -> int:
    """How many seeds to train per group on this CPU: 16 with AVX-512, else 8.

    One lane is one float32 in a vector register: 16 fill an AVX-512 register, 8 an AVX2
    one. 32 lanes (two AVX-512 registers) measured no cheaper per seed-step than
    16 on exp08 and exp06 (``benchmarks/seeds.py``, 2-core AMD EPYC with AVX-512), so a
    group stays at one register's worth. The kernels are compiled for the host CPU (Numba's default target), so the
    check asks LLVM what it sees, and reads ``/proc/cpuinfo`` where LLVM does not say.
    """
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
        return 16 if features.get("avx512f") else 8
    except Exception:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 8
    return 16 if "avx512f" in flags.split() else 8


def group_capacity(preset: Preset, options: RunOptions) -> int:
    """How many runs of ``preset``'s :func:`lane_key` can share one kernel under ``options``.

    - the GPU group engine (engine ``fused-cuda``, or device ``cuda``/``cuda:N`` with engine
      ``auto`` or ``fused`` where :func:`group_run` gives it): :data:`GPU_MAX_LANES`;
    - the fused engine on the CPU: :func:`default_lanes` (16 with AVX-512, else 8);
    - otherwise 1 (the torch engine, MPS: each run trains alone).

    A CPU group may hold fewer lanes (it is padded to :func:`padded_lanes`) or more (each
    lane count compiles its own kernel, and 32 lanes measured no cheaper per seed-step than
    16). Device ``auto`` answers for the CPU: whether ``auto`` takes the GPU depends on the
    group's size (:func:`planned_runs`). Raises what :func:`~fnn_tui.core.trainer.resolve`
    (or :func:`group_run`, for ``fused-cuda``) raises for an engine or device that cannot run
    the preset.
    """
    if options.device.strip().lower() != "auto" and _gpu_group(preset, options, GPU_MAX_LANES) is not None:
        return GPU_MAX_LANES
    run = resolve(preset, options)
    return default_lanes() if run.engine == "fused" and run.device == "cpu" else 1


def _gpu_group(preset: Preset, options: RunOptions, lanes: int) -> ResolvedRun | None:
    """:func:`group_run`'s answer when it is the GPU group engine; ``None`` when the lanes go
    elsewhere or cannot train together. Engine ``fused-cuda`` named outright: its errors raise."""
    device = options.device.strip().lower()
    if device.startswith("cuda") or options.engine.strip().lower() == CUDA_GROUP_ENGINE:
        cuda_kernel_setting()  # a bad FNN_TUI_CUDA_KERNEL is the user's error, not a reason to go without
    if options.engine.strip().lower() == CUDA_GROUP_ENGINE:
        return group_run(preset, options, lanes)
    if not (device.startswith("cuda") or device == "auto"):
        return None  # the CPU or MPS: nothing to ask (and no numba.cuda import)
    try:
        run = group_run(preset, options, lanes)
    except (EngineError, DeviceError):
        return None  # e.g. --engine torch, or no libNVVM: the lanes train one by one, as runs alone
    return run if run.engine == CUDA_GROUP_ENGINE else None


def group_sizes(lanes: int, capacity: int) -> list[int]:
    """``lanes`` cut into the fewest groups of at most ``capacity``, as even as can be
    (20 000 lanes at 16 384: two groups of 10 000, not 16 384 and 3 616)."""
    if lanes <= 0:
        return []
    count = -(-lanes // capacity)
    return [lanes // count + (1 if i < lanes % count else 0) for i in range(count)]


def planned_runs(runs: Sequence[Preset], options: RunOptions) -> list[ResolvedRun]:
    """The engine and device of each of ``runs`` (each already seeded: new runs asked for
    together) under ``options``: the planner's rule, one for every front end.

    Runs of one :func:`lane_key` form groups (:func:`group_sizes` of :data:`GPU_MAX_LANES`);
    a group of several lanes that :func:`group_run` gives to the GPU group engine
    (``--device cuda`` or ``cuda:N``; ``auto`` when :func:`gpu_pays` for the group's real
    size) trains on ``fused-cuda``. Every other run gets the single-run rule
    (:func:`~fnn_tui.core.trainer.resolve`): one new run on ``cuda`` keeps the torch engine,
    and on the CPU the planner groups fused runs by :func:`group_capacity`. Raises
    ``DeviceError`` or ``EngineError`` on bad input, before any work.
    """
    classes: dict[Hashable, list[int]] = {}
    for i, run in enumerate(runs):
        classes.setdefault(lane_key(run), []).append(i)
    out: list[ResolvedRun | None] = [None] * len(runs)
    for members in classes.values():
        sizes = group_sizes(len(members), GPU_MAX_LANES)
        gpu = _gpu_group(runs[members[0]], options, sizes[0]) if sizes[0] > 1 else None
        for i in members:
            out[i] = gpu if gpu is not None else resolve(runs[i], options)
    return [r for r in out if r is not None]


def task_run(preset: Preset, options: RunOptions, lanes: int, together: bool) -> ResolvedRun:
    """The device and engine a planned task trains on, from its first stored run's
    ``options`` (device and engine columns): :func:`group_run` for ``lanes`` runs that train
    as lanes of one kernel (``together``; the only way ``fused-cuda`` trains), else the
    single-run rule. Raises as they do when the device or engine is not here any more."""
    return group_run(preset, options, lanes) if together else resolve(preset, options)


# The settings each lane of a group has for itself (besides its seed): everything the
# kernel reads as one number per lane. Every other setting is in lane_key.
PER_LANE = ("lr", "momentum", "decay_factor", "decay_every", "l2", "clip")


def lane_key(preset: Preset) -> Hashable:
    """What must be equal for presets to train as lanes of one group (:func:`train_lanes`).

    Exactly the settings the kernel cannot vary per lane: the data (target, domain,
    samples, train fraction), the network (widths, activation, normalisation) and the
    training's epochs, batch size and loss, i.e. every setting but the seed and
    :data:`PER_LANE`. Names, descriptions and the notes' numbers do not matter. The key is
    built by blanking the per-lane settings, so a setting added to a preset later is
    shared until the kernel learns to vary it.
    """
    data = dataclasses.replace(preset.data, seed=0)
    training = dataclasses.replace(preset.training, lr=1.0, momentum=0.0, decay_factor=None, decay_every=1,
                                   l2=0.0, clip=None)
    return (data, preset.model, training)


def padded_lanes(lanes: int) -> int:
    """The lanes a group of ``lanes`` seeds is computed on: a multiple of 8 (one AVX2 vector of
    float32; two halves of an AVX-512 one). Measured on exp06 at 10 seeds: 1.00 s for 10
    lanes, 0.82 s for 16."""
    return max(8, -(-lanes // 8) * 8)


# When ``auto`` trains a group on the GPU (a real CUDA device, never the simulator): at least
# this many lanes and seed-steps (lanes x steps per epoch x epochs). Provisional, not yet
# measured: a lane (a warp of the block kernel, a thread of the other) walks its steps one
# after another (a few us a step on exp08's shape, estimated), so the GPU pays only once the lanes outnumber what the CPU
# cores do in that time (~0.2 us per seed-step per core) and the run outlasts the kernels'
# first compile (seconds). benchmarks/gpu.py measures both sides.
GPU_MIN_LANES = 1024
GPU_MIN_SEED_STEPS = 10**9
# the most lanes in one GPU group: one launch holds them all (a block a lane, or 128 a block)
GPU_MAX_LANES = 16384


def gpu_pays(preset: Preset, lanes: int) -> bool:
    """Whether ``auto`` should train ``lanes`` lanes of ``preset`` on the GPU: a real CUDA device
    is here and the work is large (:data:`GPU_MIN_LANES`, :data:`GPU_MIN_SEED_STEPS`)."""
    t = preset.training
    steps = -(-preset.data.n_train // t.batch_size)
    if lanes < GPU_MIN_LANES or lanes * steps * t.epochs < GPU_MIN_SEED_STEPS:
        return False
    import torch

    if not torch.cuda.is_available():  # cheap, and no numba.cuda import on a CPU machine
        return False
    from fnn_tui.core.engines.cuda_group import real_gpu

    return real_gpu()


def group_run(preset: Preset, options: RunOptions, lanes: int) -> ResolvedRun:
    """The device and engine that ``lanes`` seeds (or variants) of ``preset`` train on together.

    - device ``cuda``/``cuda:N`` (engine ``auto``, ``fused`` or ``fused-cuda``): the GPU group
      engine, ``fused-cuda`` (under Numba's CUDA simulator, ``NUMBA_ENABLE_CUDASIM=1``, the
      simulator's one device, ``cuda:0``);
    - device ``auto``: the GPU group engine when :func:`gpu_pays`, else as below;
    - otherwise the single-run rule (:func:`resolve`), which must give the fused engine on
      the CPU: the multi-seed kernel.

    Raises :class:`EngineError` (or ``DeviceError``) when the lanes cannot train together;
    the caller then trains them one by one.
    """
    device = options.device.strip().lower()
    engine = options.engine.strip().lower()
    gpu_engines = ("auto", "fused", CUDA_GROUP_ENGINE)
    reason = fused_unsupported_reason(preset.model.activation, preset.training.loss, "cpu")
    if device.startswith("cuda") and engine in gpu_engines:
        if reason is not None:
            raise EngineError(reason)
        from fnn_tui.core.engines.cuda_group import simulated, unusable_reason

        concrete = ("cuda:0" if device == "cuda" else device) if simulated() else resolve_device(device)
        why = unusable_reason()
        if why is not None:
            raise EngineError(f"the GPU group engine cannot run here: {why}")
        return ResolvedRun(device=concrete, engine=CUDA_GROUP_ENGINE)
    if device == "auto" and engine in ("auto", "fused") and reason is None and gpu_pays(preset, lanes):
        from fnn_tui.core.devices import available_devices

        return ResolvedRun(device=available_devices()[1], engine=CUDA_GROUP_ENGINE)
    if engine == CUDA_GROUP_ENGINE:
        raise EngineError(f"the {CUDA_GROUP_ENGINE} engine runs on a CUDA device, not {device}")
    run = resolve(preset, options)
    if run.engine != "fused" or run.device != "cpu":
        raise EngineError(f"seeds train together only on the fused engine on the CPU or a GPU, not {run.engine} on {run.device}")
    return run


def train_group(
    preset: Preset,
    seeds: Sequence[int],
    options: RunOptions,
    emit: Callable[[Event], None],
    stop_event: StopFlag | None = None,
    resume: Sequence[TrainState | None] | None = None,
) -> list[EndEvent]:
    """Train ``preset`` for each of ``seeds`` at once; return each lane's final event
    (:func:`train_lanes` with lane i ``preset`` seeded ``seeds[i]``)."""
    presets = [preset.with_overrides(seed=s) for s in seeds]  # lane i is a single run of this
    return train_lanes(presets, options, emit, stop_event, resume)


def train_lanes(
    presets: Sequence[Preset],
    options: RunOptions,
    emit: Callable[[Event], None],
    stop_event: StopFlag | None = None,
    resume: Sequence[TrainState | None] | None = None,
) -> list[EndEvent]:
    """Train ``presets`` (each already seeded; all of one :func:`lane_key`) at once, lane i
    exactly as a single run of ``presets[i]``; return each lane's final event.

    Raises, before any work: :class:`ValueError` for no lanes or lanes of different
    :func:`lane_key`; :class:`EngineError` when they cannot train together (the caller
    then runs the presets one by one: :func:`group_run` names the engine, the CPU's
    multi-seed kernel or the GPU group engine, ``fused-cuda``); :class:`CheckpointError` for checkpoints
    that do not fit, or lanes at different positions. After that every outcome is an
    event, per lane.
    """
    from fnn_tui.core.engines.multi_engine import group_position

    presets = list(presets)
    if not presets:
        raise ValueError("a group needs at least one lane")
    if len({lane_key(p) for p in presets}) != 1:
        raise ValueError("these presets cannot train as one group: they differ in a setting other than "
                         f"the seed and {', '.join(PER_LANE)} (see lane_key)")
    preset = presets[0]
    run = group_run(preset, options, len(presets))
    lanes = len(presets)
    seeds = [p.data.seed for p in presets]
    if resume is not None:
        for p, r in zip(presets, resume, strict=True):
            if r is not None:
                check_resume(p, r)
    start_epoch, start_step = group_position(resume, lanes)
    t = preset.training
    started = time.perf_counter()
    ends: list[EndEvent | None] = [None] * lanes

    def end(lane: int, event: EndEvent) -> None:
        ends[lane] = event
        emit(event)

    def live() -> list[int]:
        return [i for i in range(lanes) if ends[i] is None]

    try:
        engine = _group_engine(run, presets, resume)
        steps = engine.steps_per_epoch
        if start_step >= steps:
            raise CheckpointError(f"the checkpoint is at step {start_step} of an epoch of {steps} steps")
        if start_epoch >= t.epochs:
            raise CheckpointError("the checkpoints are already at the last epoch: nothing to resume")
        for i, p in enumerate(presets):
            emit(RunStarted(p.name, run.engine, run.device, seeds[i], t.epochs, steps, start_epoch, start_step,
                            lane=i))
        tomls = [p.to_toml() for p in presets]
        fit_x = grid_x(preset)
        digests = [p.digest() for p in presets]
        last: list[EpochMetrics | None] = [None] * lanes
        chunk = 32
        for epoch in range(start_epoch, t.epochs):
            epoch_start = time.perf_counter()
            # schedule: StepLR's closed form, each lane its own; each lane its own sample order
            rates = [p.training.lr_at(epoch) for p in presets]
            if run.engine == CUDA_GROUP_ENGINE:
                engine.set_epoch(epoch)  # the same schedules, from each lane's LaneHyper
            else:
                engine.set_epoch(epoch, rates + [rates[0]] * (engine.lanes - lanes))
            step = 0
            if resume is not None and epoch == start_epoch and start_step:
                for i, r in enumerate(resume):
                    assert r is not None and r.step_losses is not None and r.step_ratios is not None
                    engine.restore_step_log(i, r.step_losses, r.step_ratios)
                step = start_step
            # steps, in chunks: stop check and progress between chunks
            while step < steps:
                if stop_event is not None and stop_event.is_set():
                    for i in live():
                        # the position reached (inside an epoch or at its start), so resume
                        # continues from it: a group checkpoints only every few seconds
                        params, momentum = engine.snapshot(i)
                        if step:
                            losses, ratios = engine.step_log(i, step)
                            here = TrainState(epoch, params, momentum, tomls[i], digests[i], run.engine, seeds[i],
                                              step, losses, ratios)
                        else:
                            here = TrainState(epoch, params, momentum, tomls[i], digests[i], run.engine, seeds[i])
                        end(i, RunCancelled(epoch, time.perf_counter() - started, here,
                                            status=stop_reason(stop_event), lane=i))
                    return _done(ends)
                stop = min(step + chunk, steps)
                chunk_start = time.perf_counter()
                bad = engine.run_steps(step, stop)
                # per-lane divergence: that lane is frozen and reported, the others go on
                for i in live():
                    if bad[i] >= 0:
                        end(i, RunDiverged(epoch + 1, int(bad[i]) + 1, "training loss became NaN or infinite",
                                           time.perf_counter() - started, lane=i))
                if not live():
                    return _done(ends)
                chunk = _next_chunk(chunk, stop - step, time.perf_counter() - chunk_start)
                step = stop
                emit(StepProgress(epoch + 1, step, steps))
            # evaluate and log, one event for the group's epoch
            train = engine.train_metrics()
            test = engine.evaluate()
            fits = engine.predict(fit_x) if fit_due(epoch + 1, t.epochs) else None
            finished = []
            for i in live():
                (train_loss, train_ratio), (test_loss, test_ratio, mae, spread) = train[i], test[i]
                if not all(math.isfinite(v) for v in (train_loss, test_loss)):
                    engine.freeze(i)
                    end(i, RunDiverged(epoch + 1, 0, "test loss became NaN or infinite",
                                       time.perf_counter() - started, lane=i))
                    continue
                last[i] = EpochMetrics(
                    epoch + 1, train_loss, train_ratio, test_loss, test_ratio, mae, rates[i],
                    time.perf_counter() - epoch_start, dead=engine.is_dead(i, spread),
                )
                fit = None if fits is None else fits[:, i].copy()
                finished.append(EpochFinished(last[i], t.epochs, None, lane=i, fit=fit))
            if finished:
                emit(GroupEpochFinished(epoch + 1, tuple(finished),
                                        _states_at(engine, epoch + 1, tomls, digests, run.engine, seeds)))
            if not live():
                return _done(ends)
        for i in live():
            metrics = last[i]
            assert metrics is not None
            end(i, RunFinished(metrics, time.perf_counter() - started, lane=i))
        return _done(ends)
    except CheckpointError:
        raise
    except Exception as exc:  # an unexpected failure becomes an event per lane, not a crash
        for i in live():
            end(i, RunFailed(f"{exc.__class__.__name__}: {exc}", time.perf_counter() - started, lane=i))
        return _done(ends)


def _group_engine(run: ResolvedRun, presets: list[Preset], resume: Sequence[TrainState | None] | None):
    """The engine of a group: the GPU one (one thread per lane), or the CPU multi-seed one."""
    lanes = len(presets)
    if run.engine == CUDA_GROUP_ENGINE:
        from fnn_tui.core.engines.cuda_group import CudaGroupEngine, LaneHyper

        return CudaGroupEngine(presets[0], [p.data.seed for p in presets], None if resume is None else list(resume),
                               hyper=LaneHyper.of([p.training for p in presets]), device=run.device)
    from fnn_tui.core.engines.multi_engine import MultiFusedEngine

    # the kernel pays for whole vectors: a group of 10 costs what one of 16 costs, and an odd
    # lane count vectorises worse still, so the group is padded with copies of its first
    # lane to a multiple of 8; the copies train along and are never reported
    width = padded_lanes(lanes)
    lane_presets = list(presets) + [presets[0]] * (width - lanes)
    lane_resume = None if resume is None else list(resume) + [resume[0]] * (width - lanes)
    return MultiFusedEngine(lane_presets, resume=lane_resume)


def _states_at(engine, epoch: int, tomls: list[str], digests: list[str], engine_name: str,
               seeds: Sequence[int]) -> Callable[[int], TrainState]:
    """A lane's checkpoint after ``epoch`` epochs, built on demand while the engine is still
    there (see :class:`GroupEpochFinished`)."""
    serial = engine.epochs_set

    def state(lane: int) -> TrainState:
        if engine.epochs_set != serial:
            raise RuntimeError(f"the group has trained past epoch {epoch}: its lanes' state there is gone")
        params, momentum = engine.snapshot(lane)
        return TrainState(epoch, params, momentum, tomls[lane], digests[lane], engine_name, seeds[lane])

    return state


def _done(ends: list[EndEvent | None]) -> list[EndEvent]:
    """The lanes' final events, once every lane has one."""
    assert all(e is not None for e in ends)
    return [e for e in ends if e is not None]
