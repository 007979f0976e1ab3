"""The dead-network check: the rule itself, both engines' std of y_hat, and real runs."""

from __future__ import annotations

import math

import pytest
import torch

from fnn_tui.core.data import make_dataset
from fnn_tui.core.dead import DEAD_STD_FRACTION, is_dead, spread
from fnn_tui.core.engines.fused_engine import FusedEngine
from fnn_tui.core.engines.torch_engine import TorchEngine
from fnn_tui.core.events import EpochFinished, RunFinished
from fnn_tui.core.model import build_model
from fnn_tui.core.presets import Preset
from fnn_tui.core.state import TrainState
from fnn_tui.core.trainer import RunOptions, train

ENGINES = ("torch", "fused")


def test_the_rule_and_its_edges() -> None:
    assert DEAD_STD_FRACTION == 0.01
    assert is_dead(0.0, 1.2)
    assert is_dead(0.0099, 1.0)
    assert not is_dead(0.01, 1.0)  # exactly at the threshold is alive
    assert not is_dead(0.5, 1.0)
    # nothing to compare with, or nothing measured: never called dead
    assert not is_dead(0.0, 0.0)
    assert not is_dead(math.nan, 1.0)
    assert not is_dead(0.0, math.inf)


def test_spread_is_the_population_std_in_float64() -> None:
    values = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float32)
    mean = 7.0 / 3.0
    expected = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 3)
    assert spread(values) == pytest.approx(expected, rel=1e-12)
    assert spread(torch.tensor([3.0])) == 0.0
    # a constant far from zero: no cancellation
    assert spread(torch.full((1000,), 1e6)) == 0.0


@pytest.mark.parametrize("engine_cls", [TorchEngine, FusedEngine])
def test_evaluate_returns_the_std_of_the_forward_pass(tiny08: Preset, engine_cls: type) -> None:
    data = make_dataset(tiny08.data)
    engine = engine_cls(tiny08, data, "cpu")
    loss, _ratio, _mae, pred_std = engine.evaluate()
    with torch.no_grad():
        out = build_model(tiny08.model, tiny08.data.seed)(data.x_test)
    assert pred_std == pytest.approx(spread(out), rel=1e-5)
    assert pred_std > 0
    assert loss == pytest.approx(float(((out - data.y_test) ** 2).mean()), rel=1e-5)


def _dead_start(preset: Preset) -> TrainState:
    """A checkpoint at epoch 0 whose first layer is switched off for every input: weights 0,
    biases -1. No gradient reaches that layer again, so every later layer sees zeros and
    the output is its biases' result: the same number for every input, whatever the lr."""
    params = {n: p.detach().clone() for n, p in build_model(preset.model, preset.data.seed).named_parameters()}
    params["layers.0.weight"].zero_()
    params["layers.0.bias"].fill_(-1.0)
    return TrainState(0, params, {}, preset.to_toml(), preset.digest(), "torch", preset.data.seed)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_network_with_its_first_layer_off_is_dead_in_every_epoch(catalog, engine: str) -> None:
    # exp01 has no normalisation: with it, an all-equal layer would divide 0 by 0 and diverge
    preset = catalog.get("exp01").with_overrides(samples=300, epochs=3)
    events: list = []
    end = train(preset, RunOptions(engine=engine), events.append, resume=_dead_start(preset))
    assert isinstance(end, RunFinished)
    metrics = [e.metrics for e in events if isinstance(e, EpochFinished)]
    assert [m.epoch for m in metrics] == [1, 2, 3]
    assert all(m.dead for m in metrics)
    assert end.final.dead
    # it still learns its constant: the loss is finite and near the targets' variance
    target_var = spread(make_dataset(preset.data).y_test) ** 2
    assert metrics[-1].test_loss == pytest.approx(target_var, rel=0.5)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_normally_trained_network_is_not_dead(tiny08: Preset, engine: str) -> None:
    events: list = []
    end = train(tiny08, RunOptions(engine=engine), events.append)
    assert isinstance(end, RunFinished)
    metrics = [e.metrics for e in events if isinstance(e, EpochFinished)]
    assert len(metrics) == 3
    assert not any(m.dead for m in metrics)
    assert not end.final.dead
