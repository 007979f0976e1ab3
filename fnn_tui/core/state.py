"""The engine-neutral training state and its checkpoint file.

A checkpoint holds the model's parameters, the momentum buffers, the number of finished
epochs and the resolved preset with its hash: with the per-epoch sample order derived from
``(seed, epoch)``, that is all a run needs to continue exactly. A run stopped inside an
epoch also keeps the steps done in it and their logged losses, so it continues from that
step. Files are written atomically and read with ``torch.load(weights_only=True)``, which
refuses pickles that would run code.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

FORMAT = "fnn-tui-checkpoint"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 had no mid-epoch position


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
        if step < 0 or (step and not (isinstance(losses, torch.Tensor) and isinstance(ratios, torch.Tensor)
                                      and losses.numel() == ratios.numel() == step)):
            raise ValueError("inconsistent mid-epoch position")
        return TrainState(
            epoch=int(payload["epoch"]),
            params=dict(payload["params"]),
            momentum=dict(payload["momentum"]),
            preset_toml=str(payload["preset_toml"]),
            preset_hash=str(payload["preset_hash"]),
            engine=str(payload["engine"]),
            seed=int(payload["seed"]),
            step=step,
            step_losses=losses if step else None,
            step_ratios=ratios if step else None,
        )
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} is missing fields of an fnn-tui checkpoint") from None


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
