"""The network's prediction on a fixed grid over the data domain, and its byte encoding.

A plot of the fit needs y_hat(x) at evenly spaced points, not at the random samples; the
grid is small (:data:`GRID_POINTS` values) so it can be stored with each epoch as a BLOB
and drawn later without a checkpoint. :func:`predict` runs the reference model of
:mod:`fnn_tui.core.model`; the engines' own ``predict`` methods give the same numbers
without building a model while they train.
"""

from __future__ import annotations

import numpy as np
import torch

from fnn_tui.core.expr import parse_expression
from fnn_tui.core.model import FNN
from fnn_tui.core.presets import Preset

GRID_POINTS = 256
_WIRE = np.dtype("<f4")  # float32 little-endian, whatever the machine's byte order


def grid_x(preset: Preset) -> np.ndarray:
    """:data:`GRID_POINTS` float32 points evenly over the preset's data domain, ends included."""
    low, high = preset.data.domain
    return np.linspace(low, high, GRID_POINTS, dtype=np.float64).astype(np.float32)


def target_y(preset: Preset, xs: np.ndarray) -> np.ndarray:
    """The preset's target function at ``xs``, computed in float64 as the data set is, as float32."""
    x = torch.from_numpy(np.asarray(xs, dtype=np.float64).reshape(-1, 1))
    return parse_expression(preset.data.target)(x).reshape(-1).numpy().astype(np.float32)


def predict(preset: Preset, params: dict[str, torch.Tensor], xs: np.ndarray) -> np.ndarray:
    """y_hat at ``xs`` of the preset's network with these parameters (a ``state_dict``), on the CPU."""
    model = FNN(preset.model.sizes, preset.model.normalised)
    model.load_state_dict({n: t.detach().to("cpu", torch.float32) for n, t in params.items()})
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32).reshape(-1, 1))
    with torch.no_grad():
        return model(x).reshape(-1).numpy().astype(np.float32)


def encode(values: np.ndarray) -> bytes:
    """float32 little-endian bytes of a 1-D array, for a BLOB column."""
    return np.ascontiguousarray(values, dtype=_WIRE).reshape(-1).tobytes()


def decode(blob: bytes) -> np.ndarray:
    """The float32 array :func:`encode` wrote (a native-order copy, safe to modify)."""
    if len(blob) % _WIRE.itemsize:
        raise ValueError(f"a grid blob holds 4-byte floats; {len(blob)} bytes is not a multiple of 4")
    return np.frombuffer(blob, dtype=_WIRE).astype(np.float32)
