"""Numba kernels that train K seeds of one preset at once, one seed per SIMD lane.

Training one seed per sample is a chain of tiny dot products (widths of 20 to 50) that
leaves most of a vector unit idle. Running K seeds side by side fills it: every array
keeps the seed axis innermost and contiguous (parameters ``[P, K]``, activations
``[width, K]``, data ``[n, K]``), so each innermost loop runs over the K lanes with the
same instruction for all of them and LLVM turns it into vector code.

The math per lane is exactly that of :mod:`fused_kernels` (same flat parameter order with
weights stored input-major, same normalisation ``(z - mean) / var`` with unbiased
variance and its hand-written backward pass, L2 gradient ``2 * l2 * p``, global-norm clip
``clip / (norm + 1e-6)`` applied below 1, PyTorch's SGD momentum). What differs is how
the lanes stay independent without branching per lane in the hot loops:

- ReLU and its derivative are selects, never a skipped input: a lane whose input is off
  adds ``w * 0``.
- Each lane has its own settings: learning rate, momentum, L2 weight and clip threshold
  are arrays of K numbers (the engine sets the rates once per epoch, from each lane's
  schedule) read into vectors once per call, so a group's lanes can be variants of one
  network. A path does L2 or clipping when any lane has it: a lane without adds
  ``0 * p`` and multiplies by a clip factor of 1, both exact.
- Each lane has its own gradient norm and clip factor; an unclipped lane multiplies by 1,
  which is exact.
- The momentum buffer starts at zero, so ``momentum * 0 + g`` is PyTorch's first-step
  buffer ``g`` exactly, with no per-lane "first step" flag.
- A lane whose loss is not finite is frozen: its parameters and buffer from before that
  step are copied aside, the hot loops go on updating all lanes alike, and the frozen
  lanes are copied back at the end of every call, so they never change as seen from
  outside and their garbage never reaches another lane.

How the lane loops become vector code: explicitly. Every K-lane quantity is one value of
:mod:`lanes`' vector type (``load``, arithmetic, ``store``), one LLVM vector instruction
per operation for all lanes, which LLVM only splits into registers; earlier versions wrote
scalar loops over the lanes and relied on LLVM's SLP vectoriser, which packed some loops
into full vectors and others into 2- or 4-wide pieces. Array arguments are declared
``noalias`` (each is its own buffer).

With a batch of one sample (every preset), a step passes over the parameters twice
instead of four times: the backward pass (:func:`~multi_passes._backward_deltas`) only reads the
weights and sums each lane's squared gradient norm without storing the gradient, and the
update is applied by the next step's forward pass (:func:`~multi_passes._update_forward`), which
recomputes each gradient entry ``act_i * dz_o + 2 * l2 * w`` from the kept activations
and deltas, updates the weight and its momentum, and uses the new weight at once.

Sums run in a different order than in the single-seed kernels (per lane in sequence
instead of reassociated across a vector), and the squared gradient norm is summed row by
row in expanded form (:func:`~multi_passes._backward_deltas`), so lanes agree with single-seed runs to
rounding, not bit for bit; the sums here run in source order (no fast-math flags at all).
The kernels work in the precision of the arrays (float32 in use, float64 for
verification) and release the GIL.

Groups without normalisation, and without L2 or clipping in any lane (rows 1 to 6), take a shorter path,
:func:`multi_plain.run_plain`: layers 0 and 1 are trained in one pass a step instead of
two, with the same numbers as the general path to the bit.

The passes themselves are in :mod:`multi_passes`; this module has the entry points the
engine calls (:func:`call` with :func:`run_steps` or :func:`predict`, and the per-epoch
helpers :func:`gather`, :func:`column_means` and :func:`test_metrics`).
"""

from __future__ import annotations

import numpy as np
from numba import literally, njit

from fnn_tui.core.engines.fused_kernels import metric_means, metric_sums
from fnn_tui.core.engines.lanes import load, store
from fnn_tui.core.engines.multi_passes import (
    JIT,
    _apply_update,
    _backward,
    _backward_deltas,
    _clip_factors,
    _forward,
    _forward4,
    _freeze_bad,
    _put_back,
    _step_loss,
    _update_forward,
    copy_lane,
)
from fnn_tui.core.engines.multi_plain import run_plain

__all__ = ["call", "column_means", "copy_lane", "gather", "predict", "run_steps", "test_metrics"]

_entries: dict[tuple, object] = {}


def _key(kernel, args: tuple) -> tuple:
    """What picks a compiled kernel: its name, the lane count and the arguments' types."""
    return (kernel.__name__, args[-1], *((a.dtype.str, a.ndim, a.flags.c_contiguous) if isinstance(a, np.ndarray)
                                         else type(a) for a in args[:-1]))


def call(kernel, *args):
    """Call ``run_steps`` or ``predict`` (lane count last), compiled with LLVM's SLP
    vectoriser on and its loop vectoriser off the first time a lane count is seen.

    Numba reads both settings from its config whenever it optimises a module, so they are
    changed only while Numba's compiler lock is held: no other function is compiled with
    them. Compiled kernels land in Numba's cache as usual.

    Later calls go straight to the compiled entry point: through the dispatcher, a kernel
    whose lane count is ``literally`` a constant starts a compilation for a plain integer
    on every call, which Numba abandons to look up the literal one (measured: 6 ms per
    call, a tenth of an epoch of exp08 at K=16 and most of a short chunk).
    """
    key = _key(kernel, args)
    entry = _entries.get(key)
    if entry is not None:
        return entry(*args)
    import numba
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:
        old = numba.config.SLP_VECTORIZE, numba.config.LOOP_VECTORIZE
        numba.config.SLP_VECTORIZE, numba.config.LOOP_VECTORIZE = 1, 0
        try:
            result = kernel(*args)
        finally:
            numba.config.SLP_VECTORIZE, numba.config.LOOP_VECTORIZE = old
    wanted = tuple(numba.typeof(a) for a in args[:-1])
    for sig, cres in kernel.overloads.items():
        last = sig[-1]
        if getattr(last, "literal_value", None) == args[-1] and tuple(sig[:-1]) == wanted:
            _entries[key] = cres.entry_point
    return result


@njit(**JIT)
def gather(x_train, y_train, orders, row_of, xs, ys):
    """An epoch's samples in each lane's order: ``xs[j, k] = x_train[k, orders[row_of[k], j]]``
    (and ``ys`` alike), where ``orders`` holds one shuffle per distinct seed."""
    for k in range(xs.shape[1]):  # lane by lane: each reads its own samples, in cache
        order = orders[row_of[k]]
        for j in range(xs.shape[0]):
            i = order[j]
            xs[j, k] = x_train[k, i]
            ys[j, k] = y_train[k, i]


@njit(**JIT)
def column_means(values, out):
    """``out[k]`` = the float64 mean of ``values[:, k]``, summed row by row as NumPy's
    ``values.mean(axis=0, dtype=np.float64)`` sums it (the same numbers), in one pass."""
    n, nk = values.shape
    for k in range(nk):
        out[k] = 0.0
    for j in range(n):
        for k in range(nk):
            out[k] += np.float64(values[j, k])
    for k in range(nk):
        out[k] = out[k] / n


@njit(**JIT)
def test_metrics(yhat, ys, out):
    """Per lane k, from its predictions ``yhat[:, k]`` of targets ``ys[:, k]``: the MSE, mean
    |y_hat / y|, MAE and population std of y_hat into ``out[k, 0..3]``, in float64 and in
    the single-seed engine's order (``fused_kernels.evaluate``: Welford's update for the std)."""
    n, nk = yhat.shape
    for k in range(nk):
        sums = (0.0, 0.0, 0.0, 0.0, 0.0)
        for j in range(n):
            sums = metric_sums(sums, yhat[j, k], ys[j, k], j)
        out[k, 0], out[k, 1], out[k, 2], out[k, 3] = metric_means(sums, n)


@njit(**JIT)
def run_steps(
    params, buf, grad, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef, counts,
    xs, ys, start, stop, batch, lr, momentum, two_l2, clip, eps, use_norm, losses, ratios, live, bad,
    keep_p, keep_b, nk,
):
    """Train steps ``start..stop-1`` of every lane; each step averages over its batch.

    ``xs[j, k]`` is lane k's j-th sample of the epoch. ``lr``, ``momentum``, ``two_l2``
    (2 * L2) and ``clip`` (not positive: no clipping) are arrays of one number per lane,
    read into vectors once per call. Per step, ``losses[s, k]`` and
    ``ratios[s, k]`` get lane k's MSE and mean |y_hat / y|. A live lane whose loss is not
    finite gets ``bad[k] = s`` and ``live[k] = 0``, and its parameters and buffer from
    before that step are kept in ``keep_p``/``keep_b``. The hot loops update every lane
    alike (no per-lane branch); frozen lanes are put back from the kept copy at the end
    of the call, so they never change as seen from outside. ``nk`` (the lane count) is
    compiled in as a constant: the vectors' width. Returns the number of lanes still live.
    """
    literally(nk)
    # the lanes' settings: a path needs L2 or clipping when any lane has it (a lane without
    # adds 0 * p and multiplies by 1, both exact)
    l2_on, clip_on = False, False
    for k in range(nk):
        l2_on = l2_on or two_l2[k] > 0
        clip_on = clip_on or clip[k] > 0
    lr_v, mom_v, l2_v = load(lr, 0, nk), load(momentum, 0, nk), load(two_l2, 0, nk)
    if batch == 1 and not l2_on and not clip_on and not use_norm and sizes.shape[0] > 2 and sizes[0] == 1:
        run_plain(params, buf, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef,
                   xs, ys, start, stop, lr_v, mom_v, losses, ratios, live, bad, keep_p, keep_b, nk)
        return _put_back(params, buf, live, keep_p, keep_b, nk)
    if batch == 1:
        _run_single(params, buf, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef,
                    xs, ys, start, stop, lr_v, mom_v, l2_v, clip, clip_on, eps, use_norm, losses, ratios, live,
                    bad, keep_p, keep_b, nk)
        return _put_back(params, buf, live, keep_p, keep_b, nk)
    n = xs.shape[0]
    last = (a_off[a_off.shape[0] - 1] - np.uint64(1)) * np.uint64(nk)  # the output unit's row
    for s in range(start, stop):
        lo = s * batch
        hi = min(lo + batch, n)
        nb = counts[hi - lo]
        for k in range(nk):
            losses[s, k] = 0
            ratios[s, k] = 0
        for j in range(lo, hi):
            _forward(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, xs[j], use_norm, nk)
            for k in range(nk):
                yhat = pre[last + np.uint64(k)]
                err = yhat - ys[j, k]
                losses[s, k] += err * err
                ratios[s, k] += abs(yhat / ys[j, k])
                dz[last + np.uint64(k)] = (err + err) / nb
            if j == hi - 1:
                # the step's loss is known before its last backward pass: keep a lane
                # that went bad as it was before this step
                for k in range(nk):
                    losses[s, k] = losses[s, k] / nb
                    ratios[s, k] = ratios[s, k] / nb
                _freeze_bad(params, buf, losses, s, live, bad, keep_p, keep_b, nk)
            _backward(params, grad, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, dz, use_norm, nk)
        _apply_update(params, grad, buf, coef, lr_v, mom_v, l2_v, clip, eps, l2_on, clip_on, nk)
    return _put_back(params, buf, live, keep_p, keep_b, nk)


@njit(**JIT)
def _run_single(params, buf, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef,
                xs, ys, start, stop, lr, momentum, two_l2, clip, clip_on, eps, use_norm, losses, ratios, live,
                bad, keep_p, keep_b, nk):
    """Steps of one sample each, two passes over the parameters per step.

    ``lr``, ``momentum`` and ``two_l2`` are the lanes' vectors, ``clip`` the lanes'
    thresholds (an array) and ``clip_on`` whether any lane clips.

    A step's backward pass (:func:`~multi_passes._backward_deltas`) only reads the weights; its update
    is applied by the next step's forward pass (:func:`~multi_passes._update_forward`), or at the end
    of the call, so ``params`` and ``buf`` are up to date whenever this returns. The two
    activation buffers alternate: the update needs the previous sample's activations
    while the forward pass writes the new ones. The losses, deltas and clip factors are
    those of :func:`run_steps`' batch path with a batch of one, to the bit.
    """
    last = (a_off[a_off.shape[0] - 1] - np.uint64(1)) * np.uint64(nk)  # the output unit's row
    cur, old = act, act2
    for s in range(start, stop):
        if s > start:
            _update_forward(params, buf, sizes, w_off, b_off, a_off, fsz, old, cur, pre, cen, var, dz, coef,
                            xs[s], lr, momentum, two_l2, use_norm, True, 0, nk)
        else:
            _forward(params, sizes, w_off, b_off, a_off, fsz, cur, pre, cen, var, xs[s], use_norm, nk)
        # the step's loss is known before its backward pass: keep a lane that went bad
        # as it was before this step
        _step_loss(params, buf, pre, ys, s, last, losses, ratios, dz, live, bad, keep_p, keep_b, nk)
        _backward_deltas(params, sizes, w_off, b_off, a_off, fsz, cur, pre, cen, var, dz, coef, two_l2, clip_on,
                         use_norm, 0, nk)
        _clip_factors(coef, clip, eps, nk)
        cur, old = old, cur
    if stop > start:  # the last step's update (``old`` holds its activations now)
        _update_forward(params, buf, sizes, w_off, b_off, a_off, fsz, old, cur, pre, cen, var, dz, coef,
                        xs[start], lr, momentum, two_l2, use_norm, False, 0, nk)


@njit(**JIT)
def predict(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, xs, use_norm, out, nk):
    """Every lane's y_hat for every sample: ``out[j, k]`` for ``xs[j, k]`` (the test metrics
    are then a few NumPy reductions). Four samples at a time (:func:`~multi_passes._forward4`), the same
    numbers as one at a time."""
    literally(nk)
    u = np.uint64(nk)
    span = a_off[a_off.shape[0] - 1] * u
    last = span - u  # the output unit's row
    act4 = np.zeros(4 * act.shape[0], act.dtype)
    pre4 = np.zeros(4 * act.shape[0], act.dtype)
    cen4 = np.zeros(4 * act.shape[0], act.dtype)
    var4 = np.zeros(4 * var.shape[0], var.dtype)
    n = xs.shape[0]
    j = 0
    while j + 4 <= n:
        _forward4(params, sizes, w_off, b_off, a_off, fsz, act4, pre4, cen4, var4, xs, j, use_norm, nk)
        for b in range(4):
            store(out, np.uint64(j + b) * u, load(pre4, np.uint64(b) * span + last, nk))
        j += 4
    for jj in range(j, n):
        _forward(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, xs[jj], use_norm, nk)
        store(out, np.uint64(jj) * u, load(pre, last, nk))
    return out
