"""Emission rules for the integer-only ops of `ir/ops/integer.py`, bit-exact with their evals.

    requantize, qadd, qmul, igelu              => one te.compute each, int64 inside
    shiftmax, ilayernorm                       => row reductions + elementwise, int64 inside

Every rule follows the numpy eval step by step in int64 (shifts arithmetic, `//` floor
division; on vector CPUs the two per-element divisions go through an exact f64 floor,
see `floordiv`). `isqrt` is integer Newton iteration from a power of two above the root.
The contractions (qconv2d, qlinear, qmatmul) are in `emit.int_linalg`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tvm import te, tirx

from vcompile.codegen.emit.common import attr_int, static_shape
from vcompile.codegen.emit.relax import TVM_DTYPE, Ctx, rule
from vcompile.ir.graph import Node
from vcompile.ir.ops.integer import exp2_poly
from vcompile.ir.ops.ranges import int_range
from vcompile.ir.ops.windows import layer_span

I32, I64 = "int32", "int64"


def c64(v: int) -> Any:
    return tirx.const(int(v), I64)


def i64(v: Any) -> Any:
    return v.astype(I64) if v.dtype != I64 else v


def rshift_round(v: Any, s: Any) -> Any:
    """(v + 2^(s-1)) >> s, v for s == 0, on int64 (`s` an int or an int64 PrimExpr)."""
    if isinstance(s, int):
        return v if s == 0 else (v + c64(1 << (s - 1))) >> c64(s)
    half = tirx.Select(s > c64(0), c64(1) << tirx.max(s - c64(1), c64(0)), c64(0))
    return (v + half) >> s


def exp2_neg(u: Any, f: int) -> Any:
    """2^-(u / 2^f) in Q(f) for int64 u >= 0 (the eval's quadratic and shifts)."""
    a, b, c = exp2_poly(f)
    q = tirx.min(u >> c64(f), c64(62))
    fr = u & c64((1 << f) - 1)
    p = c64(a) + ((c64(b) * fr) >> c64(f)) + ((c64(c) * ((fr * fr) >> c64(f))) >> c64(f))
    return p >> q


def isqrt(v: te.Tensor) -> te.Tensor:
    """floor(sqrt(v)) elementwise for int64 v >= 0 by integer Newton steps
    x <- min(x, (x + v // x) >> 1).

    The start 2^ceil((b+1)/2) (b = floor(log2 v), found by six shift tests) lies in
    [sqrt(v), 2 sqrt(v)]; from there the error squares each step and 6 steps reach the
    floor for every v < 2^63 (at the floor the step gives >= x, so x stays). Each step is
    a block of its own, kept out of inlining: an expression that uses x three times per
    step would grow 3^6-fold inlined (and TVM's simplifier stalls on the Let form).
    """
    from vcompile.codegen.emit.kernels import KEEP
    shape, keep = list(v.shape), {KEEP: 1}

    def step(fn: Callable[..., Any], name: str) -> te.Tensor:
        return te.compute(shape, lambda *k: fn(tuple(k)), name=name, attrs=keep)
    nb = step(lambda k: v[k] * 0, "isqrt_bits")
    for s in (32, 16, 8, 4, 2, 1):
        nb = step(lambda k, nb=nb, s=s: tirx.Select((v[k] >> (nb[k] + c64(s))) > c64(0),
                                                      nb[k] + c64(s), nb[k]), "isqrt_bits")
    x = step(lambda k: c64(1) << ((nb[k] + c64(2)) >> c64(1)), "isqrt_start")
    for _ in range(6):
        x = step(lambda k, x=x: tirx.min(x[k], (x[k] + tirx.floordiv(v[k], tirx.max(x[k], c64(1))))
                                          >> c64(1)), "isqrt_newton")
    return x


def floordiv(a: Any, b: Any, via_f64: bool) -> Any:
    """floor(a / b) for int64 a, b > 0 with |a| < 2^53.

    `via_f64`: as floor(f64(a) / f64(b)), exact under that bound (a correctly rounded
    quotient is never rounded onto the next integer: that is >= 1/b away, more than half
    an ulp of a/b when |a| < 2^53). x86 has no vector integer division; LLVM turns an
    int64 `//` into one scalar idiv per element (igelu ran 16x slower than gelu), while
    vdivpd is vectorized. Used on CPUs with vector units (`Ctx.tiles`); otherwise (and
    at -O0) the division stays integer, for targets without an FPU."""
    if not via_f64:
        return tirx.floordiv(a, b)
    return tirx.floor(a.astype("float64") / b.astype("float64")).astype(I64)


def saturate(v: Any, dtype: str, clip: Sequence[int] = ()) -> Any:
    lo, hi = int_range(dtype, tuple(int(c) for c in clip))
    return tirx.max(tirx.min(v, c64(hi)), c64(lo)).astype(TVM_DTYPE[dtype])


def _clip(n: Node) -> tuple[int, ...]:
    return tuple(int(c) for c in n.attrs.get("clip", ()))  # type: ignore[union-attr]


def _bcast(t: te.Tensor, rank: int) -> Callable[..., Any]:
    """Index function of `t` broadcast (numpy rules) to a result of rank `rank`."""
    shape = [int(d) for d in t.shape]
    lead = rank - len(shape)

    def at(*idx: Any) -> Any:
        sub = [0 if d == 1 else idx[lead + k] for k, d in enumerate(shape)]
        return t[tuple(sub)]
    return at


def _1d(ctx: Ctx, n: Node, a: list) -> list:
    """0-d arguments as [1] (a 0-d te tensor loads as an untyped call)."""
    from tvm import relax
    return [ctx.emit(relax.op.reshape(v, [1])) if t.type.rank == 0 else v
            for v, t in zip(a, n.inputs, strict=True)]


# ---- rescaling ----------------------------------------------------------------------------

@rule("requantize")
def _requantize(ctx: Ctx, n: Node, a: list) -> Any:
    rank, out = n.inputs[0].type.rank, static_shape(n)
    ax = attr_int(n, "axis") % max(rank, 1)
    zp, dt, clip = attr_int(n, "zero_point"), str(n.attrs["out_dtype"]), _clip(n)

    def per(t: te.Tensor, idx: Sequence[Any]) -> Any:
        return t[0 if int(t.shape[0]) == 1 else idx[ax]]

    def f(x: te.Tensor, m: te.Tensor, s: te.Tensor) -> te.Tensor:
        def body(*i: Any) -> Any:
            v = rshift_round(i64(x[tuple(i)]) * i64(per(m, i)), i64(per(s, i)))
            return saturate(v + c64(zp), dt, clip)
        return te.compute(out, body, name="requantize")
    return ctx.emit_te(f, *_1d(ctx, n, a), primfunc_name_hint="requantize")


@rule("qadd", "qmul")
def _qbinary(ctx: Ctx, n: Node, a: list) -> Any:
    out, rank = static_shape(n), n.output.type.rank
    za, zb, sh = attr_int(n, "a_zp"), attr_int(n, "b_zp"), attr_int(n, "shift")
    zp, dt, clip = attr_int(n, "zero_point"), str(n.attrs["out_dtype"]), _clip(n)

    def f(x: te.Tensor, y: te.Tensor) -> te.Tensor:
        px, py = _bcast(x, rank), _bcast(y, rank)

        def body(*i: Any) -> Any:
            p, q = i64(px(*i)) - c64(za), i64(py(*i)) - c64(zb)
            if n.op == "qadd":
                v = rshift_round(p * c64(attr_int(n, "a_mult")) + q * c64(attr_int(n, "b_mult")), sh)
            else:
                v = rshift_round(p * q * c64(attr_int(n, "mult")), sh)
            return saturate(v + c64(zp), dt, clip)
        return te.compute(out, body, name=n.op)
    return ctx.emit_te(f, *_1d(ctx, n, a), primfunc_name_hint=n.op)


# ---- nonlinearities -----------------------------------------------------------------------

@rule("igelu")
def _igelu(ctx: Ctx, n: Node, a: list) -> Any:
    f, zp, mult, sh = attr_int(n, "frac_bits"), attr_int(n, "x_zp"), attr_int(n, "mult"), attr_int(n, "shift")
    fast = ctx.tiles is not None

    def g(x: te.Tensor) -> te.Tensor:
        def body(*i: Any) -> Any:
            xd = i64(x[tuple(i)]) - c64(zp)
            z = rshift_round(xd * c64(mult), sh)
            e = exp2_neg(tirx.abs(z), f)
            sn = floordiv(e << c64(f), e + c64(1 << f), fast)  # e <= 2^f: below 2^32
            sig = tirx.Select(z >= c64(0), c64(1 << f) - sn, sn)
            return (xd * sig).astype(I32)  # NOTE: wraps like the eval's astype(int32)
        return te.compute(x.shape, body, name="igelu")
    return ctx.emit_te(g, a[0], primfunc_name_hint="igelu")


def _rows(shape: Sequence[int], ax: int, stop: int) -> tuple[list[int], Callable[..., Any]]:
    """The shape with [ax, stop) removed, and a map (kept idx, reduced idx) -> full idx."""
    kept = list(shape[:ax]) + list(shape[stop:])

    def full(k: Sequence[Any], r: Sequence[Any]) -> list[Any]:
        return [*k[:ax], *r, *k[ax:]]
    return kept, full


def _split(idx: Sequence[Any], ax: int, stop: int) -> tuple[list[Any], list[Any]]:
    return [*idx[:ax], *idx[stop:]], list(idx[ax:stop])


@rule("shiftmax")
def _shiftmax(ctx: Ctx, n: Node, a: list) -> Any:
    shape = [int(d) for d in n.inputs[0].shape]
    ax = attr_int(n, "axis") % len(shape)
    f, bits = attr_int(n, "frac_bits"), attr_int(n, "out_bits")
    mult, sh = attr_int(n, "mult"), attr_int(n, "shift")
    dt = str(n.attrs["out_dtype"])
    kept, full = _rows(shape, ax, ax + 1)

    def g(x: te.Tensor) -> te.Tensor:
        r1 = te.reduce_axis((0, shape[ax]), "r1")
        mx = te.compute(kept, lambda *k: te.max(i64(x[tuple(full(k, [r1]))]), axis=r1), name="shiftmax_max")

        def exp(*i: Any) -> Any:
            k, _ = _split(i, ax, ax + 1)
            d = tirx.max(i64(x[tuple(i)]) - mx[tuple(k)], c64(-(2 ** 31 - 1)))
            return exp2_neg(c64(0) - rshift_round(d * c64(mult), sh), f)
        e = te.compute(shape, exp, name="shiftmax_exp")
        r2 = te.reduce_axis((0, shape[ax]), "r2")
        sm = te.compute(kept, lambda *k: te.sum(e[tuple(full(k, [r2]))], axis=r2), name="shiftmax_sum")
        fac = te.compute(kept, lambda *k: tirx.floordiv(c64(1 << 30), sm[tuple(k)]), name="shiftmax_factor")

        def out(*i: Any) -> Any:
            k, _ = _split(i, ax, ax + 1)
            return saturate(rshift_round(e[tuple(i)] * fac[tuple(k)], 30 - bits), dt)
        return te.compute(shape, out, name="shiftmax")
    return ctx.emit_te(g, a[0], primfunc_name_hint="shiftmax")


@rule("ilayernorm")
def _ilayernorm(ctx: Ctx, n: Node, a: list) -> Any:
    t = n.inputs[0].type
    shape = [int(d) for d in t.shape]
    ax, stop = layer_span(t, n.attrs)
    c = math.prod(shape[ax:stop])
    f, zp, eps = attr_int(n, "frac_bits"), attr_int(n, "x_zp"), attr_int(n, "eps")
    kept, full = _rows(shape, ax, stop)
    span = shape[ax:stop]
    # |x - zp| < 2^16, so |D| < 2 * c * 2^16 and |D << f| below 2^(17 + f) * c
    fast = ctx.tiles is not None and c * 2 ** (17 + f) < 2 ** 53

    def param(p: te.Tensor, r: Sequence[Any]) -> Any:  # gamma/beta broadcast to the span
        return i64(_bcast(p, len(span))(*r))

    def g(x: te.Tensor, gamma: te.Tensor, *beta: te.Tensor) -> te.Tensor:
        def xd(*i: Any) -> Any:
            return i64(x[tuple(i)]) - c64(zp)
        rs = [te.reduce_axis((0, d), f"r{k}") for k, d in enumerate(span)]
        s1 = te.compute(kept, lambda *k: te.sum(xd(*full(k, rs)), axis=rs), name="ilayernorm_sum")

        def dev(*i: Any) -> Any:
            k, _ = _split(i, ax, stop)
            return c64(c) * xd(*i) - s1[tuple(k)]
        rq = [te.reduce_axis((0, d), f"q{k}") for k, d in enumerate(span)]
        s2 = te.compute(kept, lambda *k: te.sum(dev(*full(k, rq)) * dev(*full(k, rq)), axis=rq),
                        name="ilayernorm_sq")
        var = te.compute(kept, lambda *k: tirx.floordiv(s2[tuple(k)], c64(c)) + c64(eps),
                         name="ilayernorm_var")
        root = isqrt(var)
        r = te.compute(kept, lambda *k: tirx.max(root[tuple(k)], c64(1)), name="ilayernorm_root")

        def out(*i: Any) -> Any:
            k, sp = _split(i, ax, stop)
            y = floordiv(dev(*i) << c64(f), r[tuple(k)], fast) * param(gamma, sp)
            if beta:
                y = y + param(beta[0], sp)
            return saturate(y, "i32")
        return te.compute(shape, out, name="ilayernorm")
    return ctx.emit_te(g, *_1d(ctx, n, a), primfunc_name_hint="ilayernorm")
