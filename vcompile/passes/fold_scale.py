"""Fold constant scales and shifts into the conv or linear next to them.

    mul(conv(x, w, b), c) / div(..., c)   => conv(x, w * c, b * c)      c per output channel
    add(conv(x, w, b), c)                 => conv(x, w, b + c)
    mul(linear(x, w, b), c)               => linear(x, w * c, b * c)    c per output feature
    add(gemm(x, w, b), c)                 => gemm(x, w, b + c)
    conv(mul(x, s), w, b)                 => conv(x, w * s, b)          s per input channel
    conv(add(x, t), w, b)                 => conv(x, w, b + sum(w * t)) only with zero padding
    matmul(chain(mul(x, s)), w)           => matmul(chain(x), s * w)    chain: reshapes and
    matmul(chain(add(x, t)), w)           => add(matmul(chain(x), w), t @ w)  transposes that keep
                                                                          the channel axis whole
where linear(x, w, b) is a `linear` op, `matmul(x, w)`, `add(matmul(x, w), b)` or a
canonical `gemm`.
This folds layer scales (`x + gamma * f(x)`) and the scale-shifts that standalone
BatchNorms become. The conv or linear output must have no other user (output side).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcompile.ir.graph import Graph, Node, Value
from vcompile.passes.infra.dims import dim_product, is_static
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, Rule, rewrite, rule
from vcompile.passes.infra.registry import register
from vcompile.passes.infra.rewriter import GraphEditor
from vcompile.passes.infra.weights import CONV, CONV_T, conv_in_fold, f64, per_channel, scale_out

X = P.any("x")
CONV_NODE = P.op(CONV + CONV_T, X, P.const("w"), P.const("b"), name="conv")


def const_like(bb: RewriteBuilder, arr: np.ndarray, like: Value) -> Value:
    """`arr` as a constant of `like`'s dtype, named after it (a folded weight or bias)."""
    return bb.const(arr.astype(like.type.np_dtype), hint=like.hint or "c")


@rule(P.op(("mul", "div", "add"), CONV_NODE.one_use(), P.const("c"), commute=True))
def scale_after_conv(m: Match, bb: RewriteBuilder) -> Value | None:
    y, op = m["conv"], m.root.op
    if op == "div" and m.root.inputs[1] is not m["c"]:
        return None
    c = per_channel(m.array("c"), y.type.rank, 1, int(y.shape[1]))
    if c is None or m.root.outputs[0].type != y.type or (op == "div" and not np.all(c)):
        return None
    w, b = m.arrays("w", "b")
    if op == "add":
        new_w, new_b = f64(w), f64(b) + c
    else:
        c = 1.0 / c if op == "div" else c
        new_w, new_b = scale_out(m.node("conv"), w, c), f64(b) * c
    return bb.emit(m.node("conv").op, m["x"], const_like(bb, new_w, m["w"]), const_like(bb, new_b, m["b"]),
                   **m.node("conv").attrs)


@dataclass
class Linear:
    """`x @ w + b` found in the graph; w is (K, N) float64, b (N,) or None."""
    x: Value
    w: np.ndarray
    b: np.ndarray | None
    w_value: Value
    kind: str  # the op to emit: "gemm", "linear" or "matmul" (+ "add")


def linear_of(n: Node, ed: GraphEditor) -> Linear | None:
    if n.op == "add":
        mm = ed.producer.get(n.inputs[0])
        b = ed.consts.get(n.inputs[1])
        if mm is None or mm.op != "matmul" or b is None or ed.uses[n.inputs[0]] != 1:
            return None
        lin = linear_of(mm, ed)
        n_out = n.outputs[0].shape[-1]
        bv = per_channel(b, n.outputs[0].type.rank, -1, n_out) if isinstance(n_out, int) else None
        if lin is None or bv is None or n.outputs[0].type != mm.outputs[0].type:
            return None
        return Linear(lin.x, lin.w, bv, lin.w_value, "matmul")
    w = ed.consts.get(n.inputs[1]) if len(n.inputs) > 1 else None
    if w is None or w.ndim != 2:
        return None
    if n.op == "matmul" and n.inputs[0].type.rank >= 2:
        return Linear(n.inputs[0], f64(w), None, n.inputs[1], "matmul")
    if n.op == "linear":
        b = ed.consts.get(n.inputs[2]) if len(n.inputs) == 3 else None
        if len(n.inputs) == 3 and b is None:
            return None
        return Linear(n.inputs[0], f64(w), None if b is None else f64(b), n.inputs[1], "linear")
    if n.op == "gemm" and not n.attrs["trans_a"] and n.attrs["alpha"] == 1.0 and n.attrs["beta"] == 1.0:
        wk = f64(w.T if n.attrs["trans_b"] else w)
        b = None
        if len(n.inputs) == 3:
            c = ed.consts.get(n.inputs[2])
            b = None if c is None else per_channel(c, 2, -1, wk.shape[1])
            if b is None:
                return None
        return Linear(n.inputs[0], wk, b, n.inputs[1], "gemm")
    return None


def emit_linear(bb: RewriteBuilder, lin: Linear, w: np.ndarray, b: np.ndarray | None) -> Value:
    wv = const_like(bb, w, lin.w_value)
    bv = None if b is None else bb.const(b.astype(lin.w_value.type.np_dtype), hint="b")
    if lin.kind in ("gemm", "linear"):
        return bb.emit(lin.kind, lin.x, wv) if bv is None else bb.emit(lin.kind, lin.x, wv, bv)
    y = bb.emit("matmul", lin.x, wv)
    return y if bv is None else bb.emit("add", y, bv)


@rule(P.op(("mul", "div", "add"), P.op(("matmul", "add", "gemm", "linear"), any_inputs=True, name="lin")
           .one_use(), P.const("c"), commute=True))
def scale_after_linear(m: Match, bb: RewriteBuilder) -> Value | None:
    y, op = m["lin"], m.root.op
    if op == "div" and m.root.inputs[1] is not m["c"]:
        return None
    lin = linear_of(m.node("lin"), m.ed)
    if lin is None or m.root.outputs[0].type != y.type or (op == "add" and lin.kind == "matmul"):
        return None
    c = per_channel(m.array("c"), y.type.rank, -1, lin.w.shape[1])
    if c is None or (op == "div" and not np.all(c)):
        return None
    if op == "add":
        return emit_linear(bb, lin, lin.w, c if lin.b is None else lin.b + c)
    c = 1.0 / c if op == "div" else c
    return emit_linear(bb, lin, lin.w * c[None, :], None if lin.b is None else lin.b * c)


@rule(P.op(CONV, P.op(("mul", "add"), X, P.const("c"), name="s"), P.const("w"), P.const("b")))
def scale_before_conv(m: Match, bb: RewriteBuilder) -> Value | None:
    conv, x = m.root, m["x"]
    c = per_channel(m.array("c"), x.type.rank, 1, int(x.shape[1]))
    shift = m.node("s").op == "add"
    if c is None or m["s"].type != x.type or (shift and any(conv.attrs.ints("pads"))):
        return None
    w, b = m.arrays("w", "b")
    new_w, extra = conv_in_fold(w, conv.attrs.int("groups"), None if shift else c,
                                c if shift else None)
    return bb.emit(conv.op, x, const_like(bb, new_w, m["w"]), const_like(bb, f64(b) + extra, m["b"]),
                   **conv.attrs)


def _channel_axis_through(chain: list[Node], axis: int) -> int | None:
    """Where channel `axis` of the chain's input sits in its output, if kept whole."""
    for n in chain:
        src, dst = n.inputs[0].shape, n.outputs[0].shape
        if n.op == "transpose":
            axis = n.attrs.ints("perm").index(axis)
            continue
        # NOTE: symbols are opaque factors: a reshape keeps the axis whole when the dims
        # before it multiply to the same product on both sides, symbols included
        before = dim_product(src[:axis])
        hits = [i for i in range(len(dst))
                if dim_product(dst[:i]) == before and is_static(dst[i]) and dst[i] == src[axis]]
        if not hits:
            return None
        axis = hits[0]
    return axis


def _scale_chain(v: Value, ed: GraphEditor) -> tuple[Node, list[Node]] | None:
    """The mul/add by a constant that `v` is reached from through reshapes/transposes."""
    chain: list[Node] = []
    n = ed.producer.get(v)
    while n is not None and n.op in ("reshape", "transpose") and len(chain) < 8:
        chain.append(n)
        n = ed.producer.get(n.inputs[0])
    if n is None or n.op not in ("mul", "add") or n.inputs[1] not in ed.consts:
        return None
    return n, chain[::-1]


@rule(P.op(("matmul", "gemm", "linear"), P.any("a"), P.const("w"), any_inputs=True))
def scale_before_linear(m: Match, bb: RewriteBuilder) -> Value | None:
    lin = linear_of(m.root, m.ed)
    found = _scale_chain(m.root.inputs[0], m.ed)
    if lin is None or found is None:
        return None
    s, chain = found
    x = s.inputs[0]
    if s.outputs[0].type != x.type:
        return None
    best = None
    for axis in range(x.type.rank):  # the axis the constant varies along, if any
        c = per_channel(m.ed.consts[s.inputs[1]], x.type.rank, axis, x.shape[axis])
        if c is not None and _channel_axis_through(chain, axis) == m.root.inputs[0].type.rank - 1:
            best = c
            break
    if best is None or best.shape[0] != lin.w.shape[0]:
        return None
    for n in chain:
        x = bb.emit(n.op, x, **n.attrs)
    lin = Linear(x, lin.w, lin.b, lin.w_value, lin.kind)
    if s.op == "mul":
        return emit_linear(bb, lin, lin.w * best[:, None], lin.b)
    extra = best @ lin.w
    return emit_linear(bb, lin, lin.w, extra if lin.b is None else lin.b + extra)


RULES: list[Rule] = [scale_after_conv, scale_after_linear, scale_before_conv, scale_before_linear]


@register("fold-scale")
def fold_scale(g: Graph) -> Graph:
    return rewrite(g, RULES)
