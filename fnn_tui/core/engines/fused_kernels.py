"""Numba kernels of the fused engine: whole chunks of SGD steps in one compiled call.

The network lives in one flat float32 parameter array in PyTorch's ``state_dict`` order
(``layers.0.weight``, ``layers.0.bias``, ``layers.1.weight``, ...), each weight matrix
stored transposed (input-major) so the inner loops run over contiguous memory. The
backward pass is written out by hand, including the derivative of the notes'
normalisation ``n = (z - mean(z)) / var(z)`` with unbiased variance ``v``::

    dL/dz_j = (g_j - mean(g)) / v - 2 c_j (sum_i g_i c_i) / ((H - 1) v^2),   c = z - mean(z)

Clipping and momentum follow PyTorch's formulas exactly (see ``_apply_update``). All
kernels release the GIL, so the UI thread keeps running while they compute.
"""

from __future__ import annotations

import math

import numpy as np

from fnn_tui.core.engines import kernel_cache
from fnn_tui.core.engines.kernel_cache import KERNEL_FILES  # noqa: F401  (the files one stamp covers)

kernel_cache.install()  # before the first @njit(cache=True) below: the cache lives outside the package

from numba import njit  # noqa: E402  (after the cache is set up)

# Reassociation lets LLVM vectorise the dot products; no flag that assumes finite values,
# so NaN and infinity checks stay exact.
FASTMATH = {"reassoc", "contract"}


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def _forward(params, sizes, fsz, w_off, b_off, a_off, act, pre, cen, var, x, use_norm):
    """One sample through the network; fills the layer buffers and returns y_hat.

    Weights are stored transposed (input-major), so each input adds a contiguous row to
    the outputs, and inputs the ReLU switched off are skipped.
    """
    n_layers = sizes.shape[0] - 1
    act[0] = x
    for layer in range(n_layers):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer]
        bo = b_off[layer]
        ai = a_off[layer]
        ao = a_off[layer + 1]
        for o in range(nout):
            pre[ao + o] = params[bo + o]
        for i in range(nin):
            a = act[ai + i]
            if a == 0:
                continue
            row = wo + i * nout
            for o in range(nout):
                pre[ao + o] += params[row + o] * a
        if layer == n_layers - 1:
            return pre[ao]
        if use_norm:
            m = pre[ao] - pre[ao]
            for o in range(nout):
                m += pre[ao + o]
            m = m / fsz[layer + 1]
            ss = m - m
            for o in range(nout):
                c = pre[ao + o] - m
                cen[ao + o] = c
                ss += c * c
            v = ss / (fsz[layer + 1] - fsz[0])  # fsz[0] is the input width, 1
            var[layer] = v
            for o in range(nout):
                pre[ao + o] = cen[ao + o] / v
        for o in range(nout):
            h = pre[ao + o]
            act[ao + o] = h if h > 0 else 0
    return pre[0]


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def _backward(params, grad, sizes, fsz, w_off, b_off, a_off, act, pre, cen, var, dz, tmp, dout, use_norm):
    """Accumulate one sample's gradient, given dL/dy_hat = ``dout`` (transposed weights)."""
    n_layers = sizes.shape[0] - 1
    dz[a_off[n_layers]] = dout
    for layer in range(n_layers - 1, -1, -1):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer]
        bo = b_off[layer]
        ai = a_off[layer]
        ao = a_off[layer + 1]
        for o in range(nout):
            tmp[o] = dz[ao + o]  # a private copy: the loops below never read and write one array
            grad[bo + o] += tmp[o]
        # weight gradient: one contiguous row per input that was on
        for i in range(nin):
            a = act[ai + i]
            if a == 0:
                continue
            row = wo + i * nout
            for o in range(nout):
                grad[row + o] += a * tmp[o]
        if layer == 0:
            break
        # gradient w.r.t. this layer's input, through the previous layer's ReLU
        for i in range(nin):
            if not pre[ai + i] > 0:
                dz[ai + i] = 0
                continue
            row = wo + i * nout
            s = params[row] * tmp[0]
            for o in range(1, nout):
                s += params[row + o] * tmp[o]
            dz[ai + i] = s
        if use_norm:
            v = var[layer - 1]
            mg = dz[ai] - dz[ai]
            gc = mg
            for i in range(nin):
                mg += dz[ai + i]
                gc += dz[ai + i] * cen[ai + i]
            mg = mg / fsz[layer]
            k = (gc + gc) / ((fsz[layer] - fsz[0]) * v * v)
            for i in range(nin):
                dz[ai + i] = (dz[ai + i] - mg) / v - k * cen[ai + i]


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def _apply_update(params, grad, buf, state, lr, momentum, two_l2, clip, eps):
    """L2 gradient, global-norm clip and SGD with momentum, as PyTorch computes them, in two
    passes over the parameters; leaves ``grad`` zeroed for the next step.

    The scalars arrive already in the arrays' precision (as PyTorch casts them).
    ``clip_coef = clip / (total_norm + 1e-6)``, applied when below 1. ``state[0]`` is 0
    until the momentum buffer exists: PyTorch starts it as the first gradient
    (dampening 0), then ``buf = momentum * buf + grad``; ``p -= lr * buf``.
    """
    n = params.shape[0]
    scale = False
    coef = clip
    if two_l2 > 0 or clip > 0:
        total = lr - lr
        for k in range(n):
            g = grad[k] + two_l2 * params[k]
            grad[k] = g
            total += g * g
        if clip > 0:
            coef = clip / (math.sqrt(total) + eps)
            scale = coef < 1
    first = state[0] == 0
    for k in range(n):
        g = grad[k] * coef if scale else grad[k]
        b = g if first else momentum * buf[k] + g
        buf[k] = b
        params[k] -= lr * b
        grad[k] = 0
    state[0] = 1


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def run_steps(
    params, buf, state, grad, sizes, fsz, w_off, b_off, a_off, act, pre, cen, var, dz, tmp,
    xs, ys, start, stop, batch, lr, momentum, two_l2, clip, eps, use_norm, losses, ratios,
):
    """Train steps ``start..stop-1``; each step averages the gradient over its batch.

    Works in the precision of the arrays (float32 in use, float64 for verification).
    Returns the first step whose loss is not finite (its update is not applied), or -1.
    """
    n = xs.shape[0]
    for s in range(start, stop):
        lo = s * batch
        hi = min(lo + batch, n)
        nb = hi - lo
        loss = np.float32(0.0)
        ratio = np.float32(0.0)
        for j in range(lo, hi):
            y = ys[j]
            yhat = _forward(params, sizes, fsz, w_off, b_off, a_off, act, pre, cen, var, xs[j], use_norm)
            err = yhat - y
            loss += err * err
            ratio += abs(yhat / y)
            _backward(params, grad, sizes, fsz, w_off, b_off, a_off, act, pre, cen, var, dz, tmp,
                      np.float32(2.0) * err / np.float32(nb), use_norm)
        loss = loss / np.float32(nb)
        losses[s] = loss
        ratios[s] = ratio / np.float32(nb)
        if not math.isfinite(loss):
            grad[:] = 0
            return s
        _apply_update(params, grad, buf, state, lr, momentum, two_l2, clip, eps)
    return -1


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def evaluate(params, sizes, fsz, w_off, b_off, a_off, act, pre, cen, var, xs, ys, use_norm):
    """Test MSE, mean |y_hat / y|, MAE and the population std of y_hat over the given samples.

    The std uses Welford's update in float64: one pass, and no cancellation when the
    predictions are a near-constant far from zero (a dead network's).
    """
    n = xs.shape[0]
    sums = (0.0, 0.0, 0.0, 0.0, 0.0)
    for j in range(n):
        yhat = _forward(params, sizes, fsz, w_off, b_off, a_off, act, pre, cen, var, xs[j], use_norm)
        sums = metric_sums(sums, yhat, ys[j], j)
    return metric_means(sums, n)


@njit(inline="always", nogil=True, cache=True, error_model="numpy")
def metric_sums(sums, yhat, y, j):
    """Sample ``j``'s share of the test metrics, in float64 (Numba's float() of a float32
    stays a float32): ``sums`` is (squared error, |y_hat / y|, absolute error, Welford's
    running mean of y_hat and its sum of squared deviations); returns the new sums."""
    se, ratio, ae, mean, m2 = sums
    p = np.float64(yhat)
    t = np.float64(y)
    err = p - t
    delta = p - mean
    mean = mean + delta / (j + 1)
    return se + err * err, ratio + abs(p / t), ae + abs(err), mean, m2 + delta * (p - mean)


@njit(inline="always", nogil=True, cache=True, error_model="numpy")
def metric_means(sums, n):
    """MSE, mean |y_hat / y|, MAE and the population std of y_hat from :func:`metric_sums`."""
    se, ratio, ae, _, m2 = sums
    return se / n, ratio / n, ae / n, math.sqrt(m2 / n)  # each Welford term is >= 0


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def predict(params, sizes, fsz, w_off, b_off, a_off, act, pre, cen, var, xs, out, use_norm):
    """y_hat at each of ``xs`` into ``out``, with the current weights (no update)."""
    for j in range(xs.shape[0]):
        out[j] = _forward(params, sizes, fsz, w_off, b_off, a_off, act, pre, cen, var, xs[j], use_norm)
