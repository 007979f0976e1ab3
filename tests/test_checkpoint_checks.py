"""Checkpoints are untrusted files: real ones, edited, are refused by name before any engine runs.

Each test trains a tiny run for real, saves its checkpoint with ``save_checkpoint``, edits
the file's payload the way a hand-made or damaged checkpoint would differ, and checks the
one-line refusal. A wrong shape used to reach the fused engine's flat arrays (exit 139).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from fnn_tui.core.events import EpochFinished, RunFinished
from fnn_tui.core.presets import Preset, parse_preset
from fnn_tui.core.state import CheckpointError, TrainState, check_state, load_checkpoint, save_checkpoint
from fnn_tui.core.trainer import RunOptions, check_resume, train


def _first_epoch(preset: Preset, engine: str) -> TrainState:
    states: list[TrainState] = []

    def emit(event: object) -> None:
        if isinstance(event, EpochFinished):
            states.append(event.state)

    train(preset, RunOptions(engine=engine), emit)
    return dataclasses.replace(states[0])


@pytest.fixture(scope="module")
def tiny() -> Preset:
    from fnn_tui.core.catalog import discover

    return discover(include_user=False).get("exp08").with_overrides(samples=200, epochs=3)


@pytest.fixture(scope="module")
def saved(tiny: Preset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint after one epoch of the torch engine, as written to disk."""
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_checkpoint(_first_epoch(tiny, "torch"), path)
    return path


def _edited(saved: Path, tmp_path: Path, edit) -> Path:
    payload = torch.load(saved, weights_only=True)
    edit(payload)
    path = tmp_path / "edited.pt"
    torch.save(payload, path)
    return path


def test_a_real_checkpoint_passes_and_resumes(tiny: Preset, saved: Path) -> None:
    state = load_checkpoint(saved)
    check_resume(tiny, state)
    end = train(tiny, RunOptions(engine="fused"), lambda e: None, resume=state)
    assert isinstance(end, RunFinished) and end.final.epoch == 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["params"].__setitem__("layers.1.weight", torch.zeros(7, 3)),
         "checkpoint parameter layers.1.weight: expected shape (20, 20), found (7, 3)"),
        (lambda p: p["params"].__setitem__("layers.0.bias", torch.zeros(2000)),
         "checkpoint parameter layers.0.bias: expected shape (20,), found (2000,)"),
        (lambda p: p["momentum"].__setitem__("layers.3.weight", torch.zeros(30, 1)),
         "checkpoint momentum buffer layers.3.weight: expected shape (1, 30), found (30, 1)"),
        (lambda p: p["params"].pop("layers.2.bias"),
         "checkpoint parameters: expected layers.0.weight, layers.0.bias"),
        (lambda p: p["params"].__setitem__("layers.9.weight", torch.zeros(1)),
         "found unexpected layers.9.weight"),
        (lambda p: p["params"].__setitem__("layers.0.weight", torch.zeros(20, 1, dtype=torch.int64)),
         "checkpoint parameter layers.0.weight: expected float32 or float64, found torch.int64"),
        (lambda p: p["params"]["layers.0.weight"].__setitem__((0, 0), float("nan")),
         "checkpoint parameter layers.0.weight: expected finite values, found NaN or infinity"),
        (lambda p: p.__setitem__("step", 10_000),
         "is missing fields"),  # a step count without its per-step log is refused at load
        (lambda p: p.update(step=10_000, step_losses=torch.zeros(10_000), step_ratios=torch.zeros(10_000)),
         "the checkpoint is at step 10000: expected 0 to 159 (an epoch has 160 steps)"),
        (lambda p: p.__setitem__("seed", 5), "the checkpoint is for seed 5, the preset's seed is 0"),
    ],
)
def test_an_edited_checkpoint_is_refused_by_name(tiny: Preset, saved: Path, tmp_path: Path, edit, message: str) -> None:
    path = _edited(saved, tmp_path, edit)
    with pytest.raises(CheckpointError) as info:
        state = load_checkpoint(path)
        check_resume(tiny, state)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_negative_epoch_is_refused_at_load(saved: Path, tmp_path: Path) -> None:
    path = _edited(saved, tmp_path, lambda p: p.__setitem__("epoch", -1))
    with pytest.raises(CheckpointError, match="is at epoch -1: expected a finished-epoch count >= 0"):
        load_checkpoint(path)


@pytest.mark.parametrize("engine", ["fused", "torch"])
def test_a_wrong_shape_never_reaches_an_engine(tiny: Preset, saved: Path, tmp_path: Path, engine: str) -> None:
    path = _edited(saved, tmp_path, lambda p: p["params"].__setitem__("layers.2.weight", torch.zeros(3, 2)))
    events: list[object] = []
    with pytest.raises(CheckpointError, match="layers.2.weight: expected shape"):
        train(tiny, RunOptions(engine=engine), events.append, resume=load_checkpoint(path))
    assert events == []  # refused before RunStarted: no engine was built


def test_check_state_accepts_float64_and_an_empty_momentum(tiny: Preset, saved: Path) -> None:
    state = load_checkpoint(saved)
    doubled = dataclasses.replace(state, params={k: v.double() for k, v in state.params.items()}, momentum={})
    check_state(doubled, tiny)
    with pytest.raises(CheckpointError, match="expected 0 to 3"):
        check_state(dataclasses.replace(state, epoch=4), tiny)


def test_a_run_stored_before_the_norm_rename_still_resumes(tiny: Preset, tmp_path: Path) -> None:
    # what a run made before the rename stored: its preset text says norm = "seed", and its
    # hash (in the store and the checkpoint) is the sha256 of that text, computed the old way
    old_text = tiny.to_toml().replace('norm = "mean-var"', 'norm = "seed"')
    assert 'norm = "seed"' in old_text
    old_hash = hashlib.sha256(old_text.encode()).hexdigest()[:16]
    stored = parse_preset(old_text, source="run 1", name=tiny.name)
    state = dataclasses.replace(_first_epoch(tiny, "torch"), preset_toml=old_text, preset_hash=old_hash)
    save_checkpoint(state, tmp_path / "old.pt")
    resumed = load_checkpoint(tmp_path / "old.pt")
    assert resumed.preset_hash == stored.digest() == tiny.digest()
    check_resume(stored, resumed)
    end = train(stored, RunOptions(engine="torch"), lambda e: None, resume=resumed)
    assert isinstance(end, RunFinished) and end.final.epoch == 3
