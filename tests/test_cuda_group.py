"""The GPU group engine trains each lane as the CPU multi-seed kernel does.

Runs where the engine can: on a real CUDA device, or under Numba's CUDA simulator, which
must be switched on before Numba is imported, so ``test_cuda_sim.py`` runs this file in a
process of its own with ``NUMBA_ENABLE_CUDASIM=1``. In the normal suite's own process
(no GPU, no simulator) it is skipped. The simulator runs each GPU thread as a Python
thread, so the cases are small: three lanes, about a hundred steps.

The GPU kernels sum in the CPU multi-seed kernel's order. The simulator computes each
operation in NumPy float32 as the CPU kernel does, so there the lanes must equal it bit for
bit; a GPU's compiler fuses multiply-adds, so on a GPU the comparison is to float32
rounding, as in test_multi.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fnn_tui.core.devices import DeviceError
from fnn_tui.core.engines import EngineError
from fnn_tui.core.engines.cuda_group import CudaGroupEngine, LaneHyper, simulated, unusable_reason
from fnn_tui.core.engines.multi_engine import MultiFusedEngine
from fnn_tui.core.events import GroupEpochFinished, RunCancelled, RunDiverged, RunFinished, RunStarted
from fnn_tui.core.group import group_run, train_group
from fnn_tui.core.trainer import RunOptions

pytestmark = [
    pytest.mark.skipif(unusable_reason() is not None, reason="no CUDA device and no CUDA simulator here"),
    # the simulator computes in NumPy scalars, which warn where a diverging lane overflows
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]

SEEDS = [0, 1, 2]
GPU = RunOptions(device="cuda", engine="auto")


def _training(preset, **changes):
    return dataclasses.replace(preset, training=dataclasses.replace(preset.training, **changes))


def _both(preset, steps: int, seeds=SEEDS, **engine):
    cpu = MultiFusedEngine(preset, list(seeds))
    cpu.set_epoch(0, preset.training.lr)
    gpu = CudaGroupEngine(preset, list(seeds), **engine)
    gpu.set_epoch(0, preset.training.lr)
    return cpu, cpu.run_steps(0, steps), gpu, gpu.run_steps(0, steps)


def _close(gpu: CudaGroupEngine, cpu: MultiFusedEngine, steps: int, tol: float = 1e-4) -> None:
    gpu.sync()
    if simulated():  # the same IEEE float32 operations in the same order: the same numbers
        assert np.array_equal(gpu.params, cpu.params) and np.array_equal(gpu.buf, cpu.buf)
        for lane in range(cpu.lanes):
            assert all(np.array_equal(a.numpy(), b.numpy())
                       for a, b in zip(gpu.step_log(lane, steps), cpu.step_log(lane, steps), strict=True))
        assert gpu.train_metrics() == cpu.train_metrics()
        assert gpu.evaluate() == cpu.evaluate()
    assert np.abs(gpu.params - cpu.params).max() <= tol
    assert np.abs(gpu.buf - cpu.buf).max() <= tol * 10 * max(1.0, float(np.abs(cpu.buf).max()))
    for lane in range(cpu.lanes):
        a, b = gpu.step_log(lane, steps)[0].double().numpy(), cpu.step_log(lane, steps)[0].double().numpy()
        assert (np.abs(a - b) <= tol * 100 * np.maximum(1.0, np.abs(b))).all()
    np.testing.assert_allclose(gpu.train_metrics(), cpu.train_metrics(), rtol=tol * 10)
    np.testing.assert_allclose(gpu.evaluate(), cpu.evaluate(), rtol=tol * 10, atol=1e-7)
    xs = np.linspace(1.0, 16.0, 9)
    np.testing.assert_allclose(gpu.predict(xs), cpu.predict(xs), rtol=tol * 10, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "changes", "steps", "kernel"),
    [
        ("exp08", {}, 100, "block"),  # normalisation, clip and L2, one sample a step
        ("exp08", {}, 100, "thread"),
        ("exp03", {}, 100, "block"),  # plain
        ("exp03", {}, 100, "thread"),
        ("exp08", {"batch_size": 4}, 30, "auto"),  # batches (the thread kernel): the gradient summed, then one update
    ],
)
def test_each_lane_equals_the_cpu_group_kernel(catalog, name, changes, steps, kernel) -> None:
    preset = _training(catalog.get(name).with_overrides(samples=700), **changes)  # 560 training samples
    cpu, cpu_bad, gpu, gpu_bad = _both(preset, steps, kernel=kernel)
    assert gpu.kernel == ("thread" if changes else kernel)
    assert (cpu_bad == -1).all() and (gpu_bad == -1).all()
    _close(gpu, cpu, steps)
    # a lane's checkpoint has the CPU engine's names, shapes and dtypes
    (pg, mg), (pc, mc) = gpu.snapshot(1), cpu.snapshot(1)
    assert pg.keys() == pc.keys() and mg.keys() == mc.keys()
    assert all(pg[n].shape == pc[n].shape and pg[n].dtype == pc[n].dtype for n in pc)


@pytest.mark.skipif(not simulated(), reason="a fault of Numba's CUDA simulator")
def test_the_block_kernel_shares_its_arrays_when_a_thread_switches_inside_an_allocation(catalog, monkeypatch):
    """The simulator's shared arrays are made per launch by whichever thread asks first; a
    thread switch while the first one is made (a garbage-collection pass can cause one: seen
    once in about 25 runs) used to give block 0's threads arrays of their own. Forced here in
    every launch: lane 0 must still equal the CPU kernel's."""
    import time

    from numba.cuda.simulator import kernelapi

    class SwitchingNumPy:
        def __getattr__(self, name):
            return getattr(np, name)

        def empty(self, *args, **kwargs):
            time.sleep(0.001)  # another thread runs here
            return np.empty(*args, **kwargs)

    monkeypatch.setattr(kernelapi, "np", SwitchingNumPy())
    preset = catalog.get("exp03").with_overrides(samples=100)
    steps = 20
    cpu, cpu_bad, gpu, gpu_bad = _both(preset, steps, kernel="block")
    assert gpu.kernel == "block" and (cpu_bad == -1).all() and (gpu_bad == -1).all()
    _close(gpu, cpu, steps)


@pytest.mark.parametrize("kernel", ["block", "thread"])
def test_a_diverging_lane_stops_at_the_cpu_kernels_step_and_keeps_its_weights(catalog, kernel) -> None:
    # exp04 (lr 0.5): seed 1 diverges within its first steps, seeds 0 and 2 do not
    preset = catalog.get("exp04").with_overrides(samples=300)
    steps = 100
    cpu, cpu_bad, gpu, gpu_bad = _both(preset, steps, kernel=kernel)
    assert list(gpu_bad) == list(cpu_bad) and gpu_bad[1] >= 0 and gpu_bad[0] == gpu_bad[2] == -1
    assert not gpu.is_live(1) and gpu.is_live(0) and gpu.is_live(2)
    gpu.sync()
    # the diverged lane holds its weights from before the bad step (grown to ~1e17 on the way)
    assert np.isfinite(gpu.params[:, 1]).all()
    if simulated():
        assert np.array_equal(gpu.params, cpu.params)
    assert (np.abs(gpu.params - cpu.params) <= 1e-4 * np.maximum(1.0, np.abs(cpu.params))).all()
    # a frozen lane never changes again
    before = gpu.params[:, 1].copy()
    assert (gpu.run_steps(steps, steps + 20) == -1).all()
    gpu.sync()
    assert np.array_equal(gpu.params[:, 1], before)


@pytest.mark.parametrize(
    ("hidden", "norm", "clip", "threads", "steps"),
    [
        ((20, 20, 30), "mean-var", 1.0, 32, 15),  # exp08's shape at a GPU's warp a lane
        # a layer of 3 outputs: a thread's weights step by one row and one column; a clip
        # that cuts every step and a large L2, so every term of the gradient norm counts
        ((3, 7, 2), "mean-var", 0.01, 4, 100),
        ((9, 1, 5), "none", None, 4, 100),  # a layer of one output: by four rows
    ],
)
def test_the_block_kernel_at_any_threads_a_lane_equals_the_cpu_kernel(catalog, hidden, norm, clip, threads, steps) -> None:
    from fnn_tui.core.variants import apply_settings

    preset = apply_settings(catalog.get("exp08").with_overrides(samples=300),
                            {"model.hidden": list(hidden), "model.norm": norm, "training.clip": clip,
                             "training.l2": 0.05 if clip == 0.01 else 1e-4})
    cpu, cpu_bad, gpu, gpu_bad = _both(preset, steps, seeds=[0, 1], kernel="block", block_threads=threads)
    assert gpu.kernel == "block" and gpu._train_shape == (2, threads)
    assert list(gpu_bad) == list(cpu_bad)
    _close(gpu, cpu, steps)


def test_a_group_may_change_kernels_between_launches(catalog) -> None:
    preset = catalog.get("exp08").with_overrides(samples=300)
    cpu = MultiFusedEngine(preset, SEEDS)
    cpu.set_epoch(0, preset.training.lr)
    assert (cpu.run_steps(0, 60) == -1).all()
    gpu = CudaGroupEngine(preset, SEEDS, kernel="thread")
    gpu.set_epoch(0, preset.training.lr)
    assert (gpu.run_steps(0, 30) == -1).all()
    gpu.use_kernel("block")
    assert gpu.kernel == "block" and (gpu.run_steps(30, 60) == -1).all()
    _close(gpu, cpu, 60)


def test_shapes_too_big_for_shared_memory_take_the_thread_kernel(catalog) -> None:
    from fnn_tui.core.engines import cuda_block
    from fnn_tui.core.engines.cuda_group import training_kernel

    exp08, exp06 = catalog.get("exp08"), catalog.get("exp06")
    assert training_kernel(exp08.model.sizes, 1) == training_kernel(exp06.model.sizes, 1) == "block"
    assert cuda_block.shared_bytes(exp08.model.sizes) == 10824  # ~21 lanes an SM of 228 KB
    wide = (1, 80, 80, 1)  # 2 x 6802 floats of weights and momentum: over 48 KB
    assert cuda_block.shared_bytes(wide) > cuda_block.SHARED_BYTES
    assert training_kernel(wide, 1) == "thread" and training_kernel(exp08.model.sizes, 4) == "thread"
    with pytest.raises(ValueError, match="block kernel does not train"):
        training_kernel(wide, 1, "block")
    with pytest.raises(ValueError, match="expected one of"):
        training_kernel(exp08.model.sizes, 1, "warp")


def test_each_lane_takes_its_own_hyperparameters(catalog) -> None:
    base = catalog.get("exp08").with_overrides(samples=700)
    variants = [
        _training(base, lr=0.02, momentum=0.9),
        _training(base, l2=0.0, clip=None),
        _training(base, clip=0.1, l2=1e-3, decay_factor=None),
    ]
    steps = 80
    gpu = CudaGroupEngine(base, SEEDS, hyper=LaneHyper.of([v.training for v in variants]))
    gpu.set_epoch(0)  # each lane's own schedule
    assert (gpu.run_steps(0, steps) == -1).all()
    gpu.sync()
    for lane, variant in enumerate(variants):
        cpu = MultiFusedEngine(variant, SEEDS)
        cpu.set_epoch(0, variant.training.lr)
        assert (cpu.run_steps(0, steps) == -1).all()
        assert np.abs(gpu.params[:, lane] - cpu.params[:, lane]).max() <= (0 if simulated() else 1e-4)
    # the per-lane schedule: StepLR's closed form per lane
    hyper = LaneHyper.of([v.training for v in variants])
    assert list(hyper.lr_at(7)) == [np.float32(v.training.lr_at(7)) for v in variants]


def _ends(events: list) -> dict:
    return {e.lane: e for e in events if isinstance(e, RunFinished | RunDiverged | RunCancelled)}


def test_train_group_on_the_gpu_emits_the_cpu_groups_events(catalog) -> None:
    preset = catalog.get("exp04").with_overrides(samples=150, epochs=2)
    gpu_events: list = []
    gpu_ends = train_group(preset, SEEDS, GPU, gpu_events.append)
    cpu_events: list = []
    cpu_ends = train_group(preset, SEEDS, RunOptions(device="cpu"), cpu_events.append)
    assert [type(e) for e in gpu_ends] == [type(e) for e in cpu_ends]
    assert RunDiverged in [type(e) for e in gpu_ends] and RunFinished in [type(e) for e in gpu_ends]
    started = [e for e in gpu_events if isinstance(e, RunStarted)]
    assert [(e.seed, e.engine, e.device) for e in started] == [(s, "fused-cuda", "cuda:0") for s in SEEDS]
    for lane, end in _ends(cpu_events).items():
        mine = _ends(gpu_events)[lane]
        if isinstance(end, RunDiverged):
            assert (mine.epoch, mine.step) == (end.epoch, end.step)
    groups = [g for g in gpu_events if isinstance(g, GroupEpochFinished)]
    cpu_groups = [g for g in cpu_events if isinstance(g, GroupEpochFinished)]
    assert len(groups) == len(cpu_groups) == 2
    for g, c in zip(groups, cpu_groups, strict=True):
        assert [f.lane for f in g.lanes] == [f.lane for f in c.lanes]
        for a, b in zip(g.lanes, c.lanes, strict=True):
            for field in ("train_loss", "train_ratio", "test_loss", "test_ratio", "test_mae", "lr"):
                assert getattr(a.metrics, field) == pytest.approx(getattr(b.metrics, field), rel=1e-4), field
    # the last group event's checkpoints are the fused engine's, from the GPU lanes
    state = groups[-1].state(groups[-1].lanes[0].lane)
    assert state.engine == "fused-cuda" and state.epoch == 2


class StopAfter:
    """A stop flag that turns on at check ``n + 1`` (once per chunk)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


def test_stop_inside_an_epoch_and_resume_on_the_gpu_is_exact(catalog) -> None:
    preset = catalog.get("exp03").with_overrides(samples=50, epochs=1)  # 40 steps: chunks of 32 and 8
    whole: list = []
    assert all(isinstance(e, RunFinished) for e in train_group(preset, SEEDS, GPU, whole.append))
    first: list = []
    ends = train_group(preset, SEEDS, GPU, first.append, stop_event=StopAfter(1))
    assert all(isinstance(e, RunCancelled) and e.state is not None and e.state.step == 32 for e in ends)
    rest: list = []
    ends = train_group(preset, SEEDS, GPU, rest.append, resume=[e.state for e in ends])
    assert all(isinstance(e, RunFinished) for e in ends)
    a = [g for g in whole if isinstance(g, GroupEpochFinished)][-1]
    b = [g for g in rest if isinstance(g, GroupEpochFinished)][-1]
    assert [x.lane for x in a.lanes] == [y.lane for y in b.lanes] == [0, 1, 2]
    for x, y in zip(a.lanes, b.lanes, strict=True):
        assert dataclasses.replace(x.metrics, seconds=0.0) == dataclasses.replace(y.metrics, seconds=0.0)


def test_a_stopped_gpu_lane_resumed_with_device_cuda_stays_a_gpu_lane(catalog, tmp_path) -> None:
    from typer.testing import CliRunner

    from fnn_tui.cli import app
    from fnn_tui.core.events import EpochFinished
    from fnn_tui.core.status import RunStatus
    from fnn_tui.core.stopping import StopRequest
    from fnn_tui.runs.execute import train_tasks
    from fnn_tui.runs.plan import plan
    from fnn_tui.store.runs import Store

    preset = catalog.get("exp03").with_overrides(samples=50, epochs=2)
    stop = StopRequest()
    with Store(tmp_path) as store:
        planned = plan(store, [preset], GPU, [0, 1])
    assert [t.engine for t in planned.tasks] == ["fused-cuda"]
    first = train_tasks(tmp_path, planned.tasks, 1,
                        lambda _rid, e: isinstance(e, EpochFinished) and stop.set(RunStatus.INTERRUPTED), stop).results
    lane = first[1].run_id
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "resume", str(lane), "--device", "cuda"])
    assert result.exit_code == 0, result.output
    with Store(tmp_path) as store:
        record = store.get_run(lane)
    assert (record.status, record.engine, record.device, record.epochs_done) == ("finished", "fused-cuda", "cuda:0", 2)


def test_which_engine_a_group_gets(catalog) -> None:
    preset = catalog.get("exp08")
    assert group_run(preset, GPU, 3).engine == "fused-cuda"
    assert group_run(preset, RunOptions(device="cuda:0", engine="fused"), 3).engine == "fused-cuda"
    with pytest.raises((EngineError, DeviceError)):  # DeviceError: torch sees no GPU (the simulator)
        group_run(preset, RunOptions(device="cuda", engine="torch"), 3)
    if simulated():  # auto never takes the simulator for a GPU
        run = group_run(preset, RunOptions(), 16384)
        assert (run.engine, run.device) == ("fused", "cpu")


def test_the_next_epochs_orders_drawn_ahead_are_that_epochs(catalog) -> None:
    from fnn_tui.core.data import epoch_order

    preset = catalog.get("exp03").with_overrides(samples=100)
    seeds = [4, 4, 9]  # a repeated seed is shuffled once
    engine = CudaGroupEngine(preset, seeds)
    for epoch in (0, 1, 2, 5):  # 1 and 2 come from the thread; 5 is drawn on the spot
        engine.set_epoch(epoch, 0.01)
        orders = engine.d_orders.copy_to_host()
        assert orders.shape == (2, engine.n_train)
        for row, seed in enumerate((4, 9)):
            assert np.array_equal(orders[row], epoch_order(engine.n_train, seed, epoch).numpy())
        assert list(engine.d_row_of.copy_to_host()) == [0, 0, 1]
