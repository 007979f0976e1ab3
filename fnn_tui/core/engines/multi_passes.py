"""The passes of one training step over a group of K seeds' layers, one seed per SIMD lane.

These are the building blocks of :mod:`multi_kernels` (which has the whole picture: the
layout, how lanes stay independent, the paths a step can take): the forward pass one
sample at a time and four at a time, the backward pass of a batch and of one sample, the
update fused into the next sample's forward pass, the notes' normalisation both ways, the
clip factors, and the bookkeeping of frozen (diverged) lanes. Arrays are flat, row r of
lane k at ``r * nk + k``; every K-lane quantity is one vector of :mod:`lanes`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fnn_tui.core.engines import fused_kernels  # noqa: F401  (sets up the kernel cache first)
from fnn_tui.core.engines.lanes import load, ones, relu, store, where_positive, zeros

_NOALIAS: dict[str, bool] = {}
try:  # Numba has the flag (its parfors set it) but no decorator option for it: map one
    from numba.core.cpu import CPUTargetOptions
    from numba.core.options import TargetOptions

    if not hasattr(CPUTargetOptions, "noalias"):
        CPUTargetOptions.noalias = TargetOptions.Mapping("noalias")
    _NOALIAS["noalias"] = True
except (ImportError, AttributeError):  # another Numba: correct code, only slower
    pass

_1, _4 = np.uint64(1), np.uint64(4)  # unsigned, so that index sums stay integers

# No fast-math flags: the vector code needs no reassociation, and without contraction the
# code Numba runs right after compiling and the code it stores in its cache give the same
# numbers (with ``contract``, float32 exp08 parameters were measured apart by 4e-4 after
# 500 steps). NaN checks stay exact.
JIT = {"nogil": True, "cache": True, "error_model": "numpy", **_NOALIAS}


@njit(**JIT)
def _normalise(pre, cen, var, fsz, ao, nout, layer, nk):
    """The notes' normalisation of one layer's pre-activations in place, per lane:
    ``(z - mean) / var`` with unbiased variance; keeps ``z - mean`` and ``var`` for backward."""
    u = np.uint64(nk)
    sm = zeros(pre, nk)
    for o in range(nout):
        sm = sm + load(pre, ao + o * u, nk)
    sm = sm / fsz[layer + 1]
    ss = zeros(pre, nk)
    for o in range(nout):
        c = load(pre, ao + o * u, nk) - sm
        store(cen, ao + o * u, c)
        ss = ss + c * c
    v = ss / (fsz[layer + 1] - fsz[0])  # fsz[0] is the input width, 1
    store(var, np.uint64(layer) * u, v)
    for o in range(nout):
        store(pre, ao + o * u, load(cen, ao + o * u, nk) / v)


@njit(**JIT)
def _normalise_backward(dz, cen, var, fsz, ai, nin, layer, nk):
    """The normalisation's backward pass in place on the deltas of layer ``layer``'s input."""
    u = np.uint64(nk)
    sm = zeros(dz, nk)
    ss = zeros(dz, nk)
    for i in range(nin):
        d = load(dz, ai + i * u, nk)
        sm = sm + d
        ss = ss + d * load(cen, ai + i * u, nk)
    v = load(var, np.uint64(layer - 1) * u, nk)
    sm = sm / fsz[layer]
    ss = (ss + ss) / ((fsz[layer] - fsz[0]) * v * v)
    for i in range(nin):
        ia = ai + i * u
        store(dz, ia, (load(dz, ia, nk) - sm) / v - ss * load(cen, ia, nk))


@njit(**JIT)
def _forward(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, x, use_norm, nk):
    """Samples ``x[k]`` through lane k's network; the lanes' y_hat end in the last row of ``pre``.

    Arrays are flat, row r of lane k at ``r * nk + k``. Each output's sum stays in
    registers over its inputs: the bias first, then the inputs in order.
    """
    u = np.uint64(nk)
    n_layers = sizes.shape[0] - 1
    store(act, 0, load(x, 0, nk))
    for layer in range(n_layers):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer] * u
        ai = a_off[layer] * u
        ao = a_off[layer + 1] * u
        bo = b_off[layer] * u
        step = nout * u
        o = np.uint64(0)
        u2, u3 = u + u, u + u + u
        while o + _4 <= nout:  # four outputs at once: four independent chains of additions
            t = bo + o * u
            s0, s1 = load(params, t, nk), load(params, t + u, nk)
            s2, s3 = load(params, t + u2, nk), load(params, t + u3, nk)
            t = wo + o * u
            for i in range(nin):
                a = load(act, ai + i * u, nk)
                s0 = s0 + load(params, t, nk) * a
                s1 = s1 + load(params, t + u, nk) * a
                s2 = s2 + load(params, t + u2, nk) * a
                s3 = s3 + load(params, t + u3, nk) * a
                t += step
            t = ao + o * u
            store(pre, t, s0)
            store(pre, t + u, s1)
            store(pre, t + u2, s2)
            store(pre, t + u3, s3)
            o += _4
        while o < nout:
            acc = load(params, bo + o * u, nk)
            t = wo + o * u
            for i in range(nin):
                acc = acc + load(params, t, nk) * load(act, ai + i * u, nk)
                t += step
            store(pre, ao + o * u, acc)
            o += _1
        if layer == n_layers - 1:
            return
        if use_norm:
            _normalise(pre, cen, var, fsz, ao, nout, layer, nk)
        for o in range(nout):
            store(act, ao + o * u, relu(load(pre, ao + o * u, nk)))


@njit(**JIT)
def _forward4(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, xs, j, use_norm, nk):
    """Samples ``xs[j .. j+3]`` through every lane's network, each weight vector loaded once
    for the four: sample b's rows sit ``b * width`` rows into ``act``, ``pre`` and ``cen``,
    its variances ``b * layers`` rows into ``var``. Each sample's sums run in
    :func:`_forward`'s order (the bias, then the inputs in order), so the outputs are
    :func:`_forward`'s to the bit; only the weights' trips from memory are shared.
    """
    u = np.uint64(nk)
    n_layers = sizes.shape[0] - 1
    span = a_off[a_off.shape[0] - 1] * u  # one sample's rows
    vspan = np.uint64(sizes.shape[0]) * u
    for b in range(4):
        store(act, np.uint64(b) * span, load(xs, np.uint64(j + b) * u, nk))
    s2, s3 = span + span, span + span + span
    for layer in range(n_layers):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer] * u
        ai = a_off[layer] * u
        ao = a_off[layer + 1] * u
        bo = b_off[layer] * u
        step = nout * u
        for o in range(nout):
            b0 = load(params, bo + o * u, nk)
            a0, a1, a2, a3 = b0, b0, b0, b0
            t = wo + o * u
            ia = ai
            for _i in range(nin):
                w = load(params, t, nk)
                a0 = a0 + w * load(act, ia, nk)
                a1 = a1 + w * load(act, ia + span, nk)
                a2 = a2 + w * load(act, ia + s2, nk)
                a3 = a3 + w * load(act, ia + s3, nk)
                t += step
                ia += u
            t = ao + o * u
            store(pre, t, a0)
            store(pre, t + span, a1)
            store(pre, t + s2, a2)
            store(pre, t + s3, a3)
        if layer == n_layers - 1:
            return
        for b in range(4):
            off = np.uint64(b) * span
            if use_norm:
                vb = np.uint64(b) * vspan
                _normalise(pre, cen, var[vb:vb + vspan], fsz, ao + off, nout, layer, nk)
            for o in range(nout):
                t = ao + off + o * u
                store(act, t, relu(load(pre, t, nk)))


@njit(**JIT)
def _backward(params, grad, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, dz, use_norm, nk):
    """Add one sample's gradient to ``grad`` (batches of more than one sample), given
    dL/dy_hat in the last row of ``dz``. Each weight row is read once, for its gradient and
    for the gradient w.r.t. the input."""
    u = np.uint64(nk)
    n_layers = sizes.shape[0] - 1
    for layer in range(n_layers - 1, -1, -1):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer] * u
        ai = a_off[layer] * u
        ao = a_off[layer + 1] * u
        bo = b_off[layer] * u
        for o in range(nout):
            store(grad, bo + o * u, load(grad, bo + o * u, nk) + load(dz, ao + o * u, nk))
        for i in range(nin):
            row = wo + i * nout * u
            a = load(act, ai + i * u, nk)
            s = zeros(dz, nk)
            for o in range(nout):
                wr = row + o * u
                w = load(params, wr, nk)
                d = load(dz, ao + o * u, nk)
                store(grad, wr, load(grad, wr, nk) + a * d)
                s = s + w * d
            store(dz, ai + i * u, where_positive(load(pre, ai + i * u, nk), s))  # through the ReLU
        if layer == 0:
            break
        if use_norm:
            _normalise_backward(dz, cen, var, fsz, ai, nin, layer, nk)


@njit(**JIT)
def _clip_factors(sq, clip, eps, nk):
    """Each lane's clip factor from its squared gradient norm and its own clip threshold
    ``clip[k]`` (not positive: no clipping), in place (1 when unclipped)."""
    for k in range(nk):
        ck = clip[k]
        c = ck / (math.sqrt(sq[k]) + eps) if ck > 0 else ck
        sq[k] = c if ck > 0 and c < 1 else 1


@njit(**JIT)
def _apply_update(params, grad, buf, coef, lr, momentum, two_l2, clip, eps, l2_on, clip_on, nk):
    """L2 gradient, per-lane global-norm clip and SGD with momentum, as PyTorch computes
    them, for every lane (frozen ones are put back afterwards), from the batch's summed
    gradient in ``grad``, which is zeroed for the next batch. ``coef`` ends as the clip factors.
    ``lr``, ``momentum`` and ``two_l2`` are the lanes' vectors, ``clip`` their thresholds'
    array; ``l2_on`` and ``clip_on`` whether any lane has one.
    """
    u = np.uint64(nk)
    n = np.uint64(params.shape[0]) // u
    sq = zeros(params, nk)
    if l2_on or clip_on:
        for p in range(n):
            t = p * u
            g = load(grad, t, nk) + two_l2 * load(params, t, nk)
            store(grad, t, g)
            sq = sq + g * g
    store(coef, 0, sq)
    _clip_factors(coef, clip, eps, nk)
    c = load(coef, 0, nk)
    nothing = zeros(params, nk)
    for p in range(n):
        t = p * u
        b = momentum * load(buf, t, nk) + load(grad, t, nk) * c
        store(buf, t, b)
        store(params, t, load(params, t, nk) - lr * b)
        store(grad, t, nothing)


@njit(**JIT)
def _backward_deltas(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, dz, sq, two_l2, clip_on,
                     use_norm, lowest, nk):
    """A batch of one sample: the deltas of layers ``lowest`` and up into ``dz`` (given
    dL/dy_hat in its last row) and, when clipping is on, each lane's squared gradient norm
    into ``sq``, without storing the gradient: this pass only reads the weights.

    A weight's gradient is ``act_i * dz_o + 2 * l2 * w`` (a bias's ``dz_o + 2 * l2 * b``);
    :func:`_update_forward` computes it again, the same way, from ``act`` and ``dz``.
    """
    u = np.uint64(nk)
    n_layers = sizes.shape[0] - 1
    total = zeros(params, nk)
    for layer in range(n_layers - 1, lowest - 1, -1):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer] * u
        ai = a_off[layer] * u
        ao = a_off[layer + 1] * u
        bo = b_off[layer] * u
        dd = zeros(dz, nk)  # the layer's sum of squared output deltas
        if clip_on:
            for o in range(nout):
                d = load(dz, ao + o * u, nk)
                g = d + two_l2 * load(params, bo + o * u, nk)
                total = total + g * g
                dd = dd + d * d
        elif layer == 0:
            break  # the network's input needs no delta
        for i in range(nin):
            row = wo + i * nout * u
            s = zeros(dz, nk)
            if clip_on:
                # the row's squared gradient sum(a * d_o + 2 l2 w_o)^2, expanded into
                # a^2 sum d^2 + 4 l2 a sum d w + 4 l2^2 sum w^2 (sum d w is the delta's sum):
                # two multiplications per weight instead of four, the same norm to rounding
                ww = zeros(dz, nk)
                for o in range(nout):
                    w = load(params, row + o * u, nk)
                    s = s + w * load(dz, ao + o * u, nk)
                    ww = ww + w * w
                a = load(act, ai + i * u, nk)
                total = total + a * a * dd + (two_l2 + two_l2) * (a * s) + (two_l2 * two_l2) * ww
            else:
                for o in range(nout):
                    s = s + load(params, row + o * u, nk) * load(dz, ao + o * u, nk)
            store(dz, ai + i * u, where_positive(load(pre, ai + i * u, nk), s))  # through the ReLU
        if layer == 0:
            break
        if use_norm:
            _normalise_backward(dz, cen, var, fsz, ai, nin, layer, nk)
    store(sq, 0, total)


@njit(**JIT)
def _update_one(params, buf, t, a, d, c, lr, momentum, two_l2, nk):
    """Update the parameter vector at ``t`` whose gradient is ``a * d + 2 * l2 * p`` (for a
    bias ``a`` is ``d`` and ``d`` is 1, and ``d * 1`` is exactly ``d``): clip factor ``c``,
    momentum and step as :func:`_apply_update`; returns the new value."""
    p = load(params, t, nk)
    b = momentum * load(buf, t, nk) + (a * d + two_l2 * p) * c
    store(buf, t, b)
    p = p - lr * b
    store(params, t, p)
    return p


@njit(**JIT)
def _update_forward(params, buf, sizes, w_off, b_off, a_off, fsz, old, act, pre, cen, var, dz, coef, x,
                    lr, momentum, two_l2, use_norm, forward, first, nk):
    """The previous step's update fused with this step's forward pass: one pass over the
    parameters and the momentum buffer.

    The previous step left its activations in ``old``, its deltas in ``dz`` and its clip
    factors in ``coef``. Each parameter's gradient is computed again from them (as
    :func:`_backward_deltas` computed it), the parameter and its momentum are updated as
    :func:`_apply_update` does, and the new value is used at once for this sample's
    pre-activation, summed in :func:`_forward`'s order. With ``forward`` off, only the
    update (after a call's last step). Layers from ``first`` up (below it, the caller has
    done both and left layer ``first``'s new input in ``act``).
    """
    u = np.uint64(nk)
    n_layers = sizes.shape[0] - 1
    c = load(coef, 0, nk)
    one = ones(params, nk)
    if forward and first == 0:
        store(act, 0, load(x, 0, nk))
    for layer in range(first, n_layers):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer] * u
        ai = a_off[layer] * u
        ao = a_off[layer + 1] * u
        bo = b_off[layer] * u
        step = nout * u
        o = np.uint64(0)
        u2, u3 = u + u, u + u + u
        while forward and o + _4 <= nout:  # four outputs at once, as _forward sums
            d0, d1 = load(dz, ao + o * u, nk), load(dz, ao + o * u + u, nk)
            d2, d3 = load(dz, ao + o * u + u2, nk), load(dz, ao + o * u + u3, nk)
            t = bo + o * u
            s0 = _update_one(params, buf, t, d0, one, c, lr, momentum, two_l2, nk)
            s1 = _update_one(params, buf, t + u, d1, one, c, lr, momentum, two_l2, nk)
            s2 = _update_one(params, buf, t + u2, d2, one, c, lr, momentum, two_l2, nk)
            s3 = _update_one(params, buf, t + u3, d3, one, c, lr, momentum, two_l2, nk)
            t = wo + o * u
            for i in range(nin):
                a_old = load(old, ai + i * u, nk)
                a = load(act, ai + i * u, nk)
                s0 = s0 + _update_one(params, buf, t, a_old, d0, c, lr, momentum, two_l2, nk) * a
                s1 = s1 + _update_one(params, buf, t + u, a_old, d1, c, lr, momentum, two_l2, nk) * a
                s2 = s2 + _update_one(params, buf, t + u2, a_old, d2, c, lr, momentum, two_l2, nk) * a
                s3 = s3 + _update_one(params, buf, t + u3, a_old, d3, c, lr, momentum, two_l2, nk) * a
                t += step
            t = ao + o * u
            store(pre, t, s0)
            store(pre, t + u, s1)
            store(pre, t + u2, s2)
            store(pre, t + u3, s3)
            o += _4
        while o < nout:
            d = load(dz, ao + o * u, nk)
            acc = _update_one(params, buf, bo + o * u, d, one, c, lr, momentum, two_l2, nk)
            t = wo + o * u
            for i in range(nin):
                w = _update_one(params, buf, t, load(old, ai + i * u, nk), d, c, lr, momentum, two_l2, nk)
                if forward:
                    acc = acc + w * load(act, ai + i * u, nk)
                t += step
            if forward:
                store(pre, ao + o * u, acc)
            o += _1
        if layer == n_layers - 1 or not forward:
            continue
        if use_norm:
            _normalise(pre, cen, var, fsz, ao, nout, layer, nk)
        for o in range(nout):
            store(act, ao + o * u, relu(load(pre, ao + o * u, nk)))


@njit(**JIT)
def copy_lane(src_p, src_b, dst_p, dst_b, lane, nk):
    """Copy one lane's parameters and momentum buffer between flat ``[P, K]`` arrays."""
    for t in range(lane, src_p.shape[0], nk):
        dst_p[t] = src_p[t]
        dst_b[t] = src_b[t]


@njit(**JIT)
def _put_back(params, buf, live, keep_p, keep_b, nk):
    """Copy the frozen lanes back from their kept copy; returns the number of live lanes."""
    alive = 0
    for k in range(nk):
        if live[k] != 0:
            alive += 1
        else:
            copy_lane(keep_p, keep_b, params, buf, k, nk)
    return alive


@njit(**JIT)
def _freeze_bad(params, buf, losses, s, live, bad, keep_p, keep_b, nk):
    """A live lane whose step ``s`` loss is not finite is kept as it was before that step."""
    for k in range(nk):
        if live[k] != 0 and not math.isfinite(losses[s, k]):
            live[k] = 0
            bad[k] = s
            copy_lane(params, buf, keep_p, keep_b, k, nk)


@njit(inline="always", **JIT)  # a call with eleven arrays costs exp01 a fifth of its step
def _step_loss(params, buf, pre, ys, s, last, losses, ratios, dz, live, bad, keep_p, keep_b, nk):
    """A step of one sample: each lane's loss and ratio from the output row ``last`` of
    ``pre``, dL/dy_hat into that row of ``dz``, and a live lane whose loss is not finite
    frozen as it was before this step (:func:`_freeze_bad`)."""
    for k in range(nk):
        yhat = pre[last + np.uint64(k)]
        err = yhat - ys[s, k]
        losses[s, k] = err * err
        ratios[s, k] = abs(yhat / ys[s, k])
        dz[last + np.uint64(k)] = err + err
    _freeze_bad(params, buf, losses, s, live, bad, keep_p, keep_b, nk)
