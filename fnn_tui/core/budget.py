"""How much memory a preset's run needs, and whether this machine has it.

A preset that cannot fit must be refused with a line that says so, before any tensor is
allocated: a run that asks for 100 GB otherwise dies in the kernel's OOM killer (or pages
the machine to a halt) with no message at all. The estimate is pure arithmetic on the
preset's sizes, so validation stays fast and allocation-free; both preset validation and
the trainer call it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fnn_tui.core.presets import Preset

# Bytes per sample at the peak of preparing a run: make_dataset's float64 x and y, its
# int64 permutation, the float32 copies and train/test gathers; the engine's float64
# staging and float32 arrays; each epoch's int64 order and gathered x and y; the per-step
# loss and ratio logs. Counted from data.py and the engines, rounded up.
DATA_BYTES_PER_SAMPLE = 96
# Bytes per parameter, both engines: float32 weights, momentum and gradients, the fused
# engine's float64 staging of the flat layout, snapshot copies for the checkpoint.
MODEL_BYTES_PER_PARAM = 40
# A checkpoint holds weights and momentum in float32; torch.save/load hold one more copy.
CHECKPOINT_BYTES_PER_PARAM = 16
SAFETY = 1.5  # allocator overhead, PyTorch's own tensors, the interpreter
_VALIDATION_POINTS = 2001  # the target is checked on a fixed grid of this many points


@dataclass(frozen=True)
class MemoryNeed:
    """Estimated bytes of a run, by part."""

    data: int
    model: int
    checkpoint: int

    @property
    def total(self) -> int:
        """Everything at once, with the safety factor."""
        return int((self.data + self.model + self.checkpoint) * SAFETY)

    @property
    def key(self) -> str:
        """The preset key to blame: the setting that makes the largest part."""
        return "data.samples" if self.data >= self.model + self.checkpoint else "model.hidden"


def parameter_count(sizes: tuple[int, ...]) -> int:
    """Weights and biases of a ``sizes[0] -> ... -> sizes[-1]`` fully connected network."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def estimate(preset: Preset) -> MemoryNeed:
    """The memory a run of ``preset`` needs, by arithmetic only (nothing is allocated)."""
    params = parameter_count(preset.model.sizes)
    data = (preset.data.samples + _VALIDATION_POINTS) * DATA_BYTES_PER_SAMPLE
    # the fused engine's per-layer scratch arrays are a few times the widest layer
    widest = max(preset.model.sizes) * 8 * 8
    return MemoryNeed(data=data, model=params * MODEL_BYTES_PER_PARAM + widest,
                      checkpoint=params * CHECKPOINT_BYTES_PER_PARAM)


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable, capped by a cgroup limit.

    Falls back to free pages, then to physical memory, where /proc is missing.
    """
    available = _meminfo_available()
    if available is None:
        available = _sysconf("SC_AVPHYS_PAGES") or _sysconf("SC_PHYS_PAGES") or 0
    limit = _cgroup_room()
    if limit is not None:
        available = min(available, limit) if available else limit
    return available


def memory_problems(preset: Preset, available: int | None = None) -> list[str]:
    """One problem line when a run of ``preset`` would not fit in ``available`` bytes
    (default: :func:`available_memory`); empty when it fits or the size is unknown."""
    need = estimate(preset)
    room = available_memory() if available is None else available
    if room <= 0 or need.total <= room:
        return []
    return [f"{need.key}: needs about {gigabytes(need.total)} of memory, {gigabytes(room)} available"]


def gigabytes(n: int) -> str:
    """``n`` bytes as a short human number, e.g. ``24 GB`` or ``0.5 GB``."""
    gb = n / 1e9
    return f"{gb:.0f} GB" if gb >= 10 else f"{gb:.1f} GB"


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sysconf(name: str) -> int | None:
    try:
        pages, size = os.sysconf(name), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def _cgroup_room() -> int | None:
    """Room left under a cgroup v2 memory limit (containers), or ``None`` when unlimited."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        current = int((base / "memory.current").read_text().strip())
        return max(0, int(limit) - current)
    except (OSError, ValueError):
        return None
