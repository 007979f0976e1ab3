"""Numba CUDA kernels that train many lanes (seeds or variants) of one network shape at once.

One GPU thread is one lane. It copies its lane's weights and momentum from the device arrays
into its own local arrays once per launch, then loops over the launch's steps with them
there (local memory: per-thread, interleaved across a warp so that a warp's accesses to the
same index coalesce, and served from the L1/L2 caches while the resident lanes' state fits
in them), and writes them back once at the end. A launch is a chunk of an epoch's steps,
usually the whole epoch, so the per-step traffic to device memory is the lane's two samples.

The math per lane is exactly the CPU kernels' (:mod:`multi_kernels`, :mod:`fused_kernels`):
per-sample (or per-batch) SGD with PyTorch's momentum (a zero buffer at the start makes
``momentum * 0 + g`` PyTorch's first buffer ``g``), the notes' normalisation
``(z - mean) / var`` with unbiased variance on every hidden layer (before its ReLU) and its
hand-written backward pass, the L2 gradient ``2 * l2 * p``, the global-norm clip
``clip / (norm + 1e-6)`` applied below 1, flat parameters with weights stored input-major.
Every hyperparameter is read per lane from an array (learning rate of this epoch, momentum,
``2 * l2``, clip with ``<= 0`` meaning none), so lanes may be variants as well as seeds.

Sums run in the same order as the CPU multi-seed kernel's (the squared gradient norm of a
one-sample step in its expanded form too, summed in the backward pass), but the CUDA
compiler contracts ``a * b + c`` into fused multiply-adds; so lanes agree with the CPU to
float32 rounding, not bit for bit.

A lane whose step loss is not finite writes back its weights and momentum from before that
step, sets ``bad[k] = s`` and ``live[k] = 0``, and stops; a lane with ``live[k] == 0`` is
never touched again. The kernels are made per network shape, batch size and normalisation
(compile-time constants: the local arrays' sizes and the loop bounds) by :func:`kernels`.
This module imports ``numba.cuda``: import it only when the GPU path is wanted (under the
CUDA simulator, ``NUMBA_ENABLE_CUDASIM=1``, it runs as plain Python, slowly).
"""

from __future__ import annotations

import math
from functools import cache

from numba import cuda, float32, float64

from fnn_tui.core.engines.fused_engine import layout

THREADS = 128  # lanes per block: four warps; each lane is independent, so any size works


@cache
def norm_stats(sizes: tuple[int, ...]):
    """The sums of the notes' normalisation for networks of layer ``sizes``, as device
    functions (both training kernels use them, so they sum alike):

    ``layer_stats(pre, ao, nout, layer)``: the mean and unbiased variance of hidden layer
    ``layer``'s outputs ``pre[ao:ao + nout]``, in the CPU kernel's order;
    ``backward_stats(dz, cen, var, ai, nin, layer)``: ``(mean of dz, 2 * sum(dz * cen) /
    ((n - 1) * v * v), v)`` for the deltas ``dz[ai:ai + nin]`` of layer ``layer``'s input,
    the hidden layer ``layer - 1`` whose variance is ``var[layer - 1] = v``. Both only read."""
    fsz = tuple(float32(s) for s in sizes)
    zero, one = float32(0.0), float32(1.0)

    @cuda.jit(device=True)
    def layer_stats(pre, ao, nout, layer):
        sm = zero
        for o in range(nout):
            sm += pre[ao + o]
        sm = sm / fsz[layer + 1]
        ss = zero
        for o in range(nout):
            c = pre[ao + o] - sm
            ss += c * c
        return sm, ss / (fsz[layer + 1] - one)

    @cuda.jit(device=True)
    def backward_stats(dz, cen, var, ai, nin, layer):
        sm = zero
        ss = zero
        for i in range(nin):
            d = dz[ai + i]
            sm += d
            ss += d * cen[ai + i]
        v = var[layer - 1]
        return sm / fsz[layer], (ss + ss) / ((fsz[layer] - one) * v * v), v

    return layer_stats, backward_stats


@cache
def kernels(sizes: tuple[int, ...], batch: int, use_norm: bool):
    """``(train, predict, evaluate, column_means)`` kernels for networks of layer ``sizes`` (input 1 … output 1).

    ``train[blocks, THREADS](params, buf, x_train, y_train, orders, row_of, start, stop,
    lr, momentum, two_l2, clip, live, bad, losses, ratios)`` trains steps ``start..stop-1``:
    ``params``/``buf`` are ``[P, K]`` (lane innermost), ``x_train``/``y_train`` ``[K, n]``,
    ``orders[row_of[k], j]`` lane k's j-th sample index this epoch, the hyperparameters
    ``[K]`` float32, ``losses``/``ratios`` ``[steps, K]``.

    ``predict[blocks, THREADS](params, xs, out)``: ``out[j, k]`` = lane k's y_hat at ``xs[j, k]``.
    ``evaluate[...](params, xs, ys, out)``: lane k's test MSE, mean |y_hat / y|, MAE and
    population std of y_hat into ``out[k, 0..3]`` (float64, as ``fused_kernels.metric_sums``).
    ``column_means[...](values, out)``: ``out[k]`` = the float64 mean of ``values[:, k]``.
    """
    n_layers = len(sizes) - 1
    w_off, b_off, a_off = (tuple(int(v) for v in a) for a in layout(sizes))
    n_params = b_off[-1] + sizes[-1]
    width = a_off[-1]
    sz = tuple(int(s) for s in sizes)
    one_batch = batch == 1
    grad_size = 1 if one_batch else n_params  # only a batch of several samples keeps a gradient
    zero, one, eps = float32(0.0), float32(1.0), float32(1e-6)

    layer_stats, backward_stats = norm_stats(sz)

    @cuda.jit(device=True)
    def normalise(pre, cen, var, ao, nout, layer):
        sm, v = layer_stats(pre, ao, nout, layer)
        var[layer] = v
        for o in range(nout):
            c = pre[ao + o] - sm
            cen[ao + o] = c
            pre[ao + o] = c / v

    @cuda.jit(device=True)
    def normalise_backward(dz, cen, var, ai, nin, layer):
        sm, ss, v = backward_stats(dz, cen, var, ai, nin, layer)
        for i in range(nin):
            dz[ai + i] = (dz[ai + i] - sm) / v - ss * cen[ai + i]

    @cuda.jit(device=True)
    def forward(w, act, pre, cen, var, x):
        """One sample through the lane's network; returns y_hat (also in ``pre[width - 1]``)."""
        act[0] = x
        for layer in range(n_layers):
            nin, nout = sz[layer], sz[layer + 1]
            wo, bo, ai, ao = w_off[layer], b_off[layer], a_off[layer], a_off[layer + 1]
            for o in range(nout):
                acc = w[bo + o]
                for i in range(nin):
                    acc += w[wo + i * nout + o] * act[ai + i]
                pre[ao + o] = acc
            if layer < n_layers - 1:
                if use_norm:
                    normalise(pre, cen, var, ao, nout, layer)
                for o in range(nout):
                    v = pre[ao + o]
                    act[ao + o] = v if v > zero else zero
        return pre[width - 1]

    @cuda.jit(device=True)
    def deltas(w, act, pre, cen, var, dz, two_l2, clip_on):
        """Every layer's deltas into ``dz`` from dL/dy_hat in its last row, the weights only
        read; with ``clip_on``, returns the squared norm of the one-sample gradient
        ``act_i * dz_o + 2 l2 w`` (bias ``dz_o + 2 l2 b``) summed in the same pass, in the CPU
        kernel's expanded form (``multi_passes._backward_deltas``): per weight row
        ``a^2 sum d^2 + 4 l2 a sum d w + 4 l2^2 sum w^2``."""
        total = zero
        for layer in range(n_layers - 1, -1, -1):
            nin, nout = sz[layer], sz[layer + 1]
            wo, bo, ai, ao = w_off[layer], b_off[layer], a_off[layer], a_off[layer + 1]
            dd = zero  # the layer's sum of squared output deltas
            if clip_on:
                for o in range(nout):
                    d = dz[ao + o]
                    g = d + two_l2 * w[bo + o]
                    total += g * g
                    dd += d * d
            elif layer == 0:
                break  # the network's input needs no delta
            for i in range(nin):
                s = zero
                if clip_on:
                    ww = zero
                    for o in range(nout):
                        wt = w[wo + i * nout + o]
                        s += wt * dz[ao + o]
                        ww += wt * wt
                    a = act[ai + i]
                    total = total + a * a * dd + (two_l2 + two_l2) * (a * s) + (two_l2 * two_l2) * ww
                else:
                    for o in range(nout):
                        s += w[wo + i * nout + o] * dz[ao + o]
                if layer > 0:
                    dz[ai + i] = s if pre[ai + i] > zero else zero  # through the ReLU
            if layer == 0:
                break
            if use_norm:
                normalise_backward(dz, cen, var, ai, nin, layer)
        return total

    @cuda.jit(device=True)
    def clip_factor(sq, clip):
        if clip > zero:
            c = clip / (math.sqrt(sq) + eps)
            if c < one:
                return c
        return one

    @cuda.jit(device=True)
    def update_one_sample(w, m, act, dz, c, lr, momentum, two_l2):
        """SGD with momentum on the gradient recomputed from ``act`` and ``dz``, clip factor ``c``."""
        for layer in range(n_layers):
            nin, nout = sz[layer], sz[layer + 1]
            wo, bo, ai, ao = w_off[layer], b_off[layer], a_off[layer], a_off[layer + 1]
            for o in range(nout):
                t = bo + o
                b = momentum * m[t] + (dz[ao + o] + two_l2 * w[t]) * c
                m[t] = b
                w[t] = w[t] - lr * b
            for i in range(nin):
                a = act[ai + i]
                for o in range(nout):
                    t = wo + i * nout + o
                    b = momentum * m[t] + (a * dz[ao + o] + two_l2 * w[t]) * c
                    m[t] = b
                    w[t] = w[t] - lr * b

    @cuda.jit(device=True)
    def backward_add(w, grad, act, pre, cen, var, dz):
        """Add one sample's gradient to ``grad`` (batches of several samples)."""
        for layer in range(n_layers - 1, -1, -1):
            nin, nout = sz[layer], sz[layer + 1]
            wo, bo, ai, ao = w_off[layer], b_off[layer], a_off[layer], a_off[layer + 1]
            for o in range(nout):
                grad[bo + o] += dz[ao + o]
            for i in range(nin):
                a = act[ai + i]
                s = zero
                for o in range(nout):
                    t = wo + i * nout + o
                    d = dz[ao + o]
                    grad[t] += a * d
                    s += w[t] * d
                dz[ai + i] = s if pre[ai + i] > zero else zero
            if layer == 0:
                break
            if use_norm:
                normalise_backward(dz, cen, var, ai, nin, layer)

    @cuda.jit(device=True)
    def update_batch(w, m, grad, lr, momentum, two_l2, clip):
        """L2, clip and SGD with momentum from a batch's summed gradient, which is zeroed."""
        sq = zero
        if two_l2 > zero or clip > zero:
            for p in range(n_params):
                g = grad[p] + two_l2 * w[p]
                grad[p] = g
                sq += g * g
        c = clip_factor(sq, clip)
        for p in range(n_params):
            b = momentum * m[p] + grad[p] * c
            m[p] = b
            w[p] = w[p] - lr * b
            grad[p] = zero

    @cuda.jit
    def train(params, buf, x_train, y_train, orders, row_of, start, stop, lr, momentum, two_l2, clip,
              live, bad, losses, ratios):
        k = cuda.grid(1)
        if k >= params.shape[1] or live[k] == 0:
            return
        w = cuda.local.array(n_params, float32)
        m = cuda.local.array(n_params, float32)
        grad = cuda.local.array(grad_size, float32)
        act = cuda.local.array(width, float32)
        pre = cuda.local.array(width, float32)
        cen = cuda.local.array(width, float32)
        dz = cuda.local.array(width, float32)
        var = cuda.local.array(n_layers, float32)
        for p in range(n_params):
            w[p] = params[p, k]
            m[p] = buf[p, k]
        for p in range(grad_size):
            grad[p] = zero
        lr_k, mom_k, l2_k, clip_k = lr[k], momentum[k], two_l2[k], clip[k]
        order = orders[row_of[k]]
        n = order.shape[0]
        for s in range(start, stop):
            lo = s * batch
            hi = lo + batch
            if hi > n:  # (not ``min``: Numba's CUDA target fails to compile its overload)
                hi = n
            nb = float32(hi - lo)
            loss = zero
            ratio = zero
            for j in range(lo, hi):
                idx = order[j]
                y = y_train[k, idx]
                yhat = forward(w, act, pre, cen, var, x_train[k, idx])
                err = yhat - y
                loss += err * err
                ratio += abs(yhat / y)
                dz[width - 1] = (err + err) / nb
                if j == hi - 1:
                    # the step's loss is known before its last backward pass: a lane that
                    # went bad keeps its state from before this step
                    loss = loss / nb
                    ratio = ratio / nb
                    losses[s, k] = loss
                    ratios[s, k] = ratio
                    if not math.isfinite(loss):
                        bad[k] = s
                        live[k] = 0
                        break
                if not one_batch:
                    backward_add(w, grad, act, pre, cen, var, dz)
            if live[k] == 0:
                break
            if one_batch:
                clip_on = clip_k > zero
                sq = deltas(w, act, pre, cen, var, dz, l2_k, clip_on)
                c = clip_factor(sq, clip_k) if clip_on else one
                update_one_sample(w, m, act, dz, c, lr_k, mom_k, l2_k)
            else:
                update_batch(w, m, grad, lr_k, mom_k, l2_k, clip_k)
        for p in range(n_params):
            params[p, k] = w[p]
            buf[p, k] = m[p]

    @cuda.jit
    def predict(params, xs, out):
        k = cuda.grid(1)
        if k >= params.shape[1]:
            return
        w = cuda.local.array(n_params, float32)
        act = cuda.local.array(width, float32)
        pre = cuda.local.array(width, float32)
        cen = cuda.local.array(width, float32)
        var = cuda.local.array(n_layers, float32)
        for p in range(n_params):
            w[p] = params[p, k]
        for j in range(xs.shape[0]):
            out[j, k] = forward(w, act, pre, cen, var, xs[j, k])

    @cuda.jit
    def evaluate(params, xs, ys, out):
        k = cuda.grid(1)
        if k >= params.shape[1]:
            return
        w = cuda.local.array(n_params, float32)
        act = cuda.local.array(width, float32)
        pre = cuda.local.array(width, float32)
        cen = cuda.local.array(width, float32)
        var = cuda.local.array(n_layers, float32)
        for p in range(n_params):
            w[p] = params[p, k]
        # fused_kernels.metric_sums, in float64 and in sample order
        se, ratio, ae, mean, m2 = 0.0, 0.0, 0.0, 0.0, 0.0
        n = xs.shape[0]
        for j in range(n):
            p = float64(forward(w, act, pre, cen, var, xs[j, k]))
            t = float64(ys[j, k])
            err = p - t
            delta = p - mean
            mean = mean + delta / float64(j + 1)
            se += err * err
            ratio += abs(p / t)
            ae += abs(err)
            m2 += delta * (p - mean)
        out[k, 0] = se / n
        out[k, 1] = ratio / n
        out[k, 2] = ae / n
        out[k, 3] = math.sqrt(m2 / n)

    @cuda.jit
    def column_means(values, out):
        k = cuda.grid(1)
        if k >= values.shape[1]:
            return
        acc = 0.0  # float64, row by row: multi_kernels.column_means' numbers
        for j in range(values.shape[0]):
            acc += float64(values[j, k])
        out[k] = acc / values.shape[0]

    return train, predict, evaluate, column_means


def blocks(lanes: int) -> int:
    """Blocks of :data:`THREADS` lanes that cover ``lanes``."""
    return max(1, -(-lanes // THREADS))


def simulated() -> bool:
    """Whether ``numba.cuda`` is Numba's CUDA simulator here (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


__all__ = ["THREADS", "blocks", "kernels", "norm_stats", "simulated"]
