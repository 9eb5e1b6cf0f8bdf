"""Emission rules for elementwise, linalg and data-movement ops.

    op(args) {attrs} => relax.op.* (or a te.compute through emit_te where Relax's
    semantics differ from the IR's numpy reference, e.g. round-half-to-even)

Shapes come from the node's inferred output types, so reshape/squeeze/unsqueeze/expand
never re-derive -1 or symbolic dims. Integer div truncates toward zero, integer pow
computes in int64: both as `interp` does.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from tvm import relax, te, tirx

from vcompile.codegen.emit.relax import TVM_DTYPE, Ctx, rule
from vcompile.ir.graph import Node

R = relax.op

_UNARY = {"neg": R.negative, "abs": R.abs, "relu": R.nn.relu, "sigmoid": R.sigmoid,
          "tanh": R.tanh, "erf": R.erf, "exp": R.exp, "log": R.log, "sqrt": R.sqrt,
          "rsqrt": R.rsqrt, "floor": R.floor, "ceil": R.ceil, "sin": R.sin, "cos": R.cos,
          "silu": R.nn.silu, "logical_not": R.logical_not}
_BINARY = {"add": R.add, "sub": R.subtract, "mul": R.multiply, "equal": R.equal,
           "less": R.less, "greater": R.greater, "less_equal": R.less_equal,
           "greater_equal": R.greater_equal, "logical_and": R.logical_and,
           "logical_or": R.logical_or}


def _dt(n: Node, i: int = 0) -> str:
    return n.inputs[i].type.dtype


_FLOATS = ("f16", "bf16", "f32", "f64")

# NaN: TVM's tir max/min lower to `a > b ? a : b`, which drops a NaN in `a`
# (max(NaN, 0) = 0: Relu(NaN) was 0, Clip(NaN) its lower bound). The selects below
# propagate a NaN from either operand, as numpy and onnxruntime do; a clamp by a constant
# costs the same one compare and select as max did.


def nan_max(x: Any, y: Any) -> Any:
    """max(x, y) that is NaN when x or y is (floats)."""
    return tirx.Select(tirx.isnan(y), y, tirx.Select(x < y, y, x))


def nan_min(x: Any, y: Any) -> Any:
    """min(x, y) that is NaN when x or y is (floats)."""
    return tirx.Select(tirx.isnan(y), y, tirx.Select(y < x, y, x))


def _clamp_te(x: te.Tensor, lo: float, hi: float, name: str) -> te.Tensor:
    def f(*i: Any) -> Any:
        v = x(*i)
        if lo != -np.inf:
            v = tirx.Select(v < tirx.const(lo, x.dtype), tirx.const(lo, x.dtype), v)
        if hi != np.inf:
            v = tirx.Select(v > tirx.const(hi, x.dtype), tirx.const(hi, x.dtype), v)
        return v
    return te.compute(x.shape, f, name=name)


@rule(*_UNARY)
def _unary(ctx: Ctx, n: Node, a: list) -> Any:
    if n.op == "relu" and _dt(n) not in ("f16", "f32", "f64"):
        return ctx.emit(R.maximum(a[0], ctx.const(0, _dt(n))))
    if n.op == "abs" and _dt(n)[0] in "ub":
        return a[0]
    if n.op == "relu":  # NaN stays NaN (R.nn.relu is max(x, 0))
        return ctx.emit_te(_clamp_te, a[0], 0.0, np.inf, "relu", primfunc_name_hint="relu")
    if n.op == "tanh" and _dt(n) in _FLOATS:  # tanh(-0.0) is -0.0 (TVM's expansion gives +0)
        return ctx.emit_te(lambda x: te.compute(x.shape, lambda *i: tirx.Select(
            x(*i) == tirx.const(0, x.dtype), x(*i), tirx.tanh(x(*i))), name="tanh"), a[0],
            primfunc_name_hint="tanh")
    return ctx.emit(_UNARY[n.op](a[0]))


@rule("identity")
def _identity(ctx: Ctx, n: Node, a: list) -> Any:
    return a[0]


@rule("reciprocal")
def _reciprocal(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit(R.divide(ctx.const(1, _dt(n)), a[0]))


@rule("round")
def _round(ctx: Ctx, n: Node, a: list) -> Any:
    # NOTE: tir.round rounds half away from zero; ONNX Round (and numpy) round half to even.
    return ctx.emit_te(lambda x: te.compute(x.shape, lambda *i: tirx.nearbyint(x(*i)), "round"), a[0])


@rule("gelu")
def _gelu(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit((R.nn.gelu_tanh if n.attrs["approximate"] == "tanh" else R.nn.gelu)(a[0]))


def _clamp(ctx: Ctx, x: Any, dt: str, lo: float, hi: float) -> Any:
    if dt[0] in "iub":  # integer bounds, saturated to the dtype's range (as interp)
        info = np.iinfo(TVM_DTYPE[dt])
        lo = info.min if lo == -np.inf else int(max(lo, info.min))
        hi = info.max if hi == np.inf else int(min(hi, info.max))
    if dt in _FLOATS:  # NaN stays NaN
        if lo == -np.inf and hi == np.inf:
            return x
        return ctx.emit_te(_clamp_te, x, lo, hi, "clip", primfunc_name_hint="clip")
    if lo != -np.inf:
        x = ctx.emit(R.maximum(x, ctx.const(lo, dt)))
    if hi != np.inf:
        x = ctx.emit(R.minimum(x, ctx.const(hi, dt)))
    return x


@rule("clip")
def _clip(ctx: Ctx, n: Node, a: list) -> Any:
    return _clamp(ctx, a[0], _dt(n), float(n.attrs["min"]), float(n.attrs["max"]))  # type: ignore[arg-type]


@rule("hard_sigmoid", "hard_swish")
def _hard(ctx: Ctx, n: Node, a: list) -> Any:
    dt = _dt(n)
    alpha, beta = (n.attrs["alpha"], n.attrs["beta"]) if n.op == "hard_sigmoid" else (1 / 6, 0.5)
    y = ctx.emit(R.add(R.multiply(a[0], ctx.const(alpha, dt)), ctx.const(beta, dt)))
    y = _clamp(ctx, y, dt, 0.0, 1.0)
    return ctx.emit(R.multiply(a[0], y)) if n.op == "hard_swish" else y


@rule("cast")
def _cast(ctx: Ctx, n: Node, a: list) -> Any:
    to = str(n.attrs["to"])
    if to == "bool":  # nonzero test, whatever the source type
        return ctx.emit(R.not_equal(a[0], ctx.const(0, _dt(n))))
    if _dt(n) == to:
        return a[0]
    return ctx.emit(R.astype(a[0], TVM_DTYPE[to]))


@rule(*_BINARY)
def _binary(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit(_BINARY[n.op](a[0], a[1]))


@rule("div")
def _div(ctx: Ctx, n: Node, a: list) -> Any:
    if _dt(n)[0] != "i":
        return ctx.emit(R.divide(a[0], a[1]))
    # NOTE: signed integer division truncates toward zero (C, ONNX), not floor.
    x, y = a
    q = ctx.emit(R.floor_divide(x, y))
    zero = ctx.const(0, _dt(n))
    fix = ctx.emit(R.logical_and(R.not_equal(R.floor_mod(x, y), zero),
                                 R.logical_xor(R.less(x, zero), R.less(y, zero))))
    return ctx.emit(R.add(q, R.astype(fix, TVM_DTYPE[_dt(n)])))


def _bcast(x: te.Tensor, y: te.Tensor) -> tuple[list, tuple]:
    """Broadcast shape of two tensors and index maps into each (dims may be symbolic)."""
    r = max(len(x.shape), len(y.shape))

    def one(d: Any) -> bool:
        return isinstance(d, tirx.IntImm) and int(d) == 1

    shape = []
    for k in range(r):
        dims = [t.shape[k - r + len(t.shape)] for t in (x, y) if k - r + len(t.shape) >= 0]
        big = [d for d in dims if not one(d)]
        shape.append(big[0] if big else dims[0])

    def index(t: te.Tensor) -> Any:
        off = r - len(t.shape)
        return lambda i: [0 if one(d) else i[k + off] for k, d in enumerate(t.shape)]
    return shape, (index(x), index(y))


@rule("mod")
def _mod(ctx: Ctx, n: Node, a: list) -> Any:
    if _dt(n)[0] not in "fb":
        return ctx.emit((R.mod if n.attrs["fmod"] else R.floor_mod)(a[0], a[1]))
    # NOTE: floats go through C fmod (exact; x for an infinite divisor); floor mod then
    # fixes the sign as numpy's npy_divmod does. x - floor(x/y)*y loses both properties.
    dt = _dt(n)
    x, y = (ctx.emit(R.astype(v, "float32")) for v in a) if dt in ("f16", "bf16") else a
    fn = _c_fmod if n.attrs["fmod"] else _floor_fmod
    r = ctx.emit_te(lambda p, q: _ewise2(p, q, lambda u, v: fn(u, v, str(p.dtype)), "mod"), x, y)
    return ctx.emit(R.astype(r, TVM_DTYPE[dt])) if dt in ("f16", "bf16") else r


def _c_fmod(x: Any, y: Any, dt: str) -> Any:
    return tirx.call_pure_extern(dt, "fmodf" if dt == "float32" else "fmod", x, y)


def _floor_fmod(x: Any, y: Any, dt: str) -> Any:
    m = _c_fmod(x, y, dt)
    zero = tirx.const(0, dt)
    differ = tirx.Or(tirx.And(m < zero, y > zero), tirx.And(m > zero, y < zero))
    fixed = tirx.Select(differ, m + y, m)
    signed_zero = tirx.Select(y < zero, tirx.const(-0.0, dt), zero)
    return tirx.Select(tirx.isnan(m), m, tirx.Select(m != zero, fixed, signed_zero))


def _ewise2(x: te.Tensor, y: te.Tensor, fn: Any, name: str) -> te.Tensor:
    shape, (ix, iy) = _bcast(x, y)
    return te.compute(shape, lambda *i: fn(x(*ix(i)), y(*iy(i))), name)


@rule("pow")
def _pow(ctx: Ctx, n: Node, a: list) -> Any:
    dt, edt = _dt(n, 0), _dt(n, 1)
    if dt[0] in "iu":
        # NOTE: computed in float64, exact while |result| < 2**53; numpy's int64 power
        # wraps on overflow where this saturates. A TIR square-and-multiply chain
        # crashed TVM 0.27's simplifier.
        x, y = (ctx.emit(R.astype(v, "float64")) for v in a)
        r = ctx.emit(R.astype(R.power(x, y), "int64"))
        return r if dt == "i64" else ctx.emit(R.astype(r, TVM_DTYPE[dt]))
    y = a[1] if edt == dt else ctx.emit(R.astype(a[1], TVM_DTYPE[dt]))
    return ctx.emit(R.power(a[0], y))


@rule("max", "min")
def _nary(ctx: Ctx, n: Node, a: list) -> Any:
    fn = R.maximum if n.op == "max" else R.minimum
    acc = a[0]
    for x in a[1:]:
        if _dt(n) in _FLOATS:  # NaN in any input gives NaN
            pick = nan_max if n.op == "max" else nan_min
            acc = ctx.emit_te(lambda p, q, pick=pick: _ewise2(p, q, pick, n.op), acc, x,
                              primfunc_name_hint=n.op)
        else:
            acc = ctx.emit(fn(acc, x))
    return acc


@rule("where")
def _where(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit(R.where(a[0], a[1], a[2]))


# ---- linalg -------------------------------------------------------------------------------

@rule("matmul")
def _matmul(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit(R.matmul(a[0], a[1]))


@rule("gemm")
def _gemm(ctx: Ctx, n: Node, a: list) -> Any:
    A = ctx.emit(R.permute_dims(a[0], [1, 0])) if n.attrs["trans_a"] else a[0]
    B = ctx.emit(R.permute_dims(a[1], [1, 0])) if n.attrs["trans_b"] else a[1]
    dt = _dt(n)
    y = ctx.emit(R.matmul(A, B))
    if n.attrs["alpha"] != 1.0:
        y = ctx.emit(R.multiply(ctx.const(n.attrs["alpha"], dt), y))
    if len(a) == 3:
        c = a[2] if n.attrs["beta"] == 1.0 else ctx.emit(R.multiply(ctx.const(n.attrs["beta"], dt), a[2]))
        y = ctx.emit(R.add(y, c))
    return y


@rule("linear")
def _linear(ctx: Ctx, n: Node, a: list) -> Any:
    y = ctx.emit(R.matmul(a[0], a[1]))
    return ctx.emit(R.add(y, a[2])) if len(a) == 3 else y


def _swap_last(ctx: Ctx, x: Any, rank: int) -> Any:
    return ctx.emit(R.permute_dims(x, [*range(rank - 2), rank - 1, rank - 2]))


@rule("attention")
def _attention(ctx: Ctx, n: Node, a: list) -> Any:
    rank, dt = n.inputs[0].type.rank, _dt(n)
    s = ctx.emit(R.matmul(a[0], _swap_last(ctx, a[1], rank)))
    s = ctx.emit(R.multiply(s, ctx.const(n.attrs["scale"], dt)))
    if len(a) == 4:
        s = ctx.emit(R.add(s, a[3]))
    return ctx.emit(R.matmul(ctx.emit(R.nn.softmax(s, -1)), a[2]))


@rule("einsum")
def _einsum(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit(R.einsum(a, str(n.attrs["equation"]).replace(" ", "")))


_REDUCE = {"reduce_sum": R.sum, "reduce_mean": R.mean, "reduce_max": R.max, "reduce_min": R.min,
           "reduce_prod": R.prod}


_IDENTITY = {"reduce_sum": 0, "reduce_mean": np.nan, "reduce_max": -np.inf, "reduce_min": np.inf,
             "reduce_prod": 1}


@rule(*_REDUCE)
def _reduce(ctx: Ctx, n: Node, a: list) -> Any:
    t = n.inputs[0].type
    axes = list(n.attrs["axes"]) or None  # type: ignore[arg-type]
    if t.rank == 0:
        return a[0]
    if t.is_static and t.size == 0:  # reducing nothing gives the reduction's identity
        return _filled(ctx, n, _IDENTITY[n.op])
    if n.op in ("reduce_max", "reduce_min") and t.dtype in _FLOATS:
        y = ctx.emit_te(nan_reduce, a[0], axes, bool(n.attrs["keepdims"]), n.op == "reduce_max",
                        primfunc_name_hint=n.op)
    else:
        x = ctx.emit(R.astype(a[0], "int8")) if t.dtype == "bool" else a[0]
        y = ctx.emit(_REDUCE[n.op](x, axes, bool(n.attrs["keepdims"])))
        y = ctx.emit(R.astype(y, "bool")) if t.dtype == "bool" else y
    reduced = range(t.rank) if axes is None else [ax % t.rank for ax in axes]
    if all(isinstance(t.shape[ax], int) for ax in reduced) or t.dtype == "bool":
        return y
    # A symbolic reduced dim may be 0 at run time; TIR runs a reduction's init in its first
    # iteration, so reducing nothing would return whatever the buffer held.
    return ctx.emit_te(_identity_if_empty, y, a[0], tuple(reduced), _IDENTITY[n.op],
                       primfunc_name_hint=n.op + "_or_identity")


def _identity_if_empty(y: te.Tensor, x: te.Tensor, reduced: tuple[int, ...], value: float
                       ) -> te.Tensor:
    dt = str(y.dtype)
    if dt.startswith(("int", "uint")):
        info = np.iinfo(dt)
        value = info.min if value == -np.inf else info.max if value == np.inf else value
    extent = functools.reduce(lambda p, ax: p * x.shape[ax], reduced, tirx.const(1, "int64"))
    return te.compute(y.shape, lambda *i: tirx.if_then_else(extent == 0, tirx.const(value, dt),
                                                            y(*i)), name="reduce_or_identity")


def nan_reducer(is_max: bool) -> Any:
    """A max (min) reducer whose identity is -inf (+inf), not the dtype's lowest finite
    value (a row of -inf reduced to -3.4e38), and whose result is NaN when any element is."""
    def combine(acc: Any, v: Any) -> Any:
        better = v > acc if is_max else v < acc
        return tirx.Select(tirx.Or(better, tirx.isnan(v)), v, acc)

    def identity(dt: Any) -> Any:
        return tirx.const(-np.inf if is_max else np.inf, dt)
    return te.comm_reducer(combine, identity, name="nan_max" if is_max else "nan_min")


def nan_reduce(x: te.Tensor, axes: list[int] | None, keepdims: bool, is_max: bool) -> te.Tensor:
    """reduce_max / reduce_min of a float tensor over `axes` (None: all) with `nan_reducer`."""
    rank = len(x.shape)
    red = sorted({int(k) % rank for k in axes}) if axes else list(range(rank))
    rk = {k: te.reduce_axis((0, x.shape[k]), name=f"r{k}") for k in red}
    shape = [1 if k in rk else x.shape[k] for k in range(rank)] if keepdims else \
        [x.shape[k] for k in range(rank) if k not in rk]
    reducer = nan_reducer(is_max)

    def body(*i: Any) -> Any:
        it = iter(i)
        idx = [rk[k] if k in rk else next(it) for k in range(rank)] if not keepdims else \
            [rk[k] if k in rk else i[k] for k in range(rank)]
        return reducer(x(*idx), axis=[rk[k] for k in red])
    return te.compute(shape, body, name="reduce_max" if is_max else "reduce_min")


def _filled(ctx: Ctx, n: Node, value: float) -> Any:
    dt = n.output.dtype
    if dt[0] in "iu":
        info = np.iinfo(TVM_DTYPE[dt])
        value = info.min if value == -np.inf else info.max if value == np.inf else value
    elif dt == "bool":
        value = value == np.inf or value == 1
    return ctx.emit(R.broadcast_to(ctx.const(value, dt), ctx.shape(n.output.shape)))


@rule("softmax", "log_softmax")
def _softmax(ctx: Ctx, n: Node, a: list) -> Any:
    fn = R.nn.softmax if n.op == "softmax" else R.nn.log_softmax
    return ctx.emit(fn(a[0], int(n.attrs["axis"])))  # type: ignore[arg-type]
