"""Emission rules that target the CPU schedules: packed weights and tiled kernels.

    conv2d(x, w const, b)   => te conv2d over packed weights (or depthwise_conv2d);
                               a 1x1 conv runs on x viewed as [N, C, 1, H*W]
    matmul(x, w const)      => te gemm over packed weights, leading dims folded into rows
    matmul(x, y)            => te gemm with y packed at run time (attention's Q.K^T, P.V)
    gemm(a, b const, c)     => te gemm over alpha * op(b), packed; + beta * c
    linear(x, w const, b)   => te gemm over packed w, leading dims folded into rows; + b
    attention(q, k, v, b?)  => te attention (kernels.attention), batch dims folded; a
                               constant bias broadcast at compile time
    erf, gelu, exp, sigmoid, silu, softmax => topi.fast_erf / fast_exp (vectorizable)

A rule returns None when it does not apply (a non-float32 or dynamic shape, a weight
that is not a constant, a grouped conv whose groups do not fill a vector): the generic
rule in `emit.basic`/`emit.nn` then emits the node. These rules run only when the build
has CPU tiles (`Ctx.tiles`, from `schedules.tiles.cpu_tiles`); their kernels are in
`kernels`, and their block names are what `schedules` claims.
"""
from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import Any

import numpy as np
from tvm import relax, te, tirx, topi

from vcompile.codegen.emit import kernels
from vcompile.codegen.emit.common import attr_ints, const_value
from vcompile.codegen.emit.relax import TILED, Ctx, Emitted, np_const
from vcompile.ir.graph import Node

R = relax.op
TiledRule = Callable[[Ctx, Node, list[relax.Expr]], Emitted | None]


def tiled(*ops: str) -> Callable[[TiledRule], TiledRule]:
    def deco(fn: TiledRule) -> TiledRule:
        for op in ops:
            if op in TILED:
                raise ValueError(f"tiled rule for {op!r} registered twice")
            TILED[op] = fn
        return fn
    return deco


def _f32_static(n: Node) -> bool:
    return all(v.dtype == "f32" and v.type.is_static for v in (*n.inputs, *n.outputs))


@tiled("conv2d")
def _conv2d(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    w = const_value(a[1])
    if w is None or not _f32_static(n) or ctx.tiles is None:
        return None
    t = ctx.tiles
    o, cg, kh, kw = w.shape
    c, groups = int(n.inputs[0].shape[1]), int(n.attrs["groups"])  # type: ignore[arg-type]
    ow = int(n.output.shape[3])
    s, p, d = attr_ints(n, "strides"), attr_ints(n, "pads"), attr_ints(n, "dilations")
    if groups == c == o and cg == 1:
        wt = kernels.row_tile(ow, 2 * t.lanes)
        return ctx.emit_te(kernels.depthwise_conv2d, a[0], np_const(w.reshape(o, kh, kw)), a[2],
                           s, p, d, wt, primfunc_name_hint="depthwise_conv2d")
    ocg = o // groups
    ob = next((b for b in (t.block, t.lanes, t.lanes // 2) if b >= 4 and (groups == 1 or ocg % b == 0)),
              None)
    if ob is None:
        return None
    wp = np_const(kernels.pack_conv_weight(w, ob))
    x, shape = a[0], n.output.shape
    if kh == kw == 1 and s == [1, 1] and not any(p) and int(n.inputs[0].shape[3]) < t.rows:
        # a pointwise conv is a GEMM over all pixels: on maps narrower than a row tile
        # (7x7), one row of H*W gives full tiles. Wider maps keep their rows: the
        # reshapes would be copies inside a fused kernel.
        nb, _, h, wd = (int(v) for v in n.inputs[0].shape)
        x = ctx.emit(R.reshape(x, [nb, c, 1, h * wd]))
        ow = h * wd
    y = ctx.emit_te(kernels.conv2d, x, wp, a[2], o, s, p, d, groups,
                    kernels.row_tile(ow, t.rows), primfunc_name_hint="conv2d")
    return y if x is a[0] else ctx.emit(R.reshape(y, ctx.shape(shape)))


def _dense(ctx: Ctx, x: relax.Expr, w: np.ndarray, out: Node) -> relax.Expr:
    """x [..., K] @ w [K, N] (a constant, packed here, once) as the tiled gemm over all
    leading dims folded into rows; reshaped to `out`'s output shape."""
    k, nn = w.shape
    rows = prod(int(d) for d in out.output.shape[:-1])
    bp = np_const(kernels.pack_gemm_weight(np.ascontiguousarray(w, np.float32), ctx.tiles.block)[None])
    y = ctx.emit_te(kernels.gemm, ctx.reshape(x, [1, rows, k]), bp, nn,
                    kernels.row_tile(rows, ctx.tiles.rows), primfunc_name_hint="dense")
    return ctx.reshape(y, ctx.shape(out.output.shape))


@tiled("matmul")
def _matmul(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    ta, tb = n.inputs[0].type, n.inputs[1].type
    if ctx.tiles is None or not _f32_static(n) or ta.rank < 2 or tb.rank < 2:
        return None
    t = ctx.tiles
    k, nn = int(ta.shape[-1]), int(tb.shape[-1])
    w = const_value(a[1])
    if w is not None and prod(tb.shape[:-2]) == 1:
        return _dense(ctx, a[0], w.reshape(k, nn), n)
    if ta.shape[:-2] != tb.shape[:-2]:
        return None  # broadcasting batch dims: the generic rule
    bt, m = prod(int(d) for d in ta.shape[:-2]), int(ta.shape[-2])
    x = ctx.reshape(a[0], [bt, m, k])
    y = ctx.reshape(a[1], [bt, k, nn])

    def bmm(x: Any, y: Any) -> Any:
        return kernels.gemm(x, kernels.pack_b(y, t.block), nn, kernels.row_tile(m, t.rows))
    out = ctx.emit_te(bmm, x, y, primfunc_name_hint="batch_matmul")
    return ctx.reshape(out, ctx.shape(n.output.shape))


@tiled("gemm")
def _gemm(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    w = const_value(a[1])
    if w is None or ctx.tiles is None or not _f32_static(n):
        return None
    at = n.attrs
    x = ctx.emit(R.permute_dims(a[0], [1, 0])) if at["trans_a"] else a[0]
    b = (w.T if at["trans_b"] else w) * np.float32(at["alpha"])  # type: ignore[operator]
    y = _dense(ctx, x, b, n)
    if len(a) == 3:
        c = a[2] if at["beta"] == 1.0 else ctx.emit(R.multiply(ctx.const(at["beta"], "f32"), a[2]))
        y = ctx.emit(R.add(y, c))
    return y


# ---- transcendental functions -------------------------------------------------------------
# TVM lowers tir.erf to one scalar libm call per element: GELU (erf form) took 70% of
# convnext_atto's time. topi.fast_erf is a rational approximation in plain arithmetic,
# so it vectorizes; its error is a few float32 ulps.

def _f32_unary(n: Node) -> bool:
    return n.inputs[0].dtype == "f32"


def _fast_erf(x: Any) -> Any:
    """topi.fast_erf, NaN kept (its clamp to [-4, 4] turned NaN into 1)."""
    e = topi.fast_erf(x)
    return te.compute(x.shape, lambda *i: tirx.Select(tirx.isnan(x(*i)), x(*i), e(*i)), name="erf")


@tiled("erf")
def _erf(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    return ctx.emit_te(_fast_erf, a[0], primfunc_name_hint="erf") if _f32_unary(n) else None


@tiled("gelu")
def _gelu(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    if not _f32_unary(n) or n.attrs["approximate"] == "tanh":
        return None

    def gelu(x: Any) -> Any:
        e = _fast_erf(topi.multiply(x, tirx.const(0.7071067811865476, "float32")))
        return te.compute(x.shape, lambda *i: x(*i) * tirx.const(0.5, "float32") * (
            tirx.const(1.0, "float32") + e(*i)), name="gelu")
    return ctx.emit_te(gelu, a[0], primfunc_name_hint="gelu")


# exp has the same problem (one expf call per element): sigmoid, SiLU and softmax use
# topi.fast_exp (range reduction + polynomial, relative error ~1e-7).

@tiled("exp")
def _exp(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    return ctx.emit_te(topi.fast_exp, a[0], primfunc_name_hint="exp") if _f32_unary(n) else None


def _sigmoid_te(x: Any) -> Any:
    e = topi.fast_exp(topi.negative(x))
    one = tirx.const(1.0, "float32")
    return te.compute(x.shape, lambda *i: one / (one + e(*i)), name="sigmoid")


@tiled("sigmoid")
def _sigmoid(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    return ctx.emit_te(_sigmoid_te, a[0], primfunc_name_hint="sigmoid") if _f32_unary(n) else None


@tiled("silu")
def _silu(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    if not _f32_unary(n):
        return None

    def silu(x: Any) -> Any:
        s = _sigmoid_te(x)
        return te.compute(x.shape, lambda *i: x(*i) * s(*i), name="silu")
    return ctx.emit_te(silu, a[0], primfunc_name_hint="silu")


@tiled("softmax")
def _softmax(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    t = n.inputs[0].type
    if not _f32_unary(n) or not t.is_static or t.size == 0:
        return None
    axis = int(n.attrs["axis"]) % t.rank  # type: ignore[arg-type]

    def softmax(x: Any) -> Any:
        m = topi.max(x, axis=axis, keepdims=True)
        e = topi.fast_exp(topi.subtract(x, m))
        s = topi.sum(e, axis=axis, keepdims=True)
        return topi.divide(e, s)
    return ctx.emit_te(softmax, a[0], primfunc_name_hint="softmax")


@tiled("depthwise_conv2d_nhwc")
def _depthwise_nhwc(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    w = const_value(a[1])
    t = ctx.tiles
    if w is None or not _f32_static(n) or t is None or int(n.inputs[0].shape[3]) % t.lanes:
        return None
    c, _, kh, kw = w.shape
    s, p, d = attr_ints(n, "strides"), attr_ints(n, "pads"), attr_ints(n, "dilations")
    wt = kernels.row_tile(int(n.output.shape[2]), t.rows)
    w_hwc = np_const(np.ascontiguousarray(w.reshape(c, kh, kw).transpose(1, 2, 0)))
    return ctx.emit_te(kernels.depthwise_conv2d_nhwc, a[0], w_hwc, a[2], s, p, d, wt,
                       primfunc_name_hint="depthwise_conv2d_nhwc")


@tiled("linear")
def _linear(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    w = const_value(a[1])
    if w is None or ctx.tiles is None or not _f32_static(n):
        return None
    y = _dense(ctx, a[0], w, n)
    return ctx.emit(R.add(y, a[2])) if len(a) == 3 else y


@tiled("attention")
def _attention(ctx: Ctx, n: Node, a: list) -> Emitted | None:
    """Batch dims fold into one group axis; a bias is broadcast to [G|1, N, M] (at
    compile time when it is a constant)."""
    q, k, v = (x.type for x in n.inputs[:3])
    t = ctx.tiles
    if t is None or not _f32_static(n) or int(v.shape[-1]) % t.lanes:
        return None
    g = prod(int(d) for d in q.shape[:-2])
    nq, m = int(q.shape[-2]), int(k.shape[-2])
    args = [ctx.reshape(x, [g, *(int(s) for s in ty.shape[-2:])])
            for x, ty in zip(a[:3], (q, k, v), strict=True)]
    bias = None
    if len(a) == 4:
        bt, full = n.inputs[3].type, q.shape[:-1] + (m,)
        lead = (1,) * (len(full) - bt.rank) + tuple(int(s) for s in bt.shape)
        gb = 1 if all(s == 1 for s in lead[:-2]) else g
        shape = [gb, nq, m]
        c = const_value(a[3])
        if c is not None:
            full_b = np.broadcast_to(c.reshape(lead), (*(lead[:-2] if gb == 1 else full[:-2]), nq, m))
            bias = np_const(np.ascontiguousarray(full_b, np.float32).reshape(shape))
        else:
            bx = ctx.emit(R.broadcast_to(a[3], [*(lead[:-2] if gb == 1 else full[:-2]), nq, m]))
            bias = ctx.emit(R.reshape(bx, shape))
    rt = kernels.row_tile(nq, t.rows)
    scale = float(n.attrs["scale"])  # type: ignore[arg-type]

    def attn(q: Any, k: Any, v: Any, *b: Any) -> Any:
        return kernels.attention(q, k, v, b[0] if b else None, scale, rt, t.lanes)
    y = ctx.emit_te(attn, *args, *([bias] if bias is not None else []),
                    primfunc_name_hint="attention")
    return ctx.reshape(y, ctx.shape(n.output.shape))
