"""Emission rules for the math ops of `ir/ops/math.py`.

    tan ... atanh, isnan           => relax.op.* (libm's NaN and Inf)
    sign                           => relax.op.sign, NaN kept (TVM's gives 0 for NaN)
    bitwise_*                      => relax.op.bitwise_* (logical_* on bool)
    shift_left/right               => te.compute: 0 (or the sign) past the bit width
    cumsum/cumprod {reverse}       => relax.op.cumsum/cumprod between two flips
    hardmax                        => te: max (a NaN wins), then its first position
    bitcast {to}                   => topi.reinterpret (bool: a cast or != 0)

All follow the interpreter bit for bit on integers and onnxruntime's NaN rules on floats.
OpenCL: TVM calls the float functions tanf, asinf, ...; OpenCL C's are the overloaded
tan, asin, ..., so those lower to the plain names for opencl targets.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tvm import relax, te, tirx, topi

from vcompile.codegen.emit.relax import TVM_DTYPE, Ctx, rule
from vcompile.ir.graph import Node

R = relax.op

_SAME = {"tan": R.tan, "asin": R.asin, "acos": R.acos, "atan": R.atan, "sinh": R.sinh,
         "cosh": R.cosh, "asinh": R.asinh, "acosh": R.acosh, "atanh": R.atanh,
         "isnan": R.isnan}
_BITWISE = {"bitwise_and": (R.bitwise_and, R.logical_and),
            "bitwise_or": (R.bitwise_or, R.logical_or),
            "bitwise_xor": (R.bitwise_xor, R.not_equal)}


def _opencl_names() -> None:
    from tvm.tirx.op import register_intrin_lowering
    for name in ("tan", "asin", "acos", "atan", "asinh", "acosh", "atanh"):
        register_intrin_lowering(f"tirx.{name}", "opencl", level=99, f=lambda op, name=name:
                                 tirx.call_pure_extern(str(op.ty.dtype), name, op.args[0]))


_opencl_names()


def _is_float(dt: Any) -> bool:
    return str(dt).startswith(("float", "bfloat"))


@rule(*_SAME)
def _same(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit(_SAME[n.op](a[0]))


@rule("sign")
def _sign(ctx: Ctx, n: Node, a: list) -> Any:
    if n.inputs[0].type.dtype not in ("f16", "bf16", "f32", "f64"):
        return ctx.emit(R.sign(a[0]))

    def f(x: te.Tensor) -> te.Tensor:
        def body(*i: Any) -> Any:
            v = x(*i)
            one, zero = tirx.const(1, x.dtype), tirx.const(0, x.dtype)
            s = tirx.Select(v > zero, one, tirx.Select(v < zero, -one, zero))
            return tirx.Select(tirx.isnan(v), v, s)
        return te.compute(x.shape, body, name="sign")
    return ctx.emit_te(f, a[0], primfunc_name_hint="sign")


@rule(*_BITWISE)
def _bitwise(ctx: Ctx, n: Node, a: list) -> Any:
    ints, bools = _BITWISE[n.op]
    return ctx.emit((bools if n.inputs[0].type.dtype == "bool" else ints)(a[0], a[1]))


@rule("bitwise_not")
def _bitwise_not(ctx: Ctx, n: Node, a: list) -> Any:
    if n.inputs[0].type.dtype == "bool":
        return ctx.emit(R.logical_not(a[0]))
    return ctx.emit(R.bitwise_not(a[0]))


@rule("shift_left", "shift_right")
def _shift(ctx: Ctx, n: Node, a: list) -> Any:
    left = n.op == "shift_left"
    shape = ctx.shape(n.outputs[0].type.shape)
    dt = np.dtype(n.inputs[0].type.np_dtype)
    bits, signed = dt.itemsize * 8, dt.kind == "i"

    def f(x: te.Tensor, s: te.Tensor) -> te.Tensor:
        def at(t: te.Tensor, i: tuple) -> Any:  # numpy broadcasting, right-aligned
            off = len(i) - len(t.shape)
            return t(*[0 if int(getattr(d, "value", -1)) == 1 else i[off + k]
                       for k, d in enumerate(t.shape)])

        def body(*i: Any) -> Any:
            v, k = at(x, i), at(s, i)
            zero = tirx.const(0, x.dtype)
            big = k >= tirx.const(bits, x.dtype)
            if signed:
                big = tirx.Or(k < zero, big)
            safe = tirx.Select(big, zero, k)
            y = (v << safe) if left else (v >> safe)
            fill = zero
            if signed and not left:
                fill = tirx.Select(v < zero, tirx.const(-1, x.dtype), zero)
            return tirx.Select(big, fill, y)
        return te.compute(shape, body, name=n.op)
    return ctx.emit_te(f, a[0], a[1], primfunc_name_hint=n.op)


@rule("cumsum", "cumprod")
def _cumulative(ctx: Ctx, n: Node, a: list) -> Any:
    ax = int(n.attrs["axis"]) % max(n.inputs[0].type.rank, 1)  # type: ignore[arg-type]
    x = ctx.emit(R.flip(a[0], ax)) if n.attrs["reverse"] else a[0]
    scan = R.cumsum if n.op == "cumsum" else R.cumprod
    y = ctx.emit(scan(x, axis=ax, dtype=TVM_DTYPE[n.inputs[0].type.dtype],
                      exclusive=bool(n.attrs["exclusive"])))
    return ctx.emit(R.flip(y, ax)) if n.attrs["reverse"] else y


@rule("bitcast")
def _bitcast(ctx: Ctx, n: Node, a: list) -> Any:
    src, to = n.inputs[0].type.dtype, str(n.attrs["to"])
    if to == "bool":  # NOTE: as interp: a nonzero byte reads as True
        return ctx.emit(R.not_equal(a[0], ctx.const(0, src))) if src != "bool" else a[0]
    if src == "bool":  # bool is one byte holding 0 or 1
        return ctx.emit(R.astype(a[0], TVM_DTYPE[to]))
    return ctx.emit_te(topi.reinterpret, a[0], TVM_DTYPE[to], primfunc_name_hint="bitcast")


@rule("hardmax")
def _hardmax(ctx: Ctx, n: Node, a: list) -> Any:
    ax = int(n.attrs["axis"]) % n.inputs[0].type.rank  # type: ignore[arg-type]
    return ctx.emit_te(_hardmax_te, a[0], ax, primfunc_name_hint="hardmax")


def _hardmax_te(x: te.Tensor, ax: int) -> te.Tensor:
    """Plain max/min reductions only (the GPU schedules need a known reducer): whether a
    NaN is in the row, the max of the rest, then the first index that hits."""
    size, dt = x.shape[ax], x.dtype
    flt = _is_float(dt)
    lowest = tirx.const(-np.inf, dt) if flt else tirx.min_value(dt)

    def at(i: tuple, k: Any) -> Any:
        return x(*i[:ax], k, *i[ax:])
    out_shape = [d for j, d in enumerate(x.shape) if j != ax]
    r = te.reduce_axis((0, size), "k")
    m = te.compute(out_shape, lambda *i: te.max(
        tirx.Select(tirx.isnan(at(i, r)), lowest, at(i, r)) if flt else at(i, r), axis=r),
        name="hardmax_max")
    if flt:
        rn = te.reduce_axis((0, size), "kn")
        nan = te.compute(out_shape, lambda *i: te.max(tirx.Select(
            tirx.isnan(at(i, rn)), tirx.const(1, "int32"), tirx.const(0, "int32")), axis=rn),
            name="hardmax_has_nan")

    def hit(i: tuple, k: Any) -> Any:  # NOTE: a NaN is the maximum (numpy's argmax)
        v = at(i, k)
        return tirx.Select(nan(*i) > 0, tirx.isnan(v), v == m(*i)) if flt else v == m(*i)
    r2 = te.reduce_axis((0, size), "k2")
    idx = te.compute(out_shape, lambda *i: te.min(tirx.Select(
        hit(i, r2), tirx.Cast("int64", r2), tirx.Cast("int64", size)), axis=r2),
        name="hardmax_index")
    return te.compute(x.shape, lambda *i: tirx.Select(
        tirx.Cast("int64", i[ax]) == idx(*i[:ax], *i[ax + 1:]), tirx.const(1, dt),
        tirx.const(0, dt)), name="hardmax")
