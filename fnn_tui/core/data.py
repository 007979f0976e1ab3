"""The sampled data set and the per-epoch sample order, both from seeded generators.

The sample order of epoch ``k`` depends only on ``(seed, k)``, so both engines see the
same order and a resumed run needs no stored generator state to continue exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fnn_tui.core.expr import parse_expression
from fnn_tui.core.presets import DataSpec

_ORDER_STREAM = 0x5EED_0F_0DE5


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors, float32, shape ``(n, 1)``, on the CPU."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n_train(self) -> int:
        """Number of training samples."""
        return int(self.x_train.shape[0])


def make_dataset(spec: DataSpec) -> Dataset:
    """Sample ``spec.samples`` points uniformly on the domain and split them train/test."""
    gen = torch.Generator().manual_seed(spec.seed)
    low, high = spec.domain
    x = torch.rand(spec.samples, 1, generator=gen, dtype=torch.float64) * (high - low) + low
    y = parse_expression(spec.target)(x)
    perm = torch.randperm(spec.samples, generator=gen)
    train, test = perm[: spec.n_train], perm[spec.n_train :]
    x32, y32 = x.float(), y.float()
    return Dataset(x32[train].contiguous(), y32[train].contiguous(), x32[test].contiguous(), y32[test].contiguous())


def epoch_order(n_train: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of ``epoch`` (0-based): int64 indices on the CPU."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7919 + _ORDER_STREAM) % (2**63))
    return torch.randperm(n_train, generator=gen)
