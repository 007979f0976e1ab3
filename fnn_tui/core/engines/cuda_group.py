"""The GPU group engine: thousands of lanes of one network shape trained together on CUDA.

:class:`CudaGroupEngine` is the multi-seed fused engine (:class:`MultiFusedEngine`) with its
steps run on the GPU by one of two training kernels (:func:`training_kernel`): where a lane's
state fits a block's shared memory and a step is one sample (every preset of the notes),
:mod:`cuda_block`'s, a warp a lane with its weights on chip for the whole launch; else
:mod:`cuda_kernels`', a thread a lane. Predictions and test metrics' forward passes are
:mod:`cuda_kernels`', a thread a lane. Everything else is the CPU engine's own
preparation, inherited: each lane's data set, initial weights (or checkpoint), per-epoch
sample order (one shuffle per distinct seed) and flat layout, so lane i is exactly the CPU
group's lane i and its checkpoint (:meth:`snapshot`) is the fused engine's. Every
hyperparameter is per lane (:class:`LaneHyper`), so lanes may be variants as well as seeds.

The lanes' parameters, momentum and training data stay on the device for the whole run; a
chunk of steps is one launch, after which only ``bad`` and ``live`` come back. The
parameters come back when a checkpoint asks for them (:meth:`snapshot`, :meth:`sync`), the
per-step log for the epoch's train metrics.

Importing this module imports ``numba.cuda`` (part of Numba; no other dependency).
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numba import cuda

from fnn_tui.core.data import epoch_order
from fnn_tui.core.engines import CUDA_GROUP_ENGINE, cuda_block, cuda_kernel_setting
from fnn_tui.core.engines.cuda_kernels import THREADS, kernels, simulated
from fnn_tui.core.engines.multi_engine import MultiFusedEngine
from fnn_tui.core.presets import Preset, TrainingSpec
from fnn_tui.core.state import TrainState

ENGINE = CUDA_GROUP_ENGINE  # the engine column of a run trained by this engine
KERNELS = ("auto", "block", "thread")  # the training kernels: auto is block where it fits
# the block kernel's threads a lane under the simulator, whose threads are Python threads:
# fewer than the layers are wide, so the tests there also take the strided paths
SIMULATOR_BLOCK_THREADS = 4


def training_kernel(sizes: Sequence[int], batch: int, kernel: str = "auto") -> str:
    """Which training kernel trains lanes of layer ``sizes`` at ``batch`` samples a step:
    ``"block"`` (:mod:`cuda_block`: a warp a lane, its state in shared memory) where the shape
    fits it, else ``"thread"`` (:mod:`cuda_kernels`: a thread a lane). Both give the same
    numbers; ``kernel`` asks for one (the benchmark measures both)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel: expected one of {', '.join(KERNELS)}, found {kernel!r}")
    fits = cuda_block.fits(tuple(sizes), batch)
    if kernel == "block" and not fits:
        raise ValueError(f"the block kernel does not train shape {tuple(sizes)} at batch size {batch}")
    return "block" if kernel == "block" or (kernel == "auto" and fits) else "thread"


@dataclass(frozen=True)
class LaneHyper:
    """Per-lane hyperparameters, one entry per lane (float64 host values, as the presets hold them)."""

    lr: np.ndarray
    decay_factor: np.ndarray  # NaN: no decay
    decay_every: np.ndarray
    momentum: np.ndarray
    l2: np.ndarray
    clip: np.ndarray  # <= 0: no clipping

    @classmethod
    def of(cls, specs: Sequence[TrainingSpec]) -> LaneHyper:
        """One lane per training spec (a variant's settings; seeds of one preset repeat one)."""
        return cls(
            lr=np.array([t.lr for t in specs], dtype=np.float64),
            decay_factor=np.array([math.nan if t.decay_factor is None else t.decay_factor for t in specs]),
            decay_every=np.array([t.decay_every for t in specs], dtype=np.int64),
            momentum=np.array([t.momentum for t in specs], dtype=np.float64),
            l2=np.array([t.l2 for t in specs], dtype=np.float64),
            clip=np.array([-1.0 if t.clip is None else t.clip for t in specs], dtype=np.float64),
        )

    def lr_at(self, epoch: int) -> np.ndarray:
        """Each lane's learning rate during ``epoch`` (0-based): :meth:`TrainingSpec.lr_at` per lane,
        the same float64 expression, as float32."""
        out = np.empty(len(self.lr), dtype=np.float32)
        for k, (lr, f, every) in enumerate(zip(self.lr, self.decay_factor, self.decay_every)):
            out[k] = lr if math.isnan(f) else float(lr) * float(f) ** (epoch // int(every))
        return out


def unusable_reason() -> str | None:
    """Why this engine cannot run here, or ``None``: it needs a real CUDA device and the CUDA
    toolkit's NVVM compiler that Numba compiles with, or Numba's CUDA simulator."""
    if simulated():
        return None
    try:
        if not cuda.is_available():
            return "Numba finds no usable CUDA device (driver) here"
        from numba.cuda.cudadrv import nvvm

        if not nvvm.is_available():
            return "Numba finds no CUDA toolkit (libNVVM) to compile with: install one or set CUDA_HOME"
    except Exception as exc:  # a broken driver or toolkit: no GPU for this engine
        return f"Numba's CUDA support failed: {exc.__class__.__name__}: {exc}"
    return None


def real_gpu() -> bool:
    """Whether a real CUDA device can run this engine here (the simulator does not count)."""
    return not simulated() and unusable_reason() is None


_SHARED_LOCK = threading.Lock()


def guard_simulator() -> None:
    """Make the CUDA simulator's shared arrays shared (once per process; no-op on a GPU).

    The simulator gives each ``cuda.shared.array`` call site one NumPy array per launch,
    made by the first thread of the launch's first block to get there: it looks the site
    up, allocates, then stores the array, without a lock. A thread switch in between (a
    garbage-collection pass inside the allocation can run Python code) lets a second thread
    make and keep an array of its own, so block 0's threads no longer see each other's
    writes: measured, one launch in about 25 runs of the stop-and-resume test came out with
    lane 0 a little off, and 48 launches in 50 when a switch is forced there. This does the
    same lookup under a lock, keyed as the simulator keys it (the caller's file and line)."""
    if not simulated():
        return
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    shared = kernelapi.FakeCUDAShared
    if getattr(shared.array, "fnn_tui_locked", False):
        return
    original = shared.array

    def array(self, shape, dtype):
        if shape == 0 or not isinstance(getattr(self, "_allocations", None), dict):
            return original(self, shape, dtype)  # dynamic shared memory: one buffer made up front
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with _SHARED_LOCK:
            res = self._allocations.get(key)
            if res is None:
                kind = numpy_support.as_dtype(dtype) if isinstance(dtype, types.Type) else dtype
                res = self._allocations[key] = kernelapi.np.empty(shape, kind)
        return res

    array.fnn_tui_locked = True  # type: ignore[attr-defined]
    shared.array = array


def _draw_orders(n_train: int, seeds: list[int], epoch: int) -> np.ndarray:
    """Each seed's sample order of ``epoch`` (:func:`epoch_order`), as int32 rows."""
    return np.stack([epoch_order(n_train, s, epoch).numpy() for s in seeds]).astype(np.int32)


class _Prefetch:
    """:func:`_draw_orders` on a thread of its own (torch releases the GIL while it shuffles);
    the thread ends when the orders are drawn. Not a daemon: a process exiting while torch
    shuffles on a daemon thread aborts (measured: "terminate called without an active
    exception"), so an exit waits for the draw (a second at most, at 16k lanes)."""

    def __init__(self, n_train: int, seeds: list[int], epoch: int) -> None:
        self.seeds, self.epoch = list(seeds), epoch
        self._out: list[np.ndarray] = []
        self._error: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(n_train,), name="fnn-tui-orders")
        self._thread.start()

    def _run(self, n_train: int) -> None:
        try:
            self._out.append(_draw_orders(n_train, self.seeds, self.epoch))
        except BaseException as exc:  # handed to the caller in result()
            self._error.append(exc)

    def result(self) -> np.ndarray:
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._out[0]


def launch_shape(lanes: int) -> tuple[int, int]:
    """(blocks, threads) covering ``lanes`` threads: blocks of :data:`THREADS`; fewer threads for
    small groups (whole warps on a GPU, exactly the lanes under the simulator, whose threads
    are Python threads)."""
    if lanes >= THREADS:
        return -(-lanes // THREADS), THREADS
    return 1, lanes if simulated() else max(32, -(-lanes // 32) * 32)


class CudaGroupEngine(MultiFusedEngine):
    """Per-sample SGD for K lanes of one shape at once on a CUDA device (float32)."""

    name = ENGINE

    def __init__(
        self,
        preset: Preset,
        seeds: list[int],
        resume: list[TrainState | None] | None = None,
        hyper: LaneHyper | None = None,
        device: str = "cuda:0",
        kernel: str | None = None,
        block_threads: int | None = None,
    ) -> None:
        """``kernel``: the training kernel (:func:`training_kernel`; ``None``: as
        :data:`~fnn_tui.core.engines.CUDA_KERNEL_ENV` says, ``auto`` when unset); ``block_threads``: the
        block kernel's threads a lane (``None``: a warp on a GPU, :data:`SIMULATOR_BLOCK_THREADS`
        under the simulator)."""
        index = int(device.partition(":")[2] or 0)
        if index != 0:  # this thread's device: Numba's default is the first
            cuda.select_device(index)
        super().__init__(preset, seeds, resume, dtype=np.float32)
        k = self.lanes
        self.hyper = hyper if hyper is not None else LaneHyper.of([preset.training] * k)
        if len(self.hyper.lr) != k:
            raise ValueError(f"{len(self.hyper.lr)} lanes of hyperparameters for {k} lanes")
        self._thread_train, self._predict, self._evaluate, self._means = kernels(
            tuple(preset.model.sizes), self.batch, bool(self.use_norm))
        self.use_kernel(cuda_kernel_setting() if kernel is None else kernel, block_threads)
        # the CPU engine's step buffers are not used here: drop them (GBs at 16k lanes)
        self.xs = self.ys = self.keep_p = self.keep_b = self.grad = np.zeros(0, dtype=np.float32)
        self._shape = launch_shape(k)
        # a stream of its own: groups driven from several threads run side by side on the device
        self.stream = cuda.stream()
        # the lanes' state and data live on the device from here on
        self.d_params = self._up(self.params)
        self.d_buf = self._up(self.buf)
        self.d_x = self._up(np.ascontiguousarray(self.x_train))
        self.d_y = self._up(np.ascontiguousarray(self.y_train))
        self.d_x_test = self._up(self.x_test)
        self.d_y_test = self._up(self.y_test)
        self.d_metrics = cuda.device_array((k, 4), dtype=np.float64, stream=self.stream)
        self.d_means = cuda.device_array((2, k), dtype=np.float64, stream=self.stream)
        self.d_live = self._up(self.live)
        self.d_bad = self._up(self.bad)
        self.d_losses = self._up(self.losses)
        self.d_ratios = self._up(self.ratios)
        self.d_lr = self._up(self.hyper.lr_at(0))
        self.d_momentum = self._up(self.hyper.momentum.astype(np.float32))
        self.d_two_l2 = self._up((2.0 * self.hyper.l2).astype(np.float32))
        self.d_clip = self._up(self.hyper.clip.astype(np.float32))
        self.d_orders = None
        self.d_row_of = None
        self._next: _Prefetch | None = None
        self._stale = False  # whether the host's params/buf are behind the device's

    def use_kernel(self, kernel: str = "auto", block_threads: int | None = None) -> None:
        """Train the next launches with ``kernel`` (:func:`training_kernel`); both kernels
        read and write the same device arrays, so a group may change between launches."""
        sizes = tuple(self.presets[0].model.sizes)
        self.kernel = training_kernel(sizes, self.batch, kernel)
        self._train, self._train_shape = self._thread_train, launch_shape(self.lanes)
        if self.kernel == "block":
            if block_threads is None:
                block_threads = SIMULATOR_BLOCK_THREADS if simulated() else cuda_block.THREADS
            if simulated():
                guard_simulator()
                # the simulator's block manager polls its threads at every barrier while it
                # holds the GIL: at Python's default switch interval (5 ms) a barrier costs
                # milliseconds (100 steps of a 3-lane group: 45 s against 2 s at 0.1 ms)
                sys.setswitchinterval(min(sys.getswitchinterval(), 1e-4))
            self._train = cuda_block.train_kernel(sizes, bool(self.use_norm), block_threads)
            self._train_shape = (self.lanes, block_threads)

    def _up(self, array: np.ndarray):
        """A device copy of ``array`` (on this engine's stream)."""
        return cuda.to_device(array, stream=self.stream)

    # -- training -----------------------------------------------------------------------
    def set_epoch(self, epoch: int, lr: float | None = None) -> None:
        """Each lane's sample order of epoch ``epoch`` (0-based) onto the device, and the
        learning rates: ``lr`` for every lane, or (``None``) each lane's own schedule."""
        distinct = list(dict.fromkeys(self.seeds))
        orders = self._orders(distinct, epoch)
        index = {s: i for i, s in enumerate(distinct)}
        row_of = np.array([index[s] for s in self.seeds], dtype=np.int32)
        self.d_orders = self._up(orders)
        # the next epoch's shuffles (one torch.randperm per seed: ~60 us each, a second an epoch
        # at 16k lanes) are drawn on a thread of their own while the device trains this epoch
        self._next = _Prefetch(self.n_train, distinct, epoch + 1)
        self.d_row_of = self._up(row_of)
        rates = self.hyper.lr_at(epoch) if lr is None else np.full(self.lanes, lr, dtype=np.float32)
        self.d_lr = self._up(rates)
        self.lr = self.dtype(rates[0])
        self.epochs_set += 1
        self.losses[:] = 0
        self.ratios[:] = 0
        self.d_losses.copy_to_device(self.losses, stream=self.stream)
        self.d_ratios.copy_to_device(self.ratios, stream=self.stream)

    def _orders(self, distinct: list[int], epoch: int) -> np.ndarray:
        """``[seed, j]``: each distinct seed's sample order of ``epoch``, prefetched when it can be."""
        ahead, self._next = self._next, None
        if ahead is not None and ahead.epoch == epoch and ahead.seeds == distinct:
            return ahead.result()
        return _draw_orders(self.n_train, distinct, epoch)

    def run_steps(self, start: int, stop: int) -> np.ndarray:
        """One launch for steps ``start..stop-1`` of all lanes; per lane, the step whose loss
        went non-finite during this call (that lane is frozen from then on), or -1."""
        if self.d_orders is None:
            raise RuntimeError("set_epoch first")
        self.bad[:] = -1
        self.d_bad.copy_to_device(self.bad, stream=self.stream)
        blocks, threads = self._train_shape
        self._train[blocks, threads, self.stream](
            self.d_params, self.d_buf, self.d_x, self.d_y, self.d_orders, self.d_row_of, start, stop,
            self.d_lr, self.d_momentum, self.d_two_l2, self.d_clip, self.d_live, self.d_bad,
            self.d_losses, self.d_ratios,
        )
        self.d_bad.copy_to_host(self.bad, stream=self.stream)
        self.d_live.copy_to_host(self.live, stream=self.stream)
        self.stream.synchronize()
        if stop > start:
            self.started = [True] * self.lanes
            self._stale = True
        return self.bad.copy()

    def freeze(self, lane: int) -> None:
        """Stop updating ``lane``; the others go on."""
        self.live[lane] = 0
        self.d_live.copy_to_device(self.live, stream=self.stream)

    def sync(self) -> None:
        """Bring the lanes' parameters and momentum back to the host arrays ``params``/``buf``."""
        if self._stale:
            self.d_params.copy_to_host(self.params, stream=self.stream)
            self.d_buf.copy_to_host(self.buf, stream=self.stream)
            self.stream.synchronize()
            self._stale = False

    # -- metrics --------------------------------------------------------------------------
    def _pull_log(self) -> None:
        self.d_losses.copy_to_host(self.losses, stream=self.stream)
        self.d_ratios.copy_to_host(self.ratios, stream=self.stream)
        self.stream.synchronize()

    def train_metrics(self) -> list[tuple[float, float]]:
        """Per lane, the epoch means of the per-step MSE and ratio (float64, on the device:
        only the means come back)."""
        blocks, threads = self._shape
        self._means[blocks, threads, self.stream](self.d_losses, self.d_means[0])
        self._means[blocks, threads, self.stream](self.d_ratios, self.d_means[1])
        means = self.d_means.copy_to_host(stream=self.stream)
        self.stream.synchronize()
        return [(float(a), float(b)) for a, b in zip(means[0], means[1])]

    def evaluate(self) -> list[tuple[float, float, float, float]]:
        """Per lane: test MSE, ratio, MAE and population std of y_hat, in float64 on the device
        (the CPU engine's numbers to rounding); only the four numbers a lane come back."""
        blocks, threads = self._shape
        self._evaluate[blocks, threads, self.stream](self.d_params, self.d_x_test, self.d_y_test, self.d_metrics)
        out = self.d_metrics.copy_to_host(stream=self.stream)
        self.stream.synchronize()
        return [(float(a), float(b), float(c), float(d)) for a, b, c, d in out]

    def predict(self, xs: np.ndarray) -> np.ndarray:
        """Every lane's y_hat at the same points ``xs``: ``out[j, lane]`` (float32)."""
        x = np.ascontiguousarray(np.repeat(np.asarray(xs, dtype=np.float32).reshape(-1, 1), self.lanes, axis=1))
        d_out = cuda.device_array_like(x, stream=self.stream)
        blocks, threads = self._shape
        self._predict[blocks, threads, self.stream](self.d_params, self._up(x), d_out)
        out = d_out.copy_to_host(stream=self.stream)
        self.stream.synchronize()
        return out

    # -- state ------------------------------------------------------------------------------
    def snapshot(self, lane: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        self.sync()
        return super().snapshot(lane)

    def step_log(self, lane: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._pull_log()
        return super().step_log(lane, steps)

    def restore_step_log(self, lane: int, losses: torch.Tensor, ratios: torch.Tensor) -> None:
        self._pull_log()
        super().restore_step_log(lane, losses, ratios)
        self.d_losses.copy_to_device(self.losses, stream=self.stream)
        self.d_ratios.copy_to_device(self.ratios, stream=self.stream)
