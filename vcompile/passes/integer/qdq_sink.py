"""Move the QDQ boundary past pure layout ops, so that compute ops see dequantize_linear
inputs and feed quantize_linear directly (the first phase of `lower-integer`).

    layout(dequantize_linear(q, s, zp), consts...) => dequantize_linear(layout(q, consts...), s, zp)
    quantize_linear(layout(y), s, zp)              => layout(quantize_linear(y, s, zp))
    concat(dq(a, s, zp), dq(b, s, zp))             => dq(concat(a, b), s, zp)
    quantize_linear(concat(a, b), s, zp)           => concat(quantize_linear(a, s, zp), ...)
    split(dq(q, s, zp))                            => dq(split(q))...

Layout ops move elements without changing them (reshape, transpose, squeeze, unsqueeze,
slice, expand, tile, gather with constant indices, pad) or pick among them (max_pool2d,
reduce_max, reduce_min: they commute with a monotone map), so both sides are
bit-identical in the QDQ simulation. Sinking a dequantize through a constant pad needs a
pad value the quantized type holds exactly (its zero point for 0.0); hoisting a quantize
pads with the quantized pad value. A per-axis dequantize moves only where its axis lands
whole (transpose, squeeze, unsqueeze, a slice of other axes), its axis attr following;
elsewhere (reshape, a slice of that axis) it stays. On a constant (a weight) the layout
op is folded into the constant, so that the contraction still sees a constant weight.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vcompile.ir.graph import Attrs, Graph, Node, Value
from vcompile.ir.ops import OPS
from vcompile.ir.ops.ranges import int_range
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, rewrite, rule
from vcompile.passes.infra.registry import note
from vcompile.passes.infra.rewriter import GraphEditor
from vcompile.passes.integer.qparams import dequantized

LAYOUT = ("reshape", "transpose", "squeeze", "unsqueeze", "slice", "expand", "tile", "gather",
          "pad", "max_pool2d", "reduce_max", "reduce_min")


def _moved_attrs(n: Node, scale: float, zp: int, hoist: bool = False) -> dict[str, Any] | None:
    """The layout op's attrs on the integer side, None when it does not commute."""
    attrs: dict[str, Any] = dict(n.attrs)
    if n.op == "max_pool2d" and attrs.get("with_indices"):
        return None
    if n.op == "pad" and attrs["mode"] == "constant":
        v = n.attrs.float("value")
        if hoist:  # quantize_linear's own arithmetic: f32 division, round half to even
            attrs["value"] = float(np.rint(np.float32(v) / np.float32(scale)) + zp)
            return attrs
        q = v / scale + zp
        if q != round(q):  # the pad value must be a quantized value exactly
            return None
        attrs["value"] = float(round(q))
    return attrs


def _ok_range(dtype: str, v: float) -> bool:
    lo, hi = int_range(dtype)
    return lo <= v <= hi


def _dq(bb: RewriteBuilder, q: Value, src: Node, axis: int) -> Value:
    return bb.emit("dequantize_linear", q, src.inputs[1], src.inputs[2], axis=axis)


def _moved_axis(n: Node, a: int) -> int | None:
    """Where input dim `a` lands in the output of layout op `n`; None when it does not
    land whole (sliced, merged by a reshape) or the op is not one that keeps dims."""
    rank_in, rank_out = n.inputs[0].type.rank, n.outputs[0].type.rank
    if n.op == "transpose":
        return n.attrs.ints("perm").index(a)
    if n.op == "unsqueeze":
        added = {x % rank_out for x in n.attrs.ints("axes")}
        return [i for i in range(rank_out) if i not in added][a]
    if n.op == "squeeze":
        gone = {x % rank_in for x in n.attrs.ints("axes")}
        return None if a in gone else a - sum(1 for g in gone if g < a)
    if n.op == "slice":
        cut = {x % rank_in for x in n.attrs.ints("axes")}
        return None if a in cut else a
    return None


@rule(P.op(LAYOUT, any_inputs=True, name="op"))
def sink_dequantize(m: Match, bb: RewriteBuilder) -> Value | None:
    n = m.node("op")
    dq = dequantized(m, n.inputs[0], weight=True)
    if dq is None or any(m.const_of(v) is None for v in n.inputs[1:]):
        return None
    axis = dq.axis if dq.per_tensor else _moved_axis(n, dq.axis)
    if axis is None:
        return None
    attrs: dict[str, Any] | None = _moved_attrs(n, dq.s, dq.z) if dq.per_tensor else dict(n.attrs)
    if attrs is None or (n.op == "pad" and not _ok_range(dq.q.dtype, float(attrs.get("value", 0)))):
        return None
    src = m.ed.producer[n.inputs[0]]
    arr = m.const_of(dq.q)
    if arr is not None:  # a weight: fold the layout op into the constant
        (out,) = OPS[n.op].eval([arr, *(m.ed.consts[v] for v in n.inputs[1:])], Attrs(attrs))
        return _dq(bb, bb.const(out, hint=dq.q.hint), src, axis)
    return _dq(bb, bb.emit(n.op, dq.q, *n.inputs[1:], **attrs), src, axis)


@rule(P.op("quantize_linear", P.op(LAYOUT, any_inputs=True, name="op").one_use(), P.const(),
           P.const(), name="q"))
def hoist_quantize(m: Match, bb: RewriteBuilder) -> Value | None:
    n, qn = m.node("op"), m.node("q")
    scale, zp = m.const_of(qn.inputs[1]), m.const_of(qn.inputs[2])
    y = n.inputs[0]
    if scale is None or zp is None or scale.size != 1 or float(scale.reshape(-1)[0]) <= 0:
        return None
    if any(m.const_of(v) is None for v in n.inputs[1:]) or m.ed.producer.get(y) is None:
        return None
    attrs = _moved_attrs(n, float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]), hoist=True)
    if attrs is None:
        return None
    if n.op == "pad" and not _ok_range(qn.outputs[0].dtype, float(attrs["value"])):
        attrs["value"] = float(np.clip(attrs["value"], *int_range(qn.outputs[0].dtype)))  # saturates
    q = bb.emit("quantize_linear", y, qn.inputs[1], qn.inputs[2], **qn.attrs)
    return bb.emit(n.op, q, *n.inputs[1:], **attrs)


@rule(P.op("concat", any_inputs=True, name="op"))
def sink_concat(m: Match, bb: RewriteBuilder) -> Value | None:
    n = m.node("op")
    found = [dequantized(m, v) for v in n.inputs]
    dqs = [d for d in found if d is not None and d.per_tensor]
    if len(dqs) != len(found):
        return None
    first = dqs[0]
    if any(d.s != first.s or d.z != first.z or d.q.dtype != first.q.dtype for d in dqs):
        return None
    moved = bb.emit("concat", *(d.q for d in dqs), **n.attrs)
    return _dq(bb, moved, m.ed.producer[n.inputs[0]], first.axis)


@rule(P.op("quantize_linear", P.op("concat", any_inputs=True, name="op").one_use(), P.const(),
           P.const(), name="q"))
def hoist_quantize_concat(m: Match, bb: RewriteBuilder) -> Value | None:
    """A concat of parts with other scales (or a float constant, a class token): each part
    is quantized to the concat's parameters, which the lowering then folds or requantizes."""
    n, qn = m.node("op"), m.node("q")
    scale = m.const_of(qn.inputs[1])
    if scale is None or scale.size != 1:
        return None
    parts = [bb.emit("quantize_linear", v, *qn.inputs[1:], **qn.attrs) for v in n.inputs]
    return bb.emit("concat", *parts, **n.attrs)


SINK_RULES = [sink_dequantize, hoist_quantize, sink_concat, hoist_quantize_concat]


def sink_splits(g: Graph) -> Graph:
    """split(dq(q)) => dq(split(q))... (rewrite handles one-output nodes only)."""
    ed = GraphEditor(g)
    for node in g.nodes:
        n = ed.substituted(node)
        src = ed.producer.get(n.inputs[0])
        if n.op != "split" or src is None or src.op != "dequantize_linear" or not _per_tensor(ed, src):
            ed.keep(n)
            continue
        outs = tuple(Value(v.type.with_dtype(src.inputs[0].dtype), v.hint) for v in n.outputs)
        ed.add(Node("split", (src.inputs[0],), outs, n.attrs, n.loc))
        for old, q in zip(n.outputs, outs, strict=True):
            new = Value(old.type, old.hint)
            ed.add(Node("dequantize_linear", (q, *src.inputs[1:]), (new,), src.attrs, n.loc))
            ed.replace(old, new)
        ed.drop(n)
        note("sink_split")
    return ed.build()


def _per_tensor(ed: GraphEditor, dq: Node) -> bool:
    scale, zp = ed.consts.get(dq.inputs[1]), ed.consts.get(dq.inputs[2])
    return scale is not None and zp is not None and scale.size == 1


def sink_layout(g: Graph) -> Graph:
    """Phase one of lower-integer: splits, then the rules, until neither changes anything."""
    for _ in range(16):
        out = rewrite(sink_splits(g), SINK_RULES)
        if out is g:
            return g
        g = out
    return g
