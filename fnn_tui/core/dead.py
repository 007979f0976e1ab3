"""The one rule that calls a network "dead": it predicts (nearly) a constant.

A ReLU network whose units have all switched off outputs its last bias for every input;
its loss then stalls at the target's variance and its ratio looks plausible, so a table
of final numbers alone cannot tell it from a poor fit. The trainer (one run) and the
multi-seed trainer both mark such epochs with this rule, so the threshold lives here once.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the rule itself needs no torch, so a report can import it cheaply
    import torch

DEAD_STD_FRACTION = 0.01
"""A network is dead when the std of its predictions over the test inputs is below this
fraction of the std of the test targets."""


def is_dead(pred_std: float, target_std: float) -> bool:
    """Whether predictions spread this little are (nearly) a constant.

    A constant target (``target_std`` 0) or a non-finite std says nothing, so it is never
    called dead; a diverged network is reported as diverged, not as dead.
    """
    if not (math.isfinite(pred_std) and math.isfinite(target_std)) or target_std <= 0:
        return False
    return pred_std < DEAD_STD_FRACTION * target_std


def spread(values: torch.Tensor) -> float:
    """Population standard deviation (divide by n) in float64; 0.0 for fewer than two values.

    Both engines' ``evaluate`` and the targets' std use this definition, so the two sides
    of :func:`is_dead` are measured alike.
    """
    if values.numel() < 2:
        return 0.0
    return float(values.detach().double().std(correction=0))
