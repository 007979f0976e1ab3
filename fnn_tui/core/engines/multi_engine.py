"""The multi-seed fused engine: K runs of one network's shape trained together on the CPU.

Each lane k is one run, a preset of its own: its own data set, initial weights and
per-epoch sample order (from its seed), and its own learning rate and schedule, momentum,
L2 and clip, exactly those a single run of that preset uses, so a lane's checkpoint
(:meth:`MultiFusedEngine.snapshot`) is interchangeable with one of the single-seed
:class:`~fnn_tui.core.engines.fused_engine.FusedEngine`. What the lanes must share
(the network, the data's size and target, the epochs, the batch size, the loss) is
:func:`fnn_tui.core.group.lane_key`. The per-lane settings are arrays of one number per
lane that the kernel reads into vectors once per call (the learning rate is set once per
epoch); the arrays keep the lane axis innermost (see :mod:`multi_kernels` for why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from fnn_tui.core.data import epoch_order, make_dataset
from fnn_tui.core.dead import is_dead
from fnn_tui.core.engines import denormals_flushed
from fnn_tui.core.engines import multi_kernels as mk
from fnn_tui.core.engines.fused_engine import flatten, layout, unflatten
from fnn_tui.core.model import build_model
from fnn_tui.core.presets import Preset
from fnn_tui.core.state import CheckpointError, TrainState

ALIGN = 64  # bytes: a cache line, and one AVX-512 vector of 16 float32 lanes


def aligned(values: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``values`` whose data starts on a cache line.

    The kernels read every row of K lanes as one vector; NumPy starts arrays on 16 bytes,
    so a 64-byte row could straddle two cache lines. Measured on exp08 at K=16 (kernel
    only, one process): two groups whose momentum buffers started 32 bytes off a line
    cost 12-25% more per seed-step than two whose arrays all started on one.
    """
    raw = np.empty(values.nbytes + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    out = raw[start:start + values.nbytes].view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


def group_position(resume: Sequence[TrainState | None] | None, lanes: int) -> tuple[int, int]:
    """The common (epoch, step) of the lanes' checkpoints (``None``: a fresh lane at (0, 0)).

    Raises :class:`CheckpointError` when the lanes are at different positions: one group
    walks one schedule, so the caller groups lanes by position.
    """
    if resume is None:
        return 0, 0
    if len(resume) != lanes:
        raise CheckpointError(f"{len(resume)} checkpoints for {lanes} lanes")
    positions = {(0, 0) if r is None else (r.epoch, r.step) for r in resume}
    if len(positions) != 1:
        raise CheckpointError(f"the lanes' checkpoints are at different positions: {sorted(positions)}")
    return positions.pop()


class MultiFusedEngine:
    """Per-sample SGD for K seeds at once in compiled loops (CPU only).

    Each lane count compiles its own kernel (a few seconds, then cached), so callers
    should stick to one lane count, :func:`fnn_tui.core.group.default_lanes` (see
    :mod:`multi_kernels` for what larger counts compile to).
    """

    name = "fused"

    def __init__(
        self,
        preset: Preset | Sequence[Preset],
        seeds: Sequence[int] | None = None,
        resume: Sequence[TrainState | None] | None = None,
        dtype: type[np.floating] = np.float32,
    ) -> None:
        """``preset`` and ``seeds``: lane k is ``preset`` with seed ``seeds[k]``; or
        ``preset`` a list of presets (``seeds`` left out), one per lane, each already
        seeded, all with the same :func:`~fnn_tui.core.group.lane_key`."""
        from fnn_tui.core.group import lane_key

        if isinstance(preset, Preset):
            lanes = [preset.with_overrides(seed=s) for s in seeds or ()]
        elif seeds is not None:
            raise ValueError("seeds go with one preset; a list of presets carries its own seeds")
        else:
            lanes = list(preset)
        if not lanes:
            raise ValueError("a group needs at least one lane")
        if len({lane_key(p) for p in lanes}) != 1:
            raise ValueError("the lanes differ in a setting the kernel cannot vary per lane (see lane_key)")
        preset = lanes[0]
        seeds = [p.data.seed for p in lanes]
        t = preset.training
        self.presets = lanes
        self.dtype = dtype
        self.seeds = list(seeds)
        self.lanes = len(seeds)
        self.start_epoch, self.start_step = group_position(resume, self.lanes)
        # parameters and momentum, one column per lane
        columns, moms = [], []
        self.started = [False] * self.lanes  # whether the lane's momentum buffer exists
        for i, s in enumerate(seeds):
            r = resume[i] if resume is not None else None
            if r is None:
                model = build_model(lanes[i].model, s)
                state_dict = {n: p.detach() for n, p in model.named_parameters()}
            else:
                state_dict = dict(r.params)
            if i == 0:
                self.names = list(state_dict)
                self.shapes = {n: tuple(state_dict[n].shape) for n in self.names}
            columns.append(flatten(state_dict, self.names, dtype))
            if r is not None and r.momentum:
                moms.append(flatten(r.momentum, self.names, dtype))
                self.started[i] = True
            else:
                moms.append(np.zeros_like(columns[-1]))  # momentum * 0 + g is PyTorch's first buffer
        # flat arrays for the kernels (row r of lane k at r * K + k) and [P, K] views of them
        # (every array the kernel reads as vectors starts on a cache line: see aligned)
        self.params = aligned(np.stack(columns, axis=1))
        self.buf = aligned(np.stack(moms, axis=1))
        self.flat_params, self.flat_buf = self.params.reshape(-1), self.buf.reshape(-1)
        self.grad = aligned(np.zeros(self.params.size, dtype=dtype))
        # layout and scratch buffers
        sizes = preset.model.sizes
        self.sizes = np.array(sizes, dtype=np.uint64)  # unsigned: see multi_passes._forward
        self.fsz = self.sizes.astype(dtype)
        self.w_off, self.b_off, self.a_off = (a.astype(np.uint64) for a in layout(sizes))
        width, k = int(self.a_off[-1]), self.lanes
        self.act, self.act2, self.pre, self.cen, self.dz = (aligned(np.zeros(width * k, dtype=dtype))
                                                            for _ in range(5))
        self.var = aligned(np.zeros(len(sizes) * k, dtype=dtype))
        self.coef = aligned(np.zeros(k, dtype=dtype))
        self.use_norm = preset.model.normalised
        self.batch = t.batch_size
        self.counts = np.arange(self.batch + 1, dtype=dtype)  # batch sizes as numbers
        # each lane's settings, one number per lane in the arrays' precision (as PyTorch
        # casts them for float32 tensors); clip -1: none
        def per_lane(values: list[float]) -> np.ndarray:
            return aligned(np.array(values, dtype=np.float64).astype(dtype))

        self.momentum = per_lane([p.training.momentum for p in lanes])
        self.two_l2 = per_lane([2.0 * p.training.l2 for p in lanes])
        self.clip = per_lane([-1.0 if p.training.clip is None else p.training.clip for p in lanes])
        self.eps = dtype(1e-6)
        self.lr = per_lane([p.training.lr for p in lanes])
        # each lane's data set: train samples lane-major (for gathering), test lane-minor
        sets = [make_dataset(p.data) for p in lanes]
        self.n_train = sets[0].n_train
        self.x_train = np.stack([d.x_train.reshape(-1).double().numpy().astype(dtype) for d in sets])
        self.y_train = np.stack([d.y_train.reshape(-1).double().numpy().astype(dtype) for d in sets])
        self.x_test = np.ascontiguousarray(np.stack([d.x_test.reshape(-1).double().numpy() for d in sets], 1).astype(dtype))
        self.y_test = np.ascontiguousarray(np.stack([d.y_test.reshape(-1).double().numpy() for d in sets], 1).astype(dtype))
        self.y_test_std = self.y_test.astype(np.float64).std(axis=0)
        self.yhat = np.zeros_like(self.y_test)
        self.steps_per_epoch = math.ceil(self.n_train / self.batch)
        self.losses = np.zeros((self.steps_per_epoch, k), dtype=dtype)
        self.ratios = np.zeros((self.steps_per_epoch, k), dtype=dtype)
        self.xs = aligned(self.x_train.T)
        self.ys = aligned(self.y_train.T)
        self.live = np.ones(k, dtype=dtype)  # 0: frozen (diverged or dropped), never updated again
        self.keep_p = aligned(np.zeros_like(self.flat_params))  # frozen lanes' parameters and buffers
        self.keep_b = aligned(np.zeros_like(self.flat_buf))
        self.bad = np.full(k, -1, dtype=np.int64)
        self.epochs_set = 0  # how many times set_epoch ran: a group event's states check it

    # -- training -----------------------------------------------------------------------
    def set_epoch(self, epoch: int, lr: float | Sequence[float] | None = None) -> None:
        """Gather each lane's samples in that lane's order of epoch ``epoch`` (0-based) and
        set each lane's learning rate: its own schedule's (``lr`` left out), one rate for
        all, or one per lane."""
        # one shuffle per distinct seed (a group's padding lanes repeat its first seed)
        distinct = list(dict.fromkeys(self.seeds))
        orders = np.stack([epoch_order(self.n_train, s, epoch).numpy() for s in distinct])
        row_of = np.array([distinct.index(s) for s in self.seeds], dtype=np.int64)
        mk.gather(self.x_train, self.y_train, orders, row_of, self.xs, self.ys)
        if lr is None:
            rates = [p.training.lr_at(epoch) for p in self.presets]
        elif np.ndim(lr) == 0:
            rates = [float(lr)] * self.lanes  # type: ignore[arg-type]
        else:
            rates = [float(r) for r in lr]
        if len(rates) != self.lanes:
            raise ValueError(f"{len(rates)} learning rates for {self.lanes} lanes")
        self.lr[:] = np.array(rates, dtype=np.float64).astype(self.dtype)
        self.epochs_set += 1
        self.losses[:] = 0
        self.ratios[:] = 0

    def run_steps(self, start: int, stop: int) -> np.ndarray:
        """One compiled call for steps ``start..stop-1`` of all lanes.

        Returns, per lane, the step whose loss went non-finite during this call (that lane
        is frozen from then on), or -1.
        """
        self.bad[:] = -1
        with denormals_flushed():  # as the single-seed fused engine does
            mk.call(
                mk.run_steps, self.flat_params, self.flat_buf, self.grad, self.sizes, self.w_off, self.b_off,
                self.a_off, self.fsz, self.act, self.act2, self.pre, self.cen, self.var, self.dz, self.coef,
                self.counts, self.xs, self.ys, start, stop, self.batch, self.lr, self.momentum, self.two_l2,
                self.clip, self.eps, self.use_norm, self.losses, self.ratios, self.live, self.bad,
                self.keep_p, self.keep_b, self.lanes,
            )
        if stop > start:
            self.started = [True] * self.lanes
        return self.bad.copy()

    def freeze(self, lane: int) -> None:
        """Stop updating ``lane`` (e.g. its test loss went non-finite); the others go on."""
        if self.live[lane] != 0:
            mk.copy_lane(self.flat_params, self.flat_buf, self.keep_p, self.keep_b, lane, self.lanes)
            self.live[lane] = 0

    def is_live(self, lane: int) -> bool:
        """Whether ``lane`` is still being updated."""
        return bool(self.live[lane] != 0)

    # -- metrics --------------------------------------------------------------------------
    def train_metrics(self) -> list[tuple[float, float]]:
        """Per lane, the epoch means of the per-step MSE and ratio."""
        loss, ratio = np.empty(self.lanes), np.empty(self.lanes)
        mk.column_means(self.losses, loss)
        mk.column_means(self.ratios, ratio)
        return [(float(a), float(b)) for a, b in zip(loss, ratio)]

    def evaluate(self) -> list[tuple[float, float, float, float]]:
        """Per lane: test MSE, ratio, MAE and the (population) standard deviation of y_hat
        over the test set, in float64 as the single-seed engine computes them."""
        yhat = mk.call(
            mk.predict, self.flat_params, self.sizes, self.w_off, self.b_off, self.a_off, self.fsz, self.act,
            self.pre, self.cen, self.var, self.x_test, self.use_norm, self.yhat, self.lanes,
        )
        out = np.empty((self.lanes, 4))
        mk.test_metrics(yhat, self.y_test, out)
        return [(float(a), float(b), float(c), float(d)) for a, b, c, d in out]

    def predict(self, xs: np.ndarray) -> np.ndarray:
        """Every lane's y_hat at the same points ``xs``: ``out[j, lane]`` (float32)."""
        x = np.ascontiguousarray(np.repeat(np.asarray(xs, dtype=self.dtype).reshape(-1, 1), self.lanes, axis=1))
        out = np.zeros_like(x)
        mk.call(mk.predict, self.flat_params, self.sizes, self.w_off, self.b_off, self.a_off, self.fsz, self.act,
                self.pre, self.cen, self.var, x, self.use_norm, out, self.lanes)
        return out.astype(np.float32)

    def is_dead(self, lane: int, y_hat_std: float) -> bool:
        """The one rule of :mod:`fnn_tui.core.dead`, against this lane's test targets."""
        return is_dead(y_hat_std, float(self.y_test_std[lane]))

    # -- state ------------------------------------------------------------------------------
    def _unflatten(self, flat: np.ndarray) -> dict[str, torch.Tensor]:
        """One lane's flat column as float32 tensors by name (FusedEngine's conversion)."""
        return unflatten(flat, self.names, self.shapes)

    def snapshot(self, lane: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Lane ``lane``'s parameters as a ``state_dict`` and its momentum buffers by name,
        exactly as :meth:`FusedEngine.snapshot` gives them."""
        params = self._unflatten(np.ascontiguousarray(self.params[:, lane]))
        momentum = self._unflatten(np.ascontiguousarray(self.buf[:, lane])) if self.started[lane] else {}
        return params, momentum

    def step_log(self, lane: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of lane ``lane``'s per-step MSE and ratio of this epoch's first ``steps`` steps."""
        return (torch.from_numpy(np.ascontiguousarray(self.losses[:steps, lane])),
                torch.from_numpy(np.ascontiguousarray(self.ratios[:steps, lane])))

    def restore_step_log(self, lane: int, losses: torch.Tensor, ratios: torch.Tensor) -> None:
        """Put back lane ``lane``'s per-step log of the steps already done in this epoch."""
        n = losses.numel()
        self.losses[:n, lane] = losses.double().numpy().astype(self.dtype)
        self.ratios[:n, lane] = ratios.double().numpy().astype(self.dtype)
