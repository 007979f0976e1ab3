"""The PyTorch reference trainer: the notes' math, determinism, learning, cancel, divergence."""

from __future__ import annotations

import dataclasses
import math
import threading

import pytest
import torch
import torch.nn.functional as F

from fnn_tui.core.data import epoch_order, make_dataset
from fnn_tui.core.devices import DeviceError, available_devices, resolve_device
from fnn_tui.core.engines import EngineError
from fnn_tui.core.engines.torch_engine import TorchEngine
from fnn_tui.core.events import (
    EpochFinished,
    RunCancelled,
    RunDiverged,
    RunFinished,
    RunStarted,
    StepProgress,
)
from fnn_tui.core.model import build_model, mean_var_norm
from fnn_tui.core.trainer import RunOptions, train


def test_mean_var_norm_matches_the_notes_example() -> None:
    # the notes: x = arange(10); x = (x - mean(x)) / var(x) -> [-0.4909, -0.3818, ..., 0.4909]
    x = torch.arange(10, dtype=torch.float32)
    n = mean_var_norm(x)
    expected = (x - 4.5) / (82.5 / 9)  # unbiased variance of 0..9 is 9.1667
    assert torch.allclose(n, expected)
    assert n[0].item() == pytest.approx(-0.4909, abs=1e-4)
    assert (n * n).sum().item() == pytest.approx(0.9818, abs=1e-4)


def test_mean_var_norm_is_per_sample_for_batches() -> None:
    h = torch.randn(4, 7, generator=torch.Generator().manual_seed(1))
    rows = torch.stack([mean_var_norm(h[i]) for i in range(4)])
    assert torch.allclose(mean_var_norm(h), rows)


def test_one_sgd_step_with_l2_and_clip_matches_a_hand_computation(catalog) -> None:
    preset = catalog.get("exp08").with_overrides(samples=50)
    data = make_dataset(preset.data)
    engine = TorchEngine(preset, data, "cpu")
    order = epoch_order(data.n_train, preset.data.seed, 0)
    engine.set_epoch(0, order, 0.01)
    # by hand: autograd of MSE + l2 * sum(p^2), the clip formula, the first momentum step
    model = build_model(preset.model, preset.data.seed)
    params = list(model.parameters())
    x, y = data.x_train[order[:1]], data.y_train[order[:1]]
    loss = F.mse_loss(model(x), y) + 1e-4 * sum((p**2).sum() for p in params)
    grads = torch.autograd.grad(loss, params)
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    coef = min(1.0, 1.0 / (total.item() + 1e-6))
    assert coef < 1.0  # this step is clipped, so the clip is exercised
    expected = [p.detach() - 0.01 * coef * g for p, g in zip(params, grads)]
    assert engine.run_steps(0, 1) == -1
    got, momentum = engine.snapshot()
    for e, g in zip(expected, got.values()):
        assert torch.allclose(e, g, atol=1e-6)
    assert len(momentum) == len(params)


def _collect(preset, options=RunOptions(engine="torch"), stop=None):
    events = []
    end = train(preset, options, events.append, stop)
    return events, end


def test_same_seed_gives_identical_metrics(tiny08) -> None:
    a, _ = _collect(tiny08)
    b, _ = _collect(tiny08)
    ma = [e.metrics for e in a if isinstance(e, EpochFinished)]
    mb = [e.metrics for e in b if isinstance(e, EpochFinished)]
    assert len(ma) == 3
    assert [dataclasses.replace(m, seconds=0) for m in ma] == [dataclasses.replace(m, seconds=0) for m in mb]
    c, _ = _collect(tiny08.with_overrides(seed=5))
    assert [e.metrics.train_loss for e in c if isinstance(e, EpochFinished)] != [m.train_loss for m in ma]


def test_short_exp08_run_lowers_the_loss(catalog) -> None:
    preset = catalog.get("exp08").with_overrides(samples=600, epochs=4)
    events, end = _collect(preset)
    assert isinstance(end, RunFinished)
    losses = [e.metrics.train_loss for e in events if isinstance(e, EpochFinished)]
    assert losses[-1] < 0.8 * losses[0]
    started = events[0]
    assert isinstance(started, RunStarted) and started.steps_per_epoch == 480 and started.engine == "torch"
    assert all(math.isfinite(v) for v in dataclasses.astuple(end.final))
    assert end.final.lr == 0.01
    assert any(isinstance(e, StepProgress) for e in events)


class _StopAfter:
    """A stop flag that trips once an epoch has finished."""

    def __init__(self) -> None:
        self.flag = threading.Event()

    def is_set(self) -> bool:
        return self.flag.is_set()


def test_cancel_stops_within_one_epoch(tiny08) -> None:
    stop = _StopAfter()
    events: list = []

    def emit(e) -> None:
        events.append(e)
        if isinstance(e, EpochFinished):
            stop.flag.set()

    end = train(tiny08.with_overrides(epochs=50), RunOptions(engine="torch"), emit, stop)
    assert isinstance(end, RunCancelled)
    assert end.epochs_done == 1
    assert sum(isinstance(e, EpochFinished) for e in events) == 1


def test_a_huge_learning_rate_diverges(catalog) -> None:
    preset = catalog.get("exp04").with_overrides(samples=300, epochs=3)
    preset = dataclasses.replace(preset, training=dataclasses.replace(preset.training, lr=50.0))
    for engine in ("torch", "fused"):
        events, end = _collect(preset, RunOptions(engine=engine))
        assert isinstance(end, RunDiverged), engine
        assert end.epoch == 1 and 1 <= end.step <= 240
        assert "NaN or infinite" in end.reason
        assert not any(isinstance(e, EpochFinished) for e in events)


@pytest.mark.parametrize("engine", ["torch", "fused"])
def test_an_infinite_loss_in_epoch_two_keeps_epoch_one(tiny08, monkeypatch, engine) -> None:
    inject_infinite_target(monkeypatch, epoch=1, step=7)
    events, end = _collect(tiny08, RunOptions(engine=engine))
    assert isinstance(end, RunDiverged)
    assert (end.epoch, end.step) == (2, 8)
    finished = [e for e in events if isinstance(e, EpochFinished)]
    assert [e.metrics.epoch for e in finished] == [1]
    assert all(torch.isfinite(t).all() for t in finished[0].state.params.values())


def inject_infinite_target(monkeypatch, *, epoch: int, step: int) -> None:
    """Make one target of one epoch infinite, in both engines' own set_epoch."""
    from fnn_tui.core.engines.fused_engine import FusedEngine

    for cls in (TorchEngine, FusedEngine):
        original = cls.set_epoch

        def set_epoch(self, e, order, lr, _original=original):
            _original(self, e, order, lr)
            if e == epoch:
                self.ys[step] = float("inf")

        monkeypatch.setattr(cls, "set_epoch", set_epoch)


def test_devices_and_engines_are_checked_before_any_work(tiny08) -> None:
    assert available_devices()[0] == "cpu"
    assert resolve_device("auto") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="not available"):
            train(tiny08, RunOptions(device="cuda:0"), lambda e: None)
    with pytest.raises(DeviceError, match="unknown device"):
        train(tiny08, RunOptions(device="tpu"), lambda e: None)
    with pytest.raises(EngineError, match="unknown engine"):
        train(tiny08, RunOptions(engine="jax"), lambda e: None)


def test_auto_engine_on_the_cpu_is_fused(tiny08) -> None:
    events, end = _collect(tiny08, RunOptions())
    assert isinstance(events[0], RunStarted) and events[0].engine == "fused" and events[0].device == "cpu"
    assert isinstance(end, RunFinished)
