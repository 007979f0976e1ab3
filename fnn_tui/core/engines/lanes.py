"""Explicit SIMD vectors for Numba: one value holds one number per lane (seed).

The multi-seed kernels (:mod:`multi_kernels`) keep the K lanes of every quantity next to
each other in memory. Written as scalar loops over the lanes, they depend on LLVM to
unroll each loop and pack it back into vector instructions (its SLP vectoriser); that
worked for some loops and not others (measured: the fused update-and-forward loop came out
as 2- and 4-wide pieces at K=16), and changed with the lane count. This module gives the
kernels a vector type instead: ``load(arr, i, nk)`` reads lanes ``arr[i : i + nk]`` as one
LLVM vector ``<nk x float>``, arithmetic on such values (``+ - * /``, with scalars
broadcast) is one LLVM vector instruction each, and ``store`` writes them back. LLVM then
only splits a vector into registers (a <16 x float> is one AVX-512 register, a
<32 x float> two), so every lane count and precision becomes vector code alike.

Each operation is the plain IEEE operation per lane, with no fast-math flags: no
contraction into fused multiply-adds and no reassociation, so the numbers are those of the
scalar code in the same order, whichever way the kernel was compiled or loaded from
Numba's cache.
"""

from __future__ import annotations

import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model


class Lanes(types.Type):
    """``count`` numbers of ``dtype`` held as one LLVM vector (a value, never stored in an array)."""

    def __init__(self, dtype: types.Float, count: int) -> None:
        self.dtype = dtype
        self.count = count
        super().__init__(name=f"Lanes({dtype}, {count})")


@register_model(Lanes)
class _LanesModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type) -> None:
        be_type = ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.count)
        super().__init__(dmm, fe_type, be_type)


def _count(nk) -> int | None:
    """The lane count from a literal integer argument (``literally`` in the caller)."""
    if isinstance(nk, types.IntegerLiteral):
        return nk.literal_value
    return None


def _lane_ptr(context, builder, arrty, arr, index, indexty, vecty):
    """A pointer to the vector that starts at ``arr[index]``."""
    ary = context.make_array(arrty)(context, builder, arr)
    i = context.cast(builder, index, indexty, types.intp)
    return builder.bitcast(builder.gep(ary.data, [i]), vecty.as_pointer())


@intrinsic
def load(typingctx, arr, index, nk):
    """Lanes ``arr[index : index + nk]`` as one vector (``nk`` a compile-time constant)."""
    count = _count(nk)
    if count is None or not isinstance(arr, types.Array) or not isinstance(index, types.Integer):
        return None
    lanes = Lanes(arr.dtype, count)

    def codegen(context, builder, sig, args):
        vecty = context.get_value_type(lanes)
        ptr = _lane_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], vecty)
        return builder.load(ptr, align=arr.dtype.bitwidth // 8)

    return lanes(arr, index, nk), codegen


@intrinsic
def store(typingctx, arr, index, value):
    """Write the vector ``value`` to ``arr[index : index + count]``."""
    if not isinstance(value, Lanes) or not isinstance(arr, types.Array) or arr.dtype != value.dtype:
        return None

    def codegen(context, builder, sig, args):
        vecty = context.get_value_type(value)
        ptr = _lane_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], vecty)
        builder.store(args[2], ptr, align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(arr, index, value), codegen


@intrinsic
def zeros(typingctx, arr, nk):
    """A vector of zeros in the precision of ``arr``."""
    count = _count(nk)
    if count is None or not isinstance(arr, types.Array):
        return None
    lanes = Lanes(arr.dtype, count)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(lanes), None)

    return lanes(arr, nk), codegen


@intrinsic
def ones(typingctx, arr, nk):
    """A vector of ones in the precision of ``arr``."""
    count = _count(nk)
    if count is None or not isinstance(arr, types.Array):
        return None
    lanes = Lanes(arr.dtype, count)

    def codegen(context, builder, sig, args):
        vecty = context.get_value_type(lanes)
        return ir.Constant(vecty, [ir.Constant(vecty.element, 1.0)] * count)

    return lanes(arr, nk), codegen


@intrinsic
def relu(typingctx, value):
    """``v if v > 0 else 0`` per lane (NaN gives 0, as the scalar select does)."""
    if not isinstance(value, Lanes):
        return None

    def codegen(context, builder, sig, args):
        zero = ir.Constant(args[0].type, None)
        return builder.select(builder.fcmp_ordered(">", args[0], zero), args[0], zero)

    return value(value), codegen


@intrinsic
def where_positive(typingctx, cond, value):
    """``value if cond > 0 else 0`` per lane (the ReLU's derivative as a select)."""
    if not isinstance(value, Lanes) or cond != value:
        return None

    def codegen(context, builder, sig, args):
        zero = ir.Constant(args[1].type, None)
        return builder.select(builder.fcmp_ordered(">", args[0], zero), args[1], zero)

    return value(cond, value), codegen


def _as_vector(context, builder, ty, val, lanes: Lanes):
    """``val`` as a vector of ``lanes``: itself, or a scalar cast and broadcast."""
    if isinstance(ty, Lanes):
        return val
    vecty = context.get_value_type(lanes)
    scalar = context.cast(builder, val, ty, lanes.dtype)
    one = builder.insert_element(ir.Constant(vecty, ir.Undefined), scalar, cgutils.int32_t(0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes.count), [0] * lanes.count)
    return builder.shuffle_vector(one, ir.Constant(vecty, ir.Undefined), mask)


def _binary(name: str):
    """An intrinsic for one IEEE operation (LLVM's ``name``) on vectors, a scalar side broadcast."""

    @intrinsic
    def op(typingctx, a, b):
        lanes = a if isinstance(a, Lanes) else b
        if not isinstance(lanes, Lanes):
            return None
        for side in (a, b):
            if isinstance(side, Lanes) and side != lanes:
                return None
            if not isinstance(side, Lanes | types.Float | types.Integer):
                return None

        def codegen(context, builder, sig, args):
            x = _as_vector(context, builder, sig.args[0], args[0], lanes)
            y = _as_vector(context, builder, sig.args[1], args[1], lanes)
            return getattr(builder, name)(x, y)

        return lanes(a, b), codegen

    return op


_add, _sub, _mul, _div = _binary("fadd"), _binary("fsub"), _binary("fmul"), _binary("fdiv")


def _is_lanes_op(a, b) -> bool:
    return isinstance(a, Lanes) or isinstance(b, Lanes)


@overload(operator.add)
def _ov_add(a, b):
    if _is_lanes_op(a, b):
        return lambda a, b: _add(a, b)
    return None


@overload(operator.sub)
def _ov_sub(a, b):
    if _is_lanes_op(a, b):
        return lambda a, b: _sub(a, b)
    return None


@overload(operator.mul)
def _ov_mul(a, b):
    if _is_lanes_op(a, b):
        return lambda a, b: _mul(a, b)
    return None


@overload(operator.truediv)
def _ov_div(a, b):
    if _is_lanes_op(a, b):
        return lambda a, b: _div(a, b)
    return None
