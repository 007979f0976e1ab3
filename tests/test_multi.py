"""Seeds trained together (one per SIMD lane) behave as single-seed fused runs.

Every lane is compared with a single-seed ``FusedEngine`` run of its seed. The kernels sum
in a different order (lane by lane instead of reassociated across a vector), so the
comparison is to rounding: in float64 over 500 steps, in float32 over 100 steps (exp08's
normalisation amplifies rounding, see test_fused.py). All tests use three lanes, so
only a few kernel signatures get compiled.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from fnn_tui.core.data import epoch_order, make_dataset
from fnn_tui.core.engines.fused_engine import FusedEngine
from fnn_tui.core.engines.multi_engine import MultiFusedEngine
from fnn_tui.core.events import (
    EpochFinished,
    GroupEpochFinished,
    RunCancelled,
    RunDiverged,
    RunFinished,
    RunStarted,
)
from fnn_tui.core.group import default_lanes, train_group
from fnn_tui.core.model import build_model
from fnn_tui.core.state import CheckpointError, TrainState
from fnn_tui.core.trainer import RunOptions, train

SEEDS = [0, 1, 2]


def _single(preset, seed: int, steps: int, dtype) -> FusedEngine:
    p = preset.with_overrides(seed=seed)
    data = make_dataset(p.data)
    engine = FusedEngine(p, data, dtype=dtype)
    engine.set_epoch(0, epoch_order(data.n_train, seed, 0), p.training.lr)
    assert engine.run_steps(0, steps) == -1
    return engine


@pytest.mark.parametrize(
    ("name", "steps", "dtype", "tol"),
    [
        ("exp08", 500, np.float64, 1e-9),  # norm, clip and L2
        ("exp03", 500, np.float64, 1e-9),  # plain, no clip, no L2
        ("exp08", 100, np.float32, 1e-4),
        ("exp03", 100, np.float32, 1e-4),
    ],
)
def test_each_lane_equals_its_single_seed_run(catalog, name, steps, dtype, tol) -> None:
    preset = catalog.get(name).with_overrides(samples=700)  # 560 training samples: one epoch
    group = MultiFusedEngine(preset, SEEDS, dtype=dtype)
    group.set_epoch(0, preset.training.lr)
    assert (group.run_steps(0, steps) == -1).all()
    for lane, seed in enumerate(SEEDS):
        single = _single(preset, seed, steps, dtype)
        assert np.abs(group.params[:, lane] - single.params).max() <= tol
        scale = max(1.0, float(np.abs(single.buf).max()))  # early gradients reach ~3 without clipping
        assert np.abs(group.buf[:, lane] - single.buf).max() <= tol * 10 * scale
        # per-step losses, relative to their size (early losses are ~10); a loss amplifies
        # parameter rounding through the normalisation's 1/var, hence 100 x the tolerance
        a, b = group.losses[:steps, lane].astype(np.float64), single.losses[:steps].astype(np.float64)
        assert (np.abs(a - b) <= tol * 100 * np.maximum(1.0, np.abs(b))).all()
        # a lane's checkpoint is the single engine's: same names, shapes and values
        (pg, mg), (ps, ms) = group.snapshot(lane), single.snapshot()
        assert pg.keys() == ps.keys() and mg.keys() == ms.keys()
        for key in ps:
            assert pg[key].shape == ps[key].shape and pg[key].dtype == ps[key].dtype
            assert torch.allclose(pg[key], ps[key], rtol=0, atol=10 * tol)
        # test metrics
        # test metrics, and the spread of y_hat the dead-network check reads
        assert np.allclose(group.evaluate()[lane], single.evaluate(), rtol=10 * tol)


def _training(preset, **changes):
    return dataclasses.replace(preset, training=dataclasses.replace(preset.training, **changes))


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("exp08", {"batch_size": 4}),  # batches of several samples: the gradient is summed, then one update
        ("exp03", {"clip": 0.5, "l2": 1e-3}),  # clip and L2 without normalisation
    ],
)
def test_other_paths_equal_the_single_seed_run(catalog, name, changes) -> None:
    preset = _training(catalog.get(name).with_overrides(samples=700), **changes)
    steps = 120
    group = MultiFusedEngine(preset, SEEDS, dtype=np.float64)
    group.set_epoch(0, preset.training.lr)
    assert (group.run_steps(0, steps) == -1).all()
    for lane, seed in enumerate(SEEDS):
        single = _single(preset, seed, steps, np.float64)
        assert np.abs(group.params[:, lane] - single.params).max() <= 1e-9
        assert np.abs(group.buf[:, lane] - single.buf).max() <= 1e-8 * max(1.0, float(np.abs(single.buf).max()))


@pytest.mark.parametrize(("name", "dtype"), [("exp03", np.float64), ("exp06", np.float32), ("exp01", np.float32)])
def test_the_plain_single_pass_equals_the_general_kernel_to_the_bit(catalog, name, dtype) -> None:
    # presets with neither normalisation, L2 nor clipping train layers 0 and 1 in one pass
    # (multi_plain._plain_low); a clip too large to ever act sends the same preset through
    # the general kernel (a backward pass, then an update pass), which must agree to the bit
    preset = catalog.get(name).with_overrides(samples=700)
    general = _training(preset, clip=1e30)
    runs = []
    for p in (preset, general):
        engine = MultiFusedEngine(p, SEEDS, dtype=dtype)
        engine.set_epoch(0, p.training.lr)
        for start, stop in ((0, 1), (1, 2), (2, 37), (37, 300)):  # calls end mid-epoch, as chunks do
            engine.run_steps(start, stop)
        engine.set_epoch(1, p.training.lr * 0.5)
        engine.run_steps(0, 250)
        runs.append(engine)
    plain, full = runs
    assert not np.array_equal(plain.params, MultiFusedEngine(preset, SEEDS, dtype=dtype).params)  # it trained
    assert np.array_equal(plain.params, full.params) and np.array_equal(plain.buf, full.buf)
    assert np.array_equal(plain.losses, full.losses) and np.array_equal(plain.ratios, full.ratios)


def test_steps_split_over_calls_equal_one_call(catalog) -> None:
    # a call applies its last step's update before it returns (the next call's first
    # forward pass has none to apply): any split gives the same numbers to the bit
    preset = catalog.get("exp08").with_overrides(samples=700)
    whole = MultiFusedEngine(preset, SEEDS)
    whole.set_epoch(0, preset.training.lr)
    whole.run_steps(0, 300)
    split = MultiFusedEngine(preset, SEEDS)
    split.set_epoch(0, preset.training.lr)
    for start, stop in ((0, 1), (1, 2), (2, 37), (37, 37), (37, 300)):
        split.run_steps(start, stop)
    assert np.array_equal(whole.params, split.params) and np.array_equal(whole.buf, split.buf)
    assert np.array_equal(whole.losses, split.losses)
    assert not np.array_equal(whole.params, MultiFusedEngine(preset, SEEDS).params)  # it trained


@pytest.mark.parametrize("name", ["exp08", "exp03"])  # with and without the normalisation
def test_predicting_four_samples_at_once_equals_one_at_a_time(catalog, name) -> None:
    preset = catalog.get(name).with_overrides(samples=700)
    group = MultiFusedEngine(preset, SEEDS)
    group.set_epoch(0, preset.training.lr)
    group.run_steps(0, 200)
    xs = np.linspace(1.0, 16.0, 11)  # two blocks of four and three samples one by one
    together = group.predict(xs)
    alone = np.concatenate([group.predict(xs[j:j + 1]) for j in range(len(xs))])
    assert together.shape == (11, len(SEEDS)) and np.isfinite(together).all()
    assert np.array_equal(together, alone)
    assert len({float(v) for v in together[:, 0]}) > 1  # a fitted curve, not a constant


def _ends_by_lane(events: list) -> dict:
    return {e.lane: e for e in events if isinstance(e, RunFinished | RunDiverged | RunCancelled)}


def _epochs(events: list, lane: int) -> list:
    return [f.metrics for g in events if isinstance(g, GroupEpochFinished) for f in g.lanes if f.lane == lane]


def test_a_diverging_lane_stops_alone(catalog) -> None:
    # exp04 (lr 0.5): seed 1 diverges early, seeds 0 and 2 do not
    preset = catalog.get("exp04").with_overrides(samples=300, epochs=2)
    # the engine: lane 1 stops at the single engine's step, keeping the parameters from before it
    group = MultiFusedEngine(preset, SEEDS)
    group.set_epoch(0, preset.training.lr)
    bad = group.run_steps(0, group.steps_per_epoch)
    p1 = preset.with_overrides(seed=1)
    data = make_dataset(p1.data)
    single = FusedEngine(p1, data)
    single.set_epoch(0, epoch_order(data.n_train, 1, 0), p1.training.lr)
    assert list(bad) == [-1, single.run_steps(0, single.steps_per_epoch), -1] and bad[1] >= 0
    assert not group.is_live(1) and group.is_live(0)
    # (relative: the weights have grown to ~1e9 on the way)
    assert (np.abs(group.params[:, 1] - single.params) <= 1e-4 * np.maximum(1.0, np.abs(single.params))).all()
    assert np.isfinite(group.params[:, 1]).all()
    # the trainer
    events: list = []
    ends = train_group(preset, SEEDS, RunOptions(), events.append)
    assert [type(e) for e in ends] == [RunFinished, RunDiverged, RunFinished]
    assert [e.lane for e in ends] == [0, 1, 2]
    assert [e.seed for e in events if isinstance(e, RunStarted)] == SEEDS
    for lane, seed in enumerate(SEEDS):
        single: list = []
        end = train(preset.with_overrides(seed=seed), RunOptions(engine="fused"), single.append)
        assert type(end) is type(ends[lane])
        if isinstance(end, RunDiverged):
            assert (ends[lane].epoch, ends[lane].step) == (end.epoch, end.step)
            assert _epochs(events, lane) == []
            continue
        mine = _epochs(events, lane)
        theirs = [e.metrics for e in single if isinstance(e, EpochFinished)]
        assert len(mine) == len(theirs) == 2
        for a, b in zip(mine, theirs, strict=True):
            for field in ("train_loss", "train_ratio", "test_loss", "test_ratio", "test_mae", "lr"):
                assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-4), field


class StopAfter:
    """A stop flag that turns on at check ``n + 1`` (the group checks once per chunk; the
    first two chunks of an epoch hold at most 32 + 128 steps, so this stops inside it)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


def test_stop_inside_an_epoch_and_resume_is_exact(catalog) -> None:
    preset = catalog.get("exp08").with_overrides(samples=500, epochs=2)
    whole: list = []
    train_group(preset, SEEDS, RunOptions(), whole.append)
    first: list = []
    ends = train_group(preset, SEEDS, RunOptions(), first.append, stop_event=StopAfter(2))
    assert all(isinstance(e, RunCancelled) and e.state is not None and e.state.step > 0 for e in ends)
    states = [e.state for e in ends]
    assert len({(s.epoch, s.step) for s in states}) == 1 and [s.seed for s in states] == SEEDS
    rest: list = []
    ends = train_group(preset, SEEDS, RunOptions(), rest.append, resume=states)
    assert all(isinstance(e, RunFinished) for e in ends)
    for lane in range(len(SEEDS)):
        resumed = [dataclasses.replace(m, seconds=0.0) for m in _epochs(first, lane) + _epochs(rest, lane)]
        assert resumed == [dataclasses.replace(m, seconds=0.0) for m in _epochs(whole, lane)]
    # the final checkpoints are equal bit for bit
    last_whole = [g for g in whole if isinstance(g, GroupEpochFinished)][-1]
    last_rest = [g for g in rest if isinstance(g, GroupEpochFinished)][-1]
    for lane in range(len(SEEDS)):
        a, b = last_whole.state(lane), last_rest.state(lane)
        assert a.epoch == b.epoch == preset.training.epochs
        for key, value in a.params.items():
            assert torch.equal(value, b.params[key])
    # a group event's state is that of its epoch, or none at all
    earlier = [g for g in whole if isinstance(g, GroupEpochFinished)][0]
    with pytest.raises(RuntimeError, match="trained past epoch 1"):
        earlier.state(0)


def test_a_lane_checkpoint_resumes_as_a_single_run(catalog) -> None:
    preset = catalog.get("exp08").with_overrides(samples=500, epochs=2)
    first: list = []
    train_group(preset, SEEDS, RunOptions(), first.append, stop_event=StopAfter(2))
    state = _ends_by_lane(first)[2].state
    single: list = []
    end = train(preset.with_overrides(seed=2), RunOptions(engine="fused"), single.append, resume=state)
    assert isinstance(end, RunFinished) and end.final.epoch == 2


def test_lanes_at_different_positions_are_refused(catalog) -> None:
    preset = catalog.get("exp03").with_overrides(samples=300, epochs=2)
    p = preset.with_overrides(seed=1)
    model = build_model(p.model, 1)
    params = {n: t.detach().clone() for n, t in model.named_parameters()}
    late = TrainState(1, params, {}, p.to_toml(), p.digest(), "fused", 1)
    with pytest.raises(CheckpointError, match="different positions"):
        train_group(preset, [0, 1], RunOptions(), lambda e: None, resume=[None, late])


def test_a_network_with_all_first_layer_relus_off_is_dead(catalog) -> None:
    preset = catalog.get("exp03").with_overrides(samples=300, epochs=1)
    p = preset.with_overrides(seed=1)
    params = {n: t.detach().clone() for n, t in build_model(p.model, 1).named_parameters()}
    params["layers.0.weight"].zero_()
    params["layers.0.bias"].fill_(-1.0)  # every first-layer unit is below zero for every input
    dead = TrainState(0, params, {}, p.to_toml(), p.digest(), "fused", 1)
    events: list = []
    ends = train_group(preset, SEEDS, RunOptions(), events.append, resume=[None, dead, None])
    assert all(isinstance(e, RunFinished) for e in ends)
    assert [m.dead for lane in range(3) for m in _epochs(events, lane)] == [False, True, False]


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads /proc/cpuinfo")
def test_default_lanes_follows_the_cpu() -> None:
    assert default_lanes() == (16 if "avx512f" in Path("/proc/cpuinfo").read_text().split() else 8)


def test_denormals_are_flushed_inside_the_fused_steps_and_only_there() -> None:
    from fnn_tui.core.engines import denormals_flushed

    a, b = np.float32(1e-30), np.float32(1e-10)  # the product, 1e-40, is below float32's normal range
    with denormals_flushed():
        assert a * b == 0
    assert a * b > 0  # gradual underflow again outside: the rest of the process is untouched


def test_the_lane_metrics_are_float64_means() -> None:
    from fnn_tui.core.engines import multi_kernels as mk

    rng = np.random.default_rng(3)
    losses = (rng.random((700, 8)) * 3).astype(np.float32)
    means = np.empty(8)
    mk.column_means(losses, means)
    assert np.array_equal(means, losses.mean(axis=0, dtype=np.float64))  # NumPy's numbers, to the bit
    yhat = (rng.random((300, 8)) + 1).astype(np.float32)
    y = (rng.random((300, 8)) + 1).astype(np.float32)
    out = np.empty((8, 4))
    mk.test_metrics(yhat, y, out)
    p, t = yhat.astype(np.float64), y.astype(np.float64)  # every term in float64, not float32
    expected = np.stack([((p - t) ** 2).mean(0), np.abs(p / t).mean(0), np.abs(p - t).mean(0), p.std(0)], axis=1)
    assert np.allclose(out, expected, rtol=1e-13, atol=0)


def test_a_cached_kernel_is_stale_when_any_kernel_file_changes() -> None:
    # Numba stamps a cached function with its own file only; the multi-seed kernels call
    # functions of other files, so every kernel file's function carries one stamp of all
    from fnn_tui.core.engines import fused_kernels, multi_kernels, multi_plain

    folder = Path(fused_kernels.__file__).resolve().parent
    stats = [(folder / name).stat() for name in fused_kernels.KERNEL_FILES]
    expected = (max(s.st_mtime for s in stats), sum(s.st_size for s in stats))
    for function in (multi_kernels.run_steps, multi_plain.run_plain, fused_kernels.evaluate):
        locator = function._cache._impl._locator  # Numba's cache of this function
        assert type(locator).__name__ == "KernelFilesLocator"
        assert locator.get_source_stamp() == expected
    assert {p.name for p in folder.glob("multi_*.py")} - {"multi_engine.py"} <= set(fused_kernels.KERNEL_FILES)
