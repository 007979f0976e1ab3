"""The plain path of the multi-seed kernel: presets without normalisation, L2 or clipping.

Rows 1 to 6 of the notes' table. Their step needs no global gradient norm and no
layer-wide statistics, so the backward pass through layer 1 (the first hidden-to-hidden
matrix, the largest), the update of layers 0 and 1 and the next sample's forward pass
through them can be one pass over layer 1's weights (:func:`_plain_low`) instead of two:
the kernels of these presets are bound by the traffic of weights and momentum between
the caches, and that traffic falls by a fifth. The numbers are those of the general path
(:func:`multi_kernels._run_single`) to the bit; a test runs both.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fnn_tui.core.engines.lanes import load, relu, store, where_positive, zeros
from fnn_tui.core.engines.multi_passes import (
    JIT,
    _1,
    _4,
    _backward_deltas,
    _forward,
    _step_loss,
    _update_forward,
)


@njit(**JIT)
def _plain_update(params, buf, t, g, lr, momentum, nk):
    """Momentum SGD on the parameter vector at ``t`` with gradient ``g`` (no L2, no clip):
    :func:`~multi_passes._update_one`'s numbers for such presets; returns the new value."""
    b = momentum * load(buf, t, nk) + g
    store(buf, t, b)
    p = load(params, t, nk) - lr * b
    store(params, t, p)
    return p


@njit(**JIT)
def _plain_low(params, buf, sizes, w_off, b_off, a_off, old, act, pre, dz, x, lr, momentum, nk):
    """For plain networks, one pass over layer 1 (the first hidden-to-hidden matrix, the
    largest) that does three things per row: the backward pass through its old weights
    (that row's delta), the update of layer 0 for that unit and its new activation for the
    next sample ``x``, then the row's update, added at once to the next sample's sums.

    :func:`~multi_kernels._run_single` passes over such a matrix twice a step, once to read it for the
    deltas and once to update it; here a block of four rows is read for the deltas and is
    still in the L1 cache when it is updated, so the matrix and its momentum come from L2
    once a step. Every sum runs in :func:`~multi_passes._backward_deltas`' and :func:`~multi_passes._forward`'s order
    and every update is :func:`~multi_passes._update_one`'s, so the numbers are those of
    :func:`~multi_kernels._run_single` to the bit. ``old`` holds the step's activations, ``act`` gets the
    next sample's; layer 1's outputs' deltas are in ``dz``.
    """
    u = np.uint64(nk)
    n_layers = sizes.shape[0] - 1
    nin = sizes[1]
    nout = sizes[2]
    w0, b0 = w_off[0] * u, b_off[0] * u
    w1, b1 = w_off[1] * u, b_off[1] * u
    a1, a2 = a_off[1] * u, a_off[2] * u
    step = nout * u
    x_old = load(old, 0, nk)
    x_new = load(x, 0, nk)
    store(act, 0, x_new)
    # layer 1's biases (gradient: the delta), the first term of the next sample's sums
    for o in range(nout):
        t = a2 + o * u
        store(pre, t, _plain_update(params, buf, b1 + o * u, load(dz, t, nk), lr, momentum, nk))
    i = np.uint64(0)
    while i < nin:
        rows = _4 if i + _4 <= nin else _1
        row = w1 + i * step
        # the deltas of units i.. (layer 1's inputs) through the old weights, each in output order
        s0, s1, s2, s3 = zeros(dz, nk), zeros(dz, nk), zeros(dz, nk), zeros(dz, nk)
        if rows == _4:
            for o in range(nout):
                d = load(dz, a2 + o * u, nk)
                t = row + o * u
                s0 = s0 + load(params, t, nk) * d
                s1 = s1 + load(params, t + step, nk) * d
                s2 = s2 + load(params, t + step + step, nk) * d
                s3 = s3 + load(params, t + step + step + step, nk) * d
        else:
            for o in range(nout):
                s0 = s0 + load(params, row + o * u, nk) * load(dz, a2 + o * u, nk)
        # layer 0 for those units: update (gradients x * delta and delta), the next sample's
        # pre-activation (bias first, then its one input) and activation
        t = a1 + i * u
        h0 = _plain_unit(params, buf, pre, act, w0 + i * u, b0 + i * u, t, where_positive(load(pre, t, nk), s0),
                         x_old, x_new, lr, momentum, nk)
        g0 = load(old, t, nk)
        if rows == _4:
            h1 = _plain_unit(params, buf, pre, act, w0 + (i + _1) * u, b0 + (i + _1) * u, t + u,
                             where_positive(load(pre, t + u, nk), s1), x_old, x_new, lr, momentum, nk)
            h2 = _plain_unit(params, buf, pre, act, w0 + (i + _1 + _1) * u, b0 + (i + _1 + _1) * u, t + u + u,
                             where_positive(load(pre, t + u + u, nk), s2), x_old, x_new, lr, momentum, nk)
            h3 = _plain_unit(params, buf, pre, act, w0 + (i + _1 + _1 + _1) * u, b0 + (i + _1 + _1 + _1) * u,
                             t + u + u + u, where_positive(load(pre, t + u + u + u, nk), s3), x_old, x_new, lr,
                             momentum, nk)
            g1, g2, g3 = load(old, t + u, nk), load(old, t + u + u, nk), load(old, t + u + u + u, nk)
            # the rows' update (gradient: old activation * delta), added in row order
            for o in range(nout):
                d = load(dz, a2 + o * u, nk)
                t = row + o * u
                z = load(pre, a2 + o * u, nk)
                z = z + _plain_update(params, buf, t, g0 * d, lr, momentum, nk) * h0
                z = z + _plain_update(params, buf, t + step, g1 * d, lr, momentum, nk) * h1
                z = z + _plain_update(params, buf, t + step + step, g2 * d, lr, momentum, nk) * h2
                z = z + _plain_update(params, buf, t + step + step + step, g3 * d, lr, momentum, nk) * h3
                store(pre, a2 + o * u, z)
        else:
            for o in range(nout):
                d = load(dz, a2 + o * u, nk)
                z = load(pre, a2 + o * u, nk) + _plain_update(params, buf, row + o * u, g0 * d, lr, momentum, nk) * h0
                store(pre, a2 + o * u, z)
        i += rows
    if n_layers > 2:  # layer 1's outputs are hidden units: their activations for the next layer
        for o in range(nout):
            t = a2 + o * u
            store(act, t, relu(load(pre, t, nk)))


@njit(**JIT)
def _plain_unit(params, buf, pre, act, tw, tb, ta, d, x_old, x_new, lr, momentum, nk):
    """Layer 0's unit at row ``ta``: update its bias (gradient ``d``) and its one weight
    (gradient ``x_old * d``), then its pre-activation and activation for ``x_new``."""
    z = _plain_update(params, buf, tb, d, lr, momentum, nk)
    z = z + _plain_update(params, buf, tw, x_old * d, lr, momentum, nk) * x_new
    store(pre, ta, z)
    h = relu(z)
    store(act, ta, h)
    return h


@njit(**JIT)
def run_plain(params, buf, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef,
               xs, ys, start, stop, lr, momentum, losses, ratios, live, bad, keep_p, keep_b, nk):
    """:func:`~multi_kernels._run_single` for plain networks (no normalisation, L2 or clipping; one input
    and at least two layers): the same steps and numbers, with layers 0 and 1 trained by
    :func:`_plain_low`'s single pass instead of a backward pass and an update pass.

    A step: its loss, the deltas of layers 2 and up (:func:`~multi_passes._backward_deltas`), then
    layers 0 and 1 (:func:`_plain_low`) and layers 2 and up (:func:`~multi_passes._update_forward`)
    updated and run on the next sample. The call's last step runs them on a sample it
    does not use (its own), so the update is always applied before the call returns.
    ``lr`` and ``momentum`` are vectors, one number per lane.
    """
    last = (a_off[a_off.shape[0] - 1] - np.uint64(1)) * np.uint64(nk)  # the output unit's row
    zero = lr - lr
    cur, nxt = act, act2
    if stop > start:
        _forward(params, sizes, w_off, b_off, a_off, fsz, cur, pre, cen, var, xs[start], False, nk)
    for s in range(start, stop):
        _step_loss(params, buf, pre, ys, s, last, losses, ratios, dz, live, bad, keep_p, keep_b, nk)
        _backward_deltas(params, sizes, w_off, b_off, a_off, fsz, cur, pre, cen, var, dz, coef, zero, False,
                         False, 2, nk)
        for k in range(nk):
            coef[k] = 1  # no clip: layers 2 and up multiply their gradients by 1
        x = xs[s + 1] if s + 1 < stop else xs[s]
        _plain_low(params, buf, sizes, w_off, b_off, a_off, cur, nxt, pre, dz, x, lr, momentum, nk)
        _update_forward(params, buf, sizes, w_off, b_off, a_off, fsz, cur, nxt, pre, cen, var, dz, coef, x,
                        lr, momentum, zero, False, True, 2, nk)
        cur, nxt = nxt, cur
