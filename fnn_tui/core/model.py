"""The feed-forward network of the lab and the notes' hidden-layer normalisation (``mean-var``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fnn_tui.core.presets import ModelSpec

_INIT_STREAM = 0x1_417


def mean_var_norm(h: torch.Tensor) -> torch.Tensor:
    """The notes' ``(h - mean(h)) / var(h)`` per sample: unbiased variance, not std."""
    mean = h.mean(dim=-1, keepdim=True)
    var = h.var(dim=-1, keepdim=True, unbiased=True)
    return (h - mean) / var


class FNN(nn.Module):
    """``Linear -> [mean_var_norm] -> ReLU`` for each hidden layer, then a final ``Linear``."""

    def __init__(self, sizes: tuple[int, ...], norm: bool) -> None:
        super().__init__()
        self.sizes = sizes
        self.norm = norm
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a ``(batch, 1)`` input to a ``(batch, 1)`` prediction."""
        for layer in self.layers[:-1]:
            h = layer(x)
            if self.norm:
                h = mean_var_norm(h)
            x = F.relu(h)
        return self.layers[-1](x)


def build_model(spec: ModelSpec, seed: int) -> FNN:
    """A CPU model with PyTorch's default Linear initialisation drawn from ``seed``.

    The global RNG is forked so that building a model never disturbs other code.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + _INIT_STREAM)
        return FNN(spec.sizes, spec.normalised)
