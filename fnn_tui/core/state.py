"""The engine-neutral training state and its checkpoint file.

A checkpoint holds the model's parameters, the momentum buffers, the number of finished
epochs and the resolved preset with its hash: with the per-epoch sample order derived from
``(seed, epoch)``, that is all a run needs to continue exactly. A run stopped inside an
epoch also keeps the steps done in it and their logged losses, so it continues from that
step. Files are written atomically and read with ``torch.load(weights_only=True)``, which
refuses pickles that would run code.

An epoch's checkpoint also carries that epoch's metrics and fit: the checkpoint is written
before the epoch's row is committed, so a process killed between the two leaves a
checkpoint one epoch ahead of the store, and resume stores the missing row from it.

A checkpoint file is untrusted input too: :func:`check_state` compares every tensor with
the shapes the preset implies before any engine sees it (the fused engine indexes flat
arrays by those shapes, and a wrong one reads out of bounds).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fnn_tui.core.events import EpochMetrics
from fnn_tui.core.grid import GRID_POINTS

if TYPE_CHECKING:
    from fnn_tui.core.presets import Preset

FORMAT = "fnn-tui-checkpoint"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # version 1 had no mid-epoch position, 2 no epoch metrics


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, not ours or does not fit the run."""


@dataclass(frozen=True)
class TrainState:
    """Everything needed to continue a run after ``epoch`` finished epochs and ``step``
    steps of the next one."""

    epoch: int
    params: dict[str, torch.Tensor]
    momentum: dict[str, torch.Tensor]  # empty before the first step
    preset_toml: str
    preset_hash: str
    engine: str
    seed: int
    step: int = 0  # steps done in epoch ``epoch + 1``; 0 at an epoch boundary
    step_losses: torch.Tensor | None = None  # the per-step MSE of those steps
    step_ratios: torch.Tensor | None = None  # and their |y_hat / y|
    # the metrics of epoch ``epoch`` and its fit (y_hat on the plot grid, when it has one), so a
    # resume can store the epoch's row when the process died after this file and before the row
    metrics: EpochMetrics | None = None
    fit: torch.Tensor | None = None

    def to_payload(self) -> dict[str, Any]:
        """Plain data and tensors only, loadable with ``weights_only=True``."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "epoch": self.epoch,
            "params": self.params,
            "momentum": self.momentum,
            "preset_toml": self.preset_toml,
            "preset_hash": self.preset_hash,
            "engine": self.engine,
            "seed": self.seed,
            "step": self.step,
            "step_losses": self.step_losses if self.step_losses is not None else torch.zeros(0),
            "step_ratios": self.step_ratios if self.step_ratios is not None else torch.zeros(0),
            "metrics": dataclasses.asdict(self.metrics) if self.metrics is not None else {},
            "fit": self.fit if self.fit is not None else torch.zeros(0),
        }


def save_checkpoint(state: TrainState, path: Path) -> None:
    """Write ``state`` atomically: temp file in the same folder, fsync, ``os.replace``.

    The file being replaced is first kept as ``<name>.prev`` so one good copy always exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state.to_payload(), fh)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def previous_path(path: Path) -> Path:
    """Where the checkpoint before the latest one is kept."""
    return path.with_name(path.name + ".prev")


def load_checkpoint(path: Path) -> TrainState:
    """Read a checkpoint written by :func:`save_checkpoint`; refuse anything else clearly."""
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path} is not an fnn-tui checkpoint (refused to unpickle it)") from None
    except Exception as exc:  # torch raises several types for a damaged zip
        raise CheckpointError(f"{path} is damaged or unreadable ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an fnn-tui checkpoint")
    if payload.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, expected {VERSION}")
    try:
        step = int(payload.get("step", 0))
        losses = payload.get("step_losses")
        ratios = payload.get("step_ratios")
        epoch = int(payload["epoch"])
        if epoch < 0:
            raise CheckpointError(f"{path} is at epoch {epoch}: expected a finished-epoch count >= 0")
        if step < 0 or (step and not (isinstance(losses, torch.Tensor) and isinstance(ratios, torch.Tensor)
                                      and losses.numel() == ratios.numel() == step)):
            raise ValueError("inconsistent mid-epoch position")
        return TrainState(
            epoch=epoch,
            params=dict(payload["params"]),
            momentum=dict(payload["momentum"]),
            preset_toml=str(payload["preset_toml"]),
            preset_hash=str(payload["preset_hash"]),
            engine=str(payload["engine"]),
            seed=int(payload["seed"]),
            step=step,
            step_losses=losses if step else None,
            step_ratios=ratios if step else None,
            metrics=_epoch_metrics(payload.get("metrics"), epoch, step),
            fit=_fit(payload.get("fit")),
        )
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CheckpointError(f"{path} is missing fields of an fnn-tui checkpoint") from None


def _epoch_metrics(raw: Any, epoch: int, step: int) -> EpochMetrics | None:
    """The carried metrics of epoch ``epoch`` (none in older checkpoints or inside an epoch)."""
    if not raw:
        return None
    fields = [f.name for f in dataclasses.fields(EpochMetrics)]
    if not isinstance(raw, dict) or set(raw) != set(fields):
        raise ValueError("epoch metrics with other fields")
    metrics = EpochMetrics(**{name: (bool(raw[name]) if name == "dead" else int(raw[name]) if name == "epoch"
                                     else float(raw[name])) for name in fields})
    if metrics.epoch != epoch or step:
        raise ValueError("epoch metrics of another epoch")
    return metrics


def _fit(raw: Any) -> torch.Tensor | None:
    if raw is None or (isinstance(raw, torch.Tensor) and raw.numel() == 0):
        return None
    if not isinstance(raw, torch.Tensor) or raw.dim() != 1 or not raw.is_floating_point():
        raise ValueError("a fit that is not a float vector")
    return raw


def expected_shapes(sizes: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` names and shapes of the network with these layer widths."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"layers.{i}.weight"] = (b, a)
        shapes[f"layers.{i}.bias"] = (b,)
    return shapes


def check_state(state: TrainState, preset: Preset) -> None:
    """Refuse a state whose tensors or position do not fit ``preset``.

    Checks every parameter and momentum buffer (names, shapes, float32/float64, finite),
    the epoch and the step inside it, and the per-step log. Non-finite weights are never
    legal: a run checkpoints only after an epoch whose losses were finite, and a diverged
    run ends without saving.
    """
    shapes = expected_shapes(preset.model.sizes)
    _check_tensors("parameter", state.params, shapes)
    if state.momentum:  # empty before the first step
        _check_tensors("momentum buffer", state.momentum, shapes)
    if state.seed != preset.data.seed:
        raise CheckpointError(f"the checkpoint is for seed {state.seed}, the preset's seed is {preset.data.seed}")
    epochs = preset.training.epochs
    if not 0 <= state.epoch <= epochs:
        raise CheckpointError(f"the checkpoint is at epoch {state.epoch}: expected 0 to {epochs}")
    steps = math.ceil(preset.data.n_train / preset.training.batch_size)
    if not 0 <= state.step < steps:
        raise CheckpointError(f"the checkpoint is at step {state.step}: expected 0 to {steps - 1} "
                              f"(an epoch has {steps} steps)")
    if state.step and state.epoch >= epochs:
        raise CheckpointError("the checkpoint is inside an epoch past the preset's last")
    if state.fit is not None and tuple(state.fit.shape) != (GRID_POINTS,):
        raise CheckpointError(f"checkpoint fit: expected {GRID_POINTS} floats, found {tuple(state.fit.shape)}")
    for label, log in (("step_losses", state.step_losses), ("step_ratios", state.step_ratios)):
        if state.step and (not isinstance(log, torch.Tensor) or tuple(log.shape) != (state.step,)
                           or not log.is_floating_point()):
            found = tuple(log.shape) if isinstance(log, torch.Tensor) else type(log).__name__
            raise CheckpointError(f"checkpoint {label}: expected {state.step} floats, found {found}")


def _check_tensors(kind: str, tensors: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
    if not isinstance(tensors, dict):
        raise CheckpointError(f"checkpoint {kind}s: expected a table of tensors, found {type(tensors).__name__}")
    missing = [n for n in shapes if n not in tensors]
    extra = [str(n) for n in tensors if n not in shapes]
    if missing or extra:
        found = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(extra[:3])}"
        raise CheckpointError(f"checkpoint {kind}s: expected {', '.join(shapes)}, found {found}")
    for name, want in shapes.items():
        t = tensors[name]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"checkpoint {kind} {name}: expected a tensor, found {type(t).__name__}")
        if tuple(t.shape) != want:
            raise CheckpointError(f"checkpoint {kind} {name}: expected shape {want}, found {tuple(t.shape)}")
        if t.dtype not in (torch.float32, torch.float64):
            raise CheckpointError(f"checkpoint {kind} {name}: expected float32 or float64, found {t.dtype}")
        if t.layout != torch.strided or t.is_quantized:
            raise CheckpointError(f"checkpoint {kind} {name}: expected a dense tensor, found {t.layout}")
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"checkpoint {kind} {name}: expected finite values, found NaN or infinity")


def load_latest_checkpoint(path: Path) -> tuple[TrainState, Path]:
    """The newest readable checkpoint: ``path``, else the kept previous one."""
    try:
        return load_checkpoint(path), path
    except CheckpointError as first:
        prev = previous_path(path)
        if prev.exists():
            try:
                return load_checkpoint(prev), prev
            except CheckpointError:
                pass
        raise first


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
