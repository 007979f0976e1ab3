"""The GPU group engine's on-chip training kernel: one block of one warp per lane, the lane's
weights and momentum in shared memory for a whole launch.

:mod:`cuda_kernels`' training kernel gives each lane one thread and keeps its weights in the
thread's local memory, which lives in device memory behind the caches: at thousands of lanes
of exp08's shape (9 KB of weights and momentum a lane) every step streams them through L2 or
HBM, and ``ptxas`` gives that kernel 228 registers a thread (two blocks of 128 an SM), so at
4k lanes it occupies a quarter of an H200's SMs. Here a lane is a block of :data:`THREADS`
threads (one warp) and its state sits in the SM's shared memory from the launch's first step
to its last: thread ``t`` computes the outputs ``t, t + 32, ...`` of each layer (each reading
its weight column, conflict-free: rows are stored with an odd stride), the deltas of the
inputs ``t, t + 32, ...`` (each reading its weight row, conflict-free for the same reason),
and updates every 32nd weight. An SM holds as many lanes as its shared memory does (19
of exp08's, 9 of exp06's on an H100/H200: `benchmarks/gpu.py --ptxas`).

The numbers are the CPU multi-seed kernel's, in its order: each sum that a lane's step needs
whole (a normalised layer's mean and variance, their backward sums, the clip's squared
gradient norm) is summed by every thread over the values in shared memory in the CPU
kernel's order, so every thread holds the same value without a reduction tree; under Numba's
CUDA simulator (NumPy float32 arithmetic) a lane equals the CPU kernel's bit for bit, as
:mod:`cuda_kernels`' does. A GPU contracts ``a * b + c`` into fused multiply-adds: float32
rounding, not bits.

One sample a step only (batch size 1, every preset of the notes), and a lane's state must
fit a block's static shared memory (:data:`SHARED_BYTES`); :func:`fits` says whether a shape
does, and the engine takes :mod:`cuda_kernels`' kernel otherwise. Same arguments, same
divergence rule (a lane whose step loss is not finite keeps its state from before that step,
``bad[k] = s``, ``live[k] = 0``). Imports ``numba.cuda``: only when a group goes to a GPU.
"""

from __future__ import annotations

import math
from functools import cache

from numba import cuda, float32

from fnn_tui.core.engines.cuda_kernels import norm_stats
from fnn_tui.core.engines.fused_engine import layout

THREADS = 32  # one warp a lane: its barriers are one warp's
SHARED_BYTES = 48 * 1024  # the static shared memory a block may have on every CUDA GPU


def shared_layout(sizes: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int]:
    """Per layer, the offset of its weights in the shared arrays, their row stride, the offset
    of its biases; and the arrays' length. A layer's weights are stored by input row, as the
    flat layout's, with an odd row stride (``nout | 1``): a warp reading a column (32 rows)
    or a row (32 columns) touches 32 different banks."""
    w_off, stride, b_off = [], [], []
    pos = 0
    for nin, nout in zip(sizes[:-1], sizes[1:]):
        w_off.append(pos)
        stride.append(nout | 1)
        pos += nin * (nout | 1)
        b_off.append(pos)
        pos += nout
    return tuple(w_off), tuple(stride), tuple(b_off), pos


def shared_bytes(sizes: tuple[int, ...]) -> int:
    """Bytes of shared memory one lane's block uses: weights, momentum, four activation rows,
    three rows of clip terms and the variances, float32."""
    *_, size = shared_layout(sizes)
    width, widest_in = sum(sizes), max(sizes[:-1])
    return 4 * (2 * size + 4 * width + 3 * widest_in + len(sizes) - 1)


def fits(sizes: tuple[int, ...], batch: int) -> bool:
    """Whether this kernel trains networks of layer ``sizes`` at ``batch`` samples a step."""
    return batch == 1 and shared_bytes(tuple(sizes)) <= SHARED_BYTES


@cache
def train_kernel(sizes: tuple[int, ...], use_norm: bool, threads: int = THREADS):
    """The training kernel for networks of layer ``sizes`` (one sample a step):
    ``train[lanes, threads](...)`` with :func:`cuda_kernels.kernels`' training arguments.
    ``threads`` per lane: a warp on a GPU; fewer make the simulator's tests fast and their
    layers wider than the block (thread ``t`` then computes outputs ``t, t + threads, ...``)."""
    if threads < 1:
        raise ValueError(f"threads: expected at least 1, found {threads}")
    sizes = tuple(int(s) for s in sizes)
    if not fits(sizes, 1):
        raise ValueError(f"a lane of shape {sizes} does not fit {SHARED_BYTES} bytes of shared memory")
    n_layers = len(sizes) - 1
    g_w, g_b, a_off = (tuple(int(v) for v in a) for a in layout(sizes))  # the flat (global) layout
    s_w, s_stride, s_b, s_size = shared_layout(sizes)
    width = a_off[-1]
    widest_in = max(sizes[:-1])
    sz = sizes
    zero, one, eps = float32(0.0), float32(1.0), float32(1e-6)
    n_var = max(1, n_layers - 1)
    layer_stats, backward_stats = norm_stats(sizes)

    @cuda.jit
    def train(params, buf, x_train, y_train, orders, row_of, start, stop, lr, momentum, two_l2, clip,
              live, bad, losses, ratios):
        k = cuda.blockIdx.x
        t = cuda.threadIdx.x
        if k >= params.shape[1] or live[k] == 0:
            return  # the whole block: no thread is left waiting at a barrier
        w = cuda.shared.array(s_size, float32)
        m = cuda.shared.array(s_size, float32)
        act = cuda.shared.array(width, float32)
        pre = cuda.shared.array(width, float32)
        cen = cuda.shared.array(width, float32)
        dz = cuda.shared.array(width, float32)
        t1 = cuda.shared.array(widest_in, float32)
        t2 = cuda.shared.array(widest_in, float32)
        t3 = cuda.shared.array(widest_in, float32)
        var = cuda.shared.array(n_var, float32)
        # the lane's weights and momentum in: the flat layout's weight q = i * nout + o
        for layer in range(n_layers):
            nin, nout = sz[layer], sz[layer + 1]
            for q in range(t, nin * nout, threads):
                i = q // nout
                dst = s_w[layer] + i * s_stride[layer] + (q - i * nout)
                w[dst] = params[g_w[layer] + q, k]
                m[dst] = buf[g_w[layer] + q, k]
            for o in range(t, nout, threads):
                w[s_b[layer] + o] = params[g_b[layer] + o, k]
                m[s_b[layer] + o] = buf[g_b[layer] + o, k]
        lr_k, mom_k, l2_k, clip_k = lr[k], momentum[k], two_l2[k], clip[k]
        clip_on = clip_k > zero
        order = orders[row_of[k]]
        x_next = zero
        y_next = zero
        if start < stop:
            x_next = x_train[k, order[start]]
            y_next = y_train[k, order[start]]
        cuda.syncthreads()
        for s in range(start, stop):
            x, y = x_next, y_next
            if s + 1 < stop:  # the next sample's load runs while this step computes
                j = order[s + 1]
                x_next = x_train[k, j]
                y_next = y_train[k, j]
            if t == 0:
                act[0] = x
            cuda.syncthreads()
            # -- forward: thread t computes outputs t, t + 32, ... of each layer
            for layer in range(n_layers):
                nin, nout = sz[layer], sz[layer + 1]
                wo, st, bo = s_w[layer], s_stride[layer], s_b[layer]
                ai, ao = a_off[layer], a_off[layer + 1]
                hidden = layer < n_layers - 1
                for o in range(t, nout, threads):
                    acc = w[bo + o]
                    for i in range(nin):
                        acc += w[wo + i * st + o] * act[ai + i]
                    pre[ao + o] = acc
                    if hidden and not use_norm:
                        act[ao + o] = acc if acc > zero else zero
                cuda.syncthreads()
                if hidden and use_norm:
                    # the layer's mean and unbiased variance, every thread in the CPU kernel's order
                    sm, v = layer_stats(pre, ao, nout, layer)
                    cuda.syncthreads()  # every thread has read pre before it is overwritten
                    if t == 0:
                        var[layer] = v
                    for o in range(t, nout, threads):
                        c = pre[ao + o] - sm
                        cen[ao + o] = c
                        z = c / v
                        pre[ao + o] = z
                        act[ao + o] = z if z > zero else zero
                    cuda.syncthreads()
            yhat = pre[width - 1]
            err = yhat - y
            loss = zero
            loss += err * err
            ratio = zero
            ratio += abs(yhat / y)
            if t == 0:
                losses[s, k] = loss
                ratios[s, k] = ratio
            if not math.isfinite(loss):  # every thread sees the same loss: the block leaves together
                if t == 0:
                    bad[k] = s
                    live[k] = 0
                break
            if t == 0:
                dz[width - 1] = err + err
            cuda.syncthreads()
            # -- backward: the deltas, and with clipping the squared norm of the step's gradient
            total = zero
            for layer in range(n_layers - 1, -1, -1):
                nin, nout = sz[layer], sz[layer + 1]
                wo, st, bo = s_w[layer], s_stride[layer], s_b[layer]
                ai, ao = a_off[layer], a_off[layer + 1]
                if not clip_on and layer == 0:
                    break  # the network's input needs no delta
                dd = zero
                if clip_on:
                    for o in range(nout):
                        d = dz[ao + o]
                        g = d + l2_k * w[bo + o]
                        total += g * g
                        dd += d * d
                for i in range(t, nin, threads):
                    sd = zero
                    if clip_on:
                        ww = zero
                        for o in range(nout):
                            wt = w[wo + i * st + o]
                            sd += wt * dz[ao + o]
                            ww += wt * wt
                        a = act[ai + i]
                        t1[i] = a * a * dd
                        t2[i] = (l2_k + l2_k) * (a * sd)
                        t3[i] = (l2_k * l2_k) * ww
                    else:
                        for o in range(nout):
                            sd += w[wo + i * st + o] * dz[ao + o]
                    if layer > 0:
                        dz[ai + i] = sd if pre[ai + i] > zero else zero  # through the ReLU
                cuda.syncthreads()
                if clip_on:
                    for i in range(nin):
                        total = total + t1[i] + t2[i] + t3[i]
                if layer == 0:
                    break
                if use_norm:
                    sm, ss, v = backward_stats(dz, cen, var, ai, nin, layer)
                    cuda.syncthreads()  # every thread has read dz before it is overwritten
                    for i in range(t, nin, threads):
                        dz[ai + i] = (dz[ai + i] - sm) / v - ss * cen[ai + i]
                cuda.syncthreads()  # the next layer reads these deltas and rewrites t1..t3
            c = one
            if clip_on:
                f = clip_k / (math.sqrt(total) + eps)
                if f < one:
                    c = f
            # -- update: SGD with momentum, thread t on every 32nd weight of each layer
            for layer in range(n_layers):
                nin, nout = sz[layer], sz[layer + 1]
                wo, st, bo = s_w[layer], s_stride[layer], s_b[layer]
                ai, ao = a_off[layer], a_off[layer + 1]
                for o in range(t, nout, threads):
                    p = bo + o
                    b = mom_k * m[p] + (dz[ao + o] + l2_k * w[p]) * c
                    m[p] = b
                    w[p] = w[p] - lr_k * b
                # (i, o) of weight q = i * nout + o, stepped by threads without a division a weight
                i = t // nout
                o = t - i * nout
                di = threads // nout
                do = threads - di * nout
                for _q in range(t, nin * nout, threads):
                    p = wo + i * st + o
                    b = mom_k * m[p] + (act[ai + i] * dz[ao + o] + l2_k * w[p]) * c
                    m[p] = b
                    w[p] = w[p] - lr_k * b
                    o += do
                    i += di
                    if o >= nout:
                        o -= nout
                        i += 1
            cuda.syncthreads()  # the next step's forward reads the new weights
        cuda.syncthreads()
        for layer in range(n_layers):
            nin, nout = sz[layer], sz[layer + 1]
            for q in range(t, nin * nout, threads):
                i = q // nout
                src = s_w[layer] + i * s_stride[layer] + (q - i * nout)
                params[g_w[layer] + q, k] = w[src]
                buf[g_w[layer] + q, k] = m[src]
            for o in range(t, nout, threads):
                params[g_b[layer] + o, k] = w[s_b[layer] + o]
                buf[g_b[layer] + o, k] = m[s_b[layer] + o]

    return train


__all__ = ["SHARED_BYTES", "THREADS", "fits", "shared_bytes", "shared_layout", "train_kernel"]
