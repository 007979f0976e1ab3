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

How the lane loops become vector code: explicitly. Every K-lane quantity is one value of
:mod:`lanes`' vector type (``load``, arithmetic, ``store``), one LLVM vector instruction
per operation for all lanes, which LLVM only splits into registers; earlier versions wrote
scalar loops over the lanes and relied on LLVM's SLP vectoriser, which packed some loops
into full vectors and others into 2- or 4-wide pieces. Array arguments are declared
``noalias`` (each is its own buffer).

With a batch of one sample (every preset), a step passes over the parameters twice
instead of four times: the backward pass (:func:`_backward_deltas`) only reads the
weights and sums each lane's squared gradient norm without storing the gradient, and the
update is applied by the next step's forward pass (:func:`_update_forward`), which
recomputes each gradient entry ``act_i * dz_o + 2 * l2 * w`` from the kept activations
and deltas, updates the weight and its momentum, and uses the new weight at once.

Sums run in a different order than in the single-seed kernels (per lane in sequence
instead of reassociated across a vector), and the squared gradient norm is summed row by
row in expanded form (:func:`_backward_deltas`), so lanes agree with single-seed runs to
rounding, not bit for bit; the sums here run in source order (no fast-math flags at all).
The kernels work in the precision of the arrays (float32 in use, float64 for
verification) and release the GIL.

Presets without normalisation, L2 or clipping (rows 1 to 6) take a shorter path,
:func:`_run_plain`: layers 0 and 1 are trained in one pass a step instead of two
(:func:`_plain_low`), with the same numbers as the general path to the bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import literally, njit

from fnn_tui.core.engines import fused_kernels  # noqa: F401  (picks the Numba cache folder)
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


# No fast-math flags: the vector code needs no reassociation, and without contraction the
# code Numba runs right after compiling and the code it stores in its cache give the same
# numbers (with ``contract``, float32 exp08 parameters were measured apart by 4e-4 after
# 500 steps). NaN checks stay exact.
_JIT = {"nogil": True, "cache": True, "error_model": "numpy", **_NOALIAS}


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
def _clip_factors(sq, clip, eps, nk):
    """Each lane's clip factor from its squared gradient norm, in place (1 when unclipped)."""
    for k in range(nk):
        c = clip / (math.sqrt(sq[k]) + eps) if clip > 0 else clip
        sq[k] = c if clip > 0 and c < 1 else 1


@njit(**_JIT)
def _apply_update(params, grad, buf, coef, lr, momentum, two_l2, clip, eps, nk):
    """L2 gradient, per-lane global-norm clip and SGD with momentum, as PyTorch computes
    them, for every lane (frozen ones are put back afterwards), from the batch's summed
    gradient in ``grad``, which is zeroed for the next batch. ``coef`` ends as the clip factors.
    """
    u = np.uint64(nk)
    n = np.uint64(params.shape[0]) // u
    sq = zeros(params, nk)
    if two_l2 > 0 or clip > 0:
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
def gather(x_train, y_train, orders, row_of, xs, ys):
    """An epoch's samples in each lane's order: ``xs[j, k] = x_train[k, orders[row_of[k], j]]``
    (and ``ys`` alike), where ``orders`` holds one shuffle per distinct seed."""
    for k in range(xs.shape[1]):  # lane by lane: each reads its own samples, in cache
        order = orders[row_of[k]]
        for j in range(xs.shape[0]):
            i = order[j]
            xs[j, k] = x_train[k, i]
            ys[j, k] = y_train[k, i]


@njit(**_JIT)
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


@njit(**_JIT)
def test_metrics(yhat, ys, out):
    """Per lane k, from its predictions ``yhat[:, k]`` of targets ``ys[:, k]``: the MSE, mean
    |y_hat / y|, MAE and population std of y_hat into ``out[k, 0..3]``, in float64 and in
    the single-seed engine's order (``fused_kernels.evaluate``: Welford's update for the std)."""
    n, nk = yhat.shape
    for k in range(nk):
        se = 0.0
        ratio = 0.0
        ae = 0.0
        mean = 0.0
        m2 = 0.0
        for j in range(n):
            p = np.float64(yhat[j, k])  # (Numba's float() of a float32 stays a float32)
            y = np.float64(ys[j, k])
            err = p - y
            se += err * err
            ae += abs(err)
            ratio += abs(p / y)
            delta = p - mean
            mean += delta / (j + 1)
            m2 += delta * (p - mean)
        out[k, 0] = se / n
        out[k, 1] = ratio / n
        out[k, 2] = ae / n
        out[k, 3] = math.sqrt(m2 / n)


@njit(**_JIT)
def copy_lane(src_p, src_b, dst_p, dst_b, lane, nk):
    """Copy one lane's parameters and momentum buffer between flat ``[P, K]`` arrays."""
    for t in range(lane, src_p.shape[0], nk):
        dst_p[t] = src_p[t]
        dst_b[t] = src_b[t]


@njit(**_JIT)
def _put_back(params, buf, live, keep_p, keep_b, nk):
    """Copy the frozen lanes back from their kept copy; returns the number of live lanes."""
    alive = 0
    for k in range(nk):
        if live[k] != 0:
            alive += 1
        else:
            copy_lane(keep_p, keep_b, params, buf, k, nk)
    return alive


@njit(**_JIT)
def _freeze_bad(params, buf, losses, s, live, bad, keep_p, keep_b, nk):
    """A live lane whose step ``s`` loss is not finite is kept as it was before that step."""
    for k in range(nk):
        if live[k] != 0 and not math.isfinite(losses[s, k]):
            live[k] = 0
            bad[k] = s
            copy_lane(params, buf, keep_p, keep_b, k, nk)


@njit(inline="always", **_JIT)  # a call with eleven arrays costs exp01 a fifth of its step
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


@njit(**_JIT)
def run_steps(
    params, buf, grad, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef, counts,
    xs, ys, start, stop, batch, lr, momentum, two_l2, clip, eps, use_norm, losses, ratios, live, bad,
    keep_p, keep_b, nk,
):
    """Train steps ``start..stop-1`` of every lane; each step averages over its batch.

    ``xs[j, k]`` is lane k's j-th sample of the epoch. Per step, ``losses[s, k]`` and
    ``ratios[s, k]`` get lane k's MSE and mean |y_hat / y|. A live lane whose loss is not
    finite gets ``bad[k] = s`` and ``live[k] = 0``, and its parameters and buffer from
    before that step are kept in ``keep_p``/``keep_b``. The hot loops update every lane
    alike (no per-lane branch); frozen lanes are put back from the kept copy at the end
    of the call, so they never change as seen from outside. ``nk`` (the lane count) is
    compiled in as a constant: the vectors' width. Returns the number of lanes still live.
    """
    literally(nk)
    if batch == 1 and two_l2 == 0 and not clip > 0 and not use_norm and sizes.shape[0] > 2 and sizes[0] == 1:
        _run_plain(params, buf, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef,
                   xs, ys, start, stop, lr, momentum, losses, ratios, live, bad, keep_p, keep_b, nk)
        return _put_back(params, buf, live, keep_p, keep_b, nk)
    if batch == 1:
        _run_single(params, buf, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef,
                    xs, ys, start, stop, lr, momentum, two_l2, clip, eps, use_norm, losses, ratios, live, bad,
                    keep_p, keep_b, nk)
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
        _apply_update(params, grad, buf, coef, lr, momentum, two_l2, clip, eps, nk)
    return _put_back(params, buf, live, keep_p, keep_b, nk)


@njit(**_JIT)
def _run_single(params, buf, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef,
                xs, ys, start, stop, lr, momentum, two_l2, clip, eps, use_norm, losses, ratios, live, bad,
                keep_p, keep_b, nk):
    """Steps of one sample each, two passes over the parameters per step.

    A step's backward pass (:func:`_backward_deltas`) only reads the weights; its update
    is applied by the next step's forward pass (:func:`_update_forward`), or at the end
    of the call, so ``params`` and ``buf`` are up to date whenever this returns. The two
    activation buffers alternate: the update needs the previous sample's activations
    while the forward pass writes the new ones. The losses, deltas and clip factors are
    those of :func:`run_steps`' batch path with a batch of one, to the bit.
    """
    last = (a_off[a_off.shape[0] - 1] - np.uint64(1)) * np.uint64(nk)  # the output unit's row
    clip_on = clip > 0
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


@njit(**_JIT)
def _plain_update(params, buf, t, g, lr, momentum, nk):
    """Momentum SGD on the parameter vector at ``t`` with gradient ``g`` (no L2, no clip):
    :func:`_update_one`'s numbers for such presets; returns the new value."""
    b = momentum * load(buf, t, nk) + g
    store(buf, t, b)
    p = load(params, t, nk) - lr * b
    store(params, t, p)
    return p


@njit(**_JIT)
def _plain_low(params, buf, sizes, w_off, b_off, a_off, old, act, pre, dz, x, lr, momentum, nk):
    """For plain networks, one pass over layer 1 (the first hidden-to-hidden matrix, the
    largest) that does three things per row: the backward pass through its old weights
    (that row's delta), the update of layer 0 for that unit and its new activation for the
    next sample ``x``, then the row's update, added at once to the next sample's sums.

    :func:`_run_single` passes over such a matrix twice a step, once to read it for the
    deltas and once to update it; here a block of four rows is read for the deltas and is
    still in the L1 cache when it is updated, so the matrix and its momentum come from L2
    once a step. Every sum runs in :func:`_backward_deltas`' and :func:`_forward`'s order
    and every update is :func:`_update_one`'s, so the numbers are those of
    :func:`_run_single` to the bit. ``old`` holds the step's activations, ``act`` gets the
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


@njit(**_JIT)
def _plain_unit(params, buf, pre, act, tw, tb, ta, d, x_old, x_new, lr, momentum, nk):
    """Layer 0's unit at row ``ta``: update its bias (gradient ``d``) and its one weight
    (gradient ``x_old * d``), then its pre-activation and activation for ``x_new``."""
    z = _plain_update(params, buf, tb, d, lr, momentum, nk)
    z = z + _plain_update(params, buf, tw, x_old * d, lr, momentum, nk) * x_new
    store(pre, ta, z)
    h = relu(z)
    store(act, ta, h)
    return h


@njit(**_JIT)
def _run_plain(params, buf, sizes, w_off, b_off, a_off, fsz, act, act2, pre, cen, var, dz, coef,
               xs, ys, start, stop, lr, momentum, losses, ratios, live, bad, keep_p, keep_b, nk):
    """:func:`_run_single` for plain networks (no normalisation, L2 or clipping; one input
    and at least two layers): the same steps and numbers, with layers 0 and 1 trained by
    :func:`_plain_low`'s single pass instead of a backward pass and an update pass.

    A step: its loss, the deltas of layers 2 and up (:func:`_backward_deltas`), then
    layers 0 and 1 (:func:`_plain_low`) and layers 2 and up (:func:`_update_forward`)
    updated and run on the next sample. The call's last step runs them on a sample it
    does not use (its own), so the update is always applied before the call returns.
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


@njit(**_JIT)
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


@njit(**_JIT)
def predict(params, sizes, w_off, b_off, a_off, fsz, act, pre, cen, var, xs, use_norm, out, nk):
    """Every lane's y_hat for every sample: ``out[j, k]`` for ``xs[j, k]`` (the test metrics
    are then a few NumPy reductions). Four samples at a time (:func:`_forward4`), the same
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
