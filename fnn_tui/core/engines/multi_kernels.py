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
- Each lane has its own gradient norm and clip factor; an unclipped lane multiplies by 1,
  which is exact.
- The momentum buffer starts at zero, so ``momentum * 0 + g`` is PyTorch's first-step
  buffer ``g`` exactly, with no per-lane "first step" flag.
- A lane whose loss is not finite is frozen: its parameters and buffer from before that
  step are copied aside, the hot loops go on updating all lanes alike, and the frozen
  lanes are copied back at the end of every call, so they never change as seen from
  outside and their garbage never reaches another lane.

How the lane loops become vector code: the lane count is compiled in as a constant
(``literally``), so LLVM unrolls each lane loop into straight-line code; the SLP
vectoriser (off by default in Numba, switched on for these kernels only, see
:func:`call`) packs that code into vector instructions; the loop vectoriser is switched
off for them, or it would vectorise the loop around instead, with gathers. All indices are
unsigned, so no negative-index fix-up hides that consecutive lanes are consecutive in
memory, and array arguments are declared ``noalias`` (each is its own buffer), so LLVM
need not fear that a store to one array changes another. Up to 16 lanes every lane loop
becomes vector code; at 32 LLVM stops unrolling some loops and the backward pass stays
mostly scalar (per seed-step 32 lanes still measured a little cheaper than 16 on exp08,
and equal on exp06: ``benchmarks/seeds.py``).

Sums run in a different order than in the single-seed kernels (per lane in sequence
instead of reassociated across a vector), so lanes agree with single-seed runs to
rounding, not bit for bit. The kernels work in the precision of the arrays (float32 in
use, float64 for verification) and release the GIL.
"""

from __future__ import annotations

import math

import numpy as np
from numba import literally, njit

from fnn_tui.core.engines import fused_kernels  # noqa: F401  (picks the Numba cache folder)

_NOALIAS: dict[str, bool] = {}
try:  # Numba has the flag (its parfors set it) but no decorator option for it: map one
    from numba.core.cpu import CPUTargetOptions
    from numba.core.options import TargetOptions

    if not hasattr(CPUTargetOptions, "noalias"):
        CPUTargetOptions.noalias = TargetOptions.Mapping("noalias")
    _NOALIAS["noalias"] = True
except (ImportError, AttributeError):  # another Numba: correct code, only slower
    pass


# how a step's backward pass stores the gradient (see _backward)
ACCUMULATE, DIRECT = 0, 1

_compiled: set[tuple[str, int, str]] = set()


def call(kernel, *args):
    """Call ``run_steps`` or ``predict`` (lane count last), compiled with LLVM's SLP
    vectoriser on and its loop vectoriser off the first time a lane count is seen.

    Numba reads both settings from its config whenever it optimises a module, so they are
    changed only while Numba's compiler lock is held: no other function is compiled with
    them. Compiled kernels land in Numba's cache as usual.
    """
    key = (kernel.__name__, args[-1], str(args[0].dtype))
    if key in _compiled:
        return kernel(*args)
    import numba
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:
        old = numba.config.SLP_VECTORIZE, numba.config.LOOP_VECTORIZE
        numba.config.SLP_VECTORIZE, numba.config.LOOP_VECTORIZE = 1, 0
        try:
            result = kernel(*args)
        finally:
            numba.config.SLP_VECTORIZE, numba.config.LOOP_VECTORIZE = old
    _compiled.add(key)
    return result


# Reassociation (for the vector code) but no contraction, unlike fused_kernels' FASTMATH:
# with ``noalias`` and contraction, the code Numba runs right after compiling and the code
# it stores in its cache fused different multiply-adds, so a run's numbers depended on
# whether its process compiled the kernel or loaded it (measured: float32 exp08 parameters
# apart by 4e-4 after 500 steps). No flag that assumes finite values: NaN checks stay exact.
_FASTMATH = {"reassoc"}
_JIT = {"nogil": True, "cache": True, "fastmath": _FASTMATH, "error_model": "numpy", **_NOALIAS}


@njit(**_JIT)
def _forward(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, sm, ss, x, use_norm, nk):
    """Samples ``x[k]`` through lane k's network; the lanes' y_hat end in the last row of ``pre``.

    Arrays are flat, row r of lane k at ``r * nk + k``; indices are unsigned so that no
    negative-index fix-up sits between LLVM and the vector loads.
    """
    u = np.uint64(nk)
    n_layers = sizes.shape[0] - 1
    for k in range(u):
        act[k] = x[k]
    for layer in range(n_layers):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer] * u
        ai = a_off[layer] * u
        ao = a_off[layer + 1] * u
        bo = b_off[layer] * u
        for o in range(nout):  # nested, so that SLP vectorises the lanes
            for k in range(u):
                t = o * u + k
                pre[ao + t] = params[bo + t]
        for i in range(nin):
            row = wo + i * nout * u
            ia = ai + i * u
            for o in range(nout):
                po = ao + o * u
                wr = row + o * u
                for k in range(u):
                    pre[po + k] += params[wr + k] * act[ia + k]
        if layer == n_layers - 1:
            return
        vo = np.uint64(layer) * u
        if use_norm:
            for k in range(u):
                sm[k] = 0
                ss[k] = 0
            for o in range(nout):
                for k in range(u):
                    sm[k] += pre[ao + o * u + k]
            for k in range(u):
                sm[k] = sm[k] / fsz[layer + 1]
            for o in range(nout):
                for k in range(u):
                    c = pre[ao + o * u + k] - sm[k]
                    cen[ao + o * u + k] = c
                    ss[k] += c * c
            for k in range(u):
                var[vo + k] = ss[k] / (fsz[layer + 1] - fsz[0])  # fsz[0] is the input width, 1
            for o in range(nout):
                for k in range(u):
                    pre[ao + o * u + k] = cen[ao + o * u + k] / var[vo + k]
        for o in range(nout):  # nested, so that SLP vectorises the lanes
            for k in range(u):
                t = o * u + k
                h = pre[ao + t]
                act[ao + t] = h if h > 0 else 0


@njit(**_JIT)
def _backward(params, grad, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, dz, tmp, sm, ss, sq, two_l2,
              mode, use_norm, nk):
    """Each lane's gradient, given dL/dy_hat in the last row of ``dz``, used as ``mode`` says.

    With K lanes the arrays outgrow the L1 cache and passes over memory cost more than
    arithmetic, so a batch of one sample (``DIRECT``) writes each gradient entry with its
    L2 term ``2 * l2 * p`` straight into ``grad`` and adds its square to the lane's
    ``sq``: the update needs no pass of its own for the norm. Larger batches
    (``ACCUMULATE``) add the sample's gradient to ``grad``.

    Each weight row is read once, for its gradient and for the gradient w.r.t. the input.
    """
    u = np.uint64(nk)
    n_layers = sizes.shape[0] - 1
    for layer in range(n_layers - 1, -1, -1):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer] * u
        ai = a_off[layer] * u
        ao = a_off[layer + 1] * u
        bo = b_off[layer] * u
        for o in range(nout):  # nested, so that SLP vectorises the lanes
            for k in range(u):
                t = o * u + k
                tmp[t] = dz[ao + t]  # a private copy: the loops below never read and write one array
        if mode == DIRECT:
            for o in range(nout):
                for k in range(u):
                    t = o * u + k
                    g = tmp[t] + two_l2 * params[bo + t]
                    grad[bo + t] = g
                    sq[k] += g * g
        else:
            for o in range(nout):  # nested, so that SLP vectorises the lanes
                for k in range(u):
                    t = o * u + k
                    grad[bo + t] += tmp[t]
        # per input row: its weights' gradient, and the gradient w.r.t. that input
        for i in range(nin):
            row = wo + i * nout * u
            ia = ai + i * u
            for k in range(u):
                sm[k] = 0
            if mode == DIRECT:
                for o in range(nout):
                    wr = row + o * u
                    oo = o * u
                    for k in range(u):
                        w = params[wr + k]
                        d = tmp[oo + k]
                        g = act[ia + k] * d + two_l2 * w
                        grad[wr + k] = g
                        sq[k] += g * g
                        sm[k] += w * d
            else:
                for o in range(nout):
                    wr = row + o * u
                    oo = o * u
                    for k in range(u):
                        w = params[wr + k]
                        d = tmp[oo + k]
                        grad[wr + k] += act[ia + k] * d
                        sm[k] += w * d
            for k in range(u):  # through the previous layer's ReLU, a select
                d = sm[k]
                dz[ia + k] = d if pre[ia + k] > 0 else 0
        if layer == 0:
            break
        if use_norm:
            vo = np.uint64(layer - 1) * u
            for k in range(u):
                sm[k] = 0
                ss[k] = 0
            for i in range(nin):
                ia = ai + i * u
                for k in range(u):
                    d = dz[ia + k]
                    sm[k] += d
                    ss[k] += d * cen[ia + k]
            for k in range(u):
                v = var[vo + k]
                sm[k] = sm[k] / fsz[layer]
                ss[k] = (ss[k] + ss[k]) / ((fsz[layer] - fsz[0]) * v * v)
            for i in range(nin):
                ia = ai + i * u
                for k in range(u):
                    dz[ia + k] = (dz[ia + k] - sm[k]) / var[vo + k] - ss[k] * cen[ia + k]


@njit(**_JIT)
def _apply_update(params, grad, buf, sq, lr, momentum, two_l2, clip, eps, mode, nk):
    """L2 gradient, per-lane global-norm clip and SGD with momentum, as PyTorch computes
    them, for every lane (frozen ones are put back afterwards).

    ``DIRECT``: ``grad`` already holds the L2 term and ``sq`` the squared norms (see
    :func:`_backward`), and ``grad`` is left as is (the next step overwrites it).
    Otherwise both are computed here and ``grad`` is zeroed for the next batch. ``sq``
    ends as the clip factors.
    """
    u = np.uint64(nk)
    n = np.uint64(params.shape[0]) // u
    direct = mode == DIRECT
    if not direct:
        for k in range(u):
            sq[k] = 0
        if two_l2 > 0 or clip > 0:
            for p in range(n):
                for k in range(u):
                    g = grad[p * u + k] + two_l2 * params[p * u + k]
                    grad[p * u + k] = g
                    sq[k] += g * g
    for k in range(u):
        c = clip / (math.sqrt(sq[k]) + eps) if clip > 0 else clip
        sq[k] = c if clip > 0 and c < 1 else 1
    for p in range(n):
        for k in range(u):
            t = p * u + k
            b = momentum * buf[t] + grad[t] * sq[k]
            buf[t] = b
            params[t] -= lr * b
    if not direct:
        for p in range(n):
            for k in range(u):
                grad[p * u + k] = 0


@njit(**_JIT)
def copy_lane(src_p, src_b, dst_p, dst_b, lane, nk):
    """Copy one lane's parameters and momentum buffer between flat ``[P, K]`` arrays."""
    for t in range(lane, src_p.shape[0], nk):
        dst_p[t] = src_p[t]
        dst_b[t] = src_b[t]


@njit(**_JIT)
def run_steps(
    params, buf, grad, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, dz, tmp, sm, ss, coef, counts,
    xs, ys, start, stop, batch, lr, momentum, two_l2, clip, eps, use_norm, losses, ratios, live, bad,
    keep_p, keep_b, nk,
):
    """Train steps ``start..stop-1`` of every lane; each step averages over its batch.

    ``xs[j, k]`` is lane k's j-th sample of the epoch. Per step, ``losses[s, k]`` and
    ``ratios[s, k]`` get lane k's MSE and mean |y_hat / y|. A live lane whose loss is not
    finite gets ``bad[k] = s`` and ``live[k] = 0``, and its parameters and buffer from
    before that step are kept in ``keep_p``/``keep_b``. The hot loops update every lane
    alike (no per-lane branch); frozen lanes are put back from the kept copy at the end
    of the call, so they never change as seen from outside. ``nk`` (the lane count) is compiled in as a constant, so the lane
    loops become straight vector code. Returns the number of lanes still live.
    """
    literally(nk)
    n = xs.shape[0]
    last = (a_off[a_off.shape[0] - 1] - np.uint64(1)) * np.uint64(nk)  # the output unit's row
    mode = DIRECT if batch == 1 else ACCUMULATE
    for s in range(start, stop):
        lo = s * batch
        hi = min(lo + batch, n)
        nb = counts[hi - lo]
        for k in range(nk):
            losses[s, k] = 0
            ratios[s, k] = 0
            coef[k] = 0
        for j in range(lo, hi):
            _forward(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, sm, ss, xs[j], use_norm, nk)
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
                    loss = losses[s, k] / nb
                    losses[s, k] = loss
                    ratios[s, k] = ratios[s, k] / nb
                    if live[k] != 0 and not math.isfinite(loss):
                        live[k] = 0
                        bad[k] = s
                        copy_lane(params, buf, keep_p, keep_b, k, nk)
            _backward(params, grad, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, dz, tmp, sm, ss, coef,
                      two_l2, mode, use_norm, nk)
        _apply_update(params, grad, buf, coef, lr, momentum, two_l2, clip, eps, mode, nk)
    alive = 0
    for k in range(nk):
        if live[k] != 0:
            alive += 1
        else:
            copy_lane(keep_p, keep_b, params, buf, k, nk)
    return alive


@njit(**_JIT)
def predict(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, sm, ss, xs, use_norm, out, nk):
    """Every lane's y_hat for every sample: ``out[j, k]`` for ``xs[j, k]`` (the test metrics
    are then a few NumPy reductions)."""
    literally(nk)
    last = (a_off[a_off.shape[0] - 1] - np.uint64(1)) * np.uint64(nk)
    for j in range(xs.shape[0]):
        _forward(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, sm, ss, xs[j], use_norm, nk)
        for k in range(nk):
            out[j, k] = pre[last + np.uint64(k)]
    return out
