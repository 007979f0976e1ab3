"""Training engines: the PyTorch reference and the fused (compiled, CPU) engine.

Both implement :class:`Engine`; the trainer drives either through the same epoch loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

ENGINE_NAMES = ("auto", "torch", "fused")
# the GPU group engine (core/engines/cuda_group.py): groups of seeds or variants only, never a
# single run, so it is not one of ENGINE_NAMES; core/group.py: group_run says when it is used
CUDA_GROUP_ENGINE = "fused-cuda"


@contextmanager
def denormals_flushed() -> Iterator[None]:
    """In this thread, for the duration: tiny (denormal) float results become zero and
    denormal inputs count as zero (the CPU's FTZ and DAZ modes, through PyTorch).

    The fused engines' steps run inside it. A step decay drives the learning rate of rows
    5 and 6 to about 1e-38 by their last epochs, where ``lr * momentum`` falls below
    float32's smallest normal number; a CPU computes such numbers in slow microcode
    (measured: 0.49 against 0.76 us per seed-step on exp06 at lr 1e-36). Flushing them
    changes a parameter only when it is itself smaller than about 1e-30, as ``w - tiny``
    rounds back to ``w``.
    """
    flushed = torch.set_flush_denormal(True)  # False where the CPU has no such mode
    try:
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(False)


class EngineError(ValueError):
    """The requested engine cannot run this preset on this device."""


# the environment's choice of the GPU group engine's training kernel for every group: auto
# (the default: the block kernel where a shape fits it) or thread, which keeps the block
# kernel out (to compare the two, or should it fail on some GPU)
CUDA_KERNEL_ENV = "FNN_TUI_CUDA_KERNEL"


def cuda_kernel_setting() -> str:
    """``auto`` or ``thread`` from :data:`CUDA_KERNEL_ENV`; :class:`EngineError` naming it otherwise."""
    value = os.environ.get(CUDA_KERNEL_ENV, "").strip().lower() or "auto"
    if value not in ("auto", "thread"):
        raise EngineError(f"{CUDA_KERNEL_ENV}: expected auto or thread, found {value!r}")
    return value


class Engine(Protocol):
    """What the trainer needs from an engine."""

    name: str
    steps_per_epoch: int
    n_train: int

    def set_epoch(self, epoch: int, order: torch.Tensor, lr: float) -> None:
        """Prepare epoch ``epoch`` (0-based) with this sample order and learning rate."""

    def run_steps(self, start: int, stop: int) -> int:
        """Train steps ``start..stop-1`` of the epoch; return the first non-finite step or -1."""

    def train_metrics(self) -> tuple[float, float]:
        """Mean MSE and mean |y_hat / y| over the epoch's steps."""

    def evaluate(self) -> tuple[float, float, float, float]:
        """Test MSE, test mean |y_hat / y|, test MAE and the population std of y_hat over the
        test inputs (in float64, as ``core.dead.spread``), with the current weights."""

    def predict(self, xs: np.ndarray) -> np.ndarray:
        """y_hat at the 1-D inputs ``xs`` with the current weights, as float32 (no training)."""

    def snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Copies of the parameters and momentum buffers, as CPU tensors by parameter name."""

    def step_log(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """CPU copies of the per-step MSE and ratio of this epoch's first ``steps`` steps."""

    def restore_step_log(self, losses: torch.Tensor, ratios: torch.Tensor) -> None:
        """Put back the per-step log of the steps already done in this epoch (after ``set_epoch``)."""


def fused_unsupported_reason(activation: str, loss: str, device: str) -> str | None:
    """Why the fused engine cannot run this configuration, or ``None`` when it can."""
    if device != "cpu":
        return f"the fused engine runs on the CPU only, not {device}"
    if activation != "relu" or loss != "mse":
        return "the fused engine supports ReLU networks with MSE loss only"
    try:
        import numba  # noqa: F401
    except ImportError:
        return "the fused engine needs numba, which is not installed"
    return None


def choose_engine(name: str, *, device: str, activation: str, loss: str) -> str:
    """Resolve ``auto`` and check an explicit choice; raise :class:`EngineError` if impossible."""
    if name not in ENGINE_NAMES:
        raise EngineError(f"unknown engine {name!r}: expected one of {', '.join(ENGINE_NAMES)}")
    reason = fused_unsupported_reason(activation, loss, device)
    if name == "auto":
        return "fused" if reason is None else "torch"
    if name == "fused" and reason is not None:
        raise EngineError(reason)
    return name


# exp08, one step of one seed, measured on this project's CI CPU by benchmarks/steps.py and
# benchmarks/seeds.py (README, "Performance"): the PyTorch engine, the fused engine, and the
# multi-seed fused kernel per seed-step
TORCH_US_PER_STEP = 836.0
FUSED_US_PER_STEP = 2.18
GROUP_US_PER_SEED_STEP = 0.292


@dataclass(frozen=True)
class EngineNote:
    """Which engine a device choice uses and what it costs: one line, a short form for a
    narrow panel, and whether it is a warning (the PyTorch engine where the fused CPU
    kernels could train the preset instead)."""

    text: str
    short: str
    warn: bool


def engine_note(engine: str, *, device: str, activation: str, loss: str) -> EngineNote:
    """The :class:`EngineNote` for training with ``engine`` on ``device``."""
    if engine == "fused":
        return EngineNote(f"{device}: the fused CPU kernels (the fastest engine here)", "fused CPU kernels", False)
    if engine == CUDA_GROUP_ENGINE:
        return EngineNote(f"{device}: the {CUDA_GROUP_ENGINE} GPU group engine (a lane per seed)",
                          "GPU group engine", False)
    if fused_unsupported_reason(activation, loss, "cpu") is not None:
        return EngineNote(f"{device}: the PyTorch engine (the fused kernels cannot train this preset)",
                          "PyTorch engine", False)
    single = TORCH_US_PER_STEP / FUSED_US_PER_STEP
    group = TORCH_US_PER_STEP / GROUP_US_PER_SEED_STEP
    where = "the fused kernels run on the CPU only" if device != "cpu" else "chosen with --engine torch"
    fast = "--engine auto" if device == "cpu" else "--device cpu"
    text = (f"{device} trains with the PyTorch engine ({where}): about {single:.0f}x slower per seed than "
            f"the fused CPU kernels, {group:.0f}x against seeds trained together (exp08, measured on the CPU: "
            f"README, Performance); {fast} is the fast choice")
    return EngineNote(text, f"PyTorch engine: ~{single:.0f}x slower a seed than cpu/fused", True)
