"""Canonicalization: the small local rewrites every later pattern relies on.

    op(const, const)                        => const            (fold-constants)
    identity(x), cast(x: T) {to=T}          => x
    reshape(x: T) -> T, expand/slice/pad/squeeze/unsqueeze/concat that change nothing => x
    reshape(reshape(x))                     => reshape(x)
    transpose(x) {perm=identity}            => x
    transpose(transpose(x, p1), p2)         => transpose(x, p1[p2])
    add(c, x), mul(c, x)                    => add(x, c), mul(x, c)   (constants on the right)
    sub(x, c)                               => add(x, -c)             (exact in IEEE arithmetic)
    add(x, 0), mul(x, 1), div(x, 1)         => x                      (when the type is kept)
    add(add(x, c1), c2), mul(mul(x, c1), c2) => add(x, c1 + c2), mul(x, c1 * c2)
    gemm(a, const b) {trans_b, alpha, beta} => gemm(a, b') {alpha=1, beta=1, trans_b=false}
    squeeze(pool2d(unsqueeze(x, 2)), 2)     => pool1d(x)   (torch.export spells 1-d pools so)
    then common-subexpression and dead-code elimination, repeated to a fixed point.

The builder already fills every default attr and every conv has a bias, so those
parts of canonical form hold by construction. Merging constant chains reassociates
float math; every other rewrite is exact.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vcompile.ir.graph import Graph, Node, Value
from vcompile.ir.ops import ShapeError, broadcast_shapes
from vcompile.ir.types import FLOAT_DTYPES
from vcompile.passes.cse import cse
from vcompile.passes.dce import dce
from vcompile.passes.fold_constants import fold_constants
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, Rule, rewrite, rule
from vcompile.passes.infra.registry import register

X = P.any("x")
NOOP_OPS = ("identity", "cast", "reshape", "expand", "slice", "pad", "squeeze", "unsqueeze",
            "concat", "transpose")


def _is_noop(m: Match) -> bool:
    n = m.root
    a = n.attrs
    if n.op == "slice" and any(s != 1 for s in a.ints("steps")):
        return False
    if n.op == "transpose" and a.ints("perm") != tuple(range(len(a.ints("perm")))):
        return False
    if n.op == "pad" and a.str("mode") != "constant" and any(a.ints("pads")):
        return False
    return n.op in NOOP_OPS and len(n.inputs) == 1 and n.inputs[0].type == n.outputs[0].type


@rule(P.op(NOOP_OPS, any_inputs=True))
def remove_noop(m: Match, bb: RewriteBuilder) -> Value | None:
    return m.root.inputs[0] if _is_noop(m) else None


@rule(P.op("reshape", P.op("reshape", X)))
def merge_reshapes(m: Match, bb: RewriteBuilder) -> Value | None:
    try:
        return bb.emit("reshape", m["x"], **m.root.attrs)
    except Exception:  # NOTE: a target with -1 and symbols may not re-infer from x
        return None


@rule(P.op("transpose", P.op("transpose", X, name="inner")))
def merge_transposes(m: Match, bb: RewriteBuilder) -> Value | None:
    p1, p2 = m.node("inner").attrs.ints("perm"), m.root.attrs.ints("perm")
    return bb.emit("transpose", m["x"], perm=tuple(p1[i] for i in p2))


@rule(P.op(("add", "mul"), P.const("c"), X))
def constant_on_right(m: Match, bb: RewriteBuilder) -> Value | None:
    if m.const_of(m["x"]) is not None:
        return None
    return bb.emit(m.root.op, m["x"], m["c"])


@rule(P.op("sub", X, P.const("c")))
def sub_to_add(m: Match, bb: RewriteBuilder) -> Value | None:
    c = m.array("c")
    if m["x"].dtype not in FLOAT_DTYPES or m.const_of(m["x"]) is not None:
        return None
    return bb.emit("add", m["x"], bb.const(np.negative(c), hint=m["c"].hint or "c"))


_NEUTRAL = {"add": 0, "mul": 1, "div": 1}


@rule(P.op(("add", "mul", "div"), X, P.const("c")))
def remove_neutral(m: Match, bb: RewriteBuilder) -> Value | None:
    c = m.array("c")
    if m["x"].type != m.root.outputs[0].type or not np.all(c == _NEUTRAL[m.root.op]):
        return None
    return m["x"]


@rule(P.op(("add", "mul"), P.op(("add", "mul"), X, P.const("c1"), name="inner").one_use(),
           P.const("c2")))
def merge_constant_chain(m: Match, bb: RewriteBuilder) -> Value | None:
    op = m.root.op
    if m.node("inner").op != op or m.const_of(m["x"]) is not None:
        return None
    c1, c2 = m.arrays("c1", "c2")
    c = (c1 + c2) if op == "add" else (c1 * c2)
    try:  # NOTE: symbol-aware broadcasting: x may have a symbolic batch
        merged = broadcast_shapes(m["x"].shape, c.shape)
    except ShapeError:
        return None
    if merged != m.root.outputs[0].shape or c.dtype != c1.dtype:
        return None
    return bb.emit(op, m["x"], bb.const(c, hint=m["c1"].hint or "c"))


@rule(P.op("gemm", X, P.const("w"), any_inputs=True))
def canonical_gemm(m: Match, bb: RewriteBuilder) -> Value | None:
    n = m.root
    a = n.attrs
    w_v = n.inputs[1]
    w = m.const_of(w_v)
    if w is None or (not a["trans_b"] and a["alpha"] == 1.0 and a["beta"] == 1.0):
        return None
    if len(n.inputs) == 3 and m.const_of(n.inputs[2]) is None and a["beta"] != 1.0:
        return None
    w = (w.T if a["trans_b"] else w) * np.asarray(a["alpha"], w.dtype)
    ins = [n.inputs[0], bb.const(w.astype(w_v.type.np_dtype), hint=w_v.hint or "w")]
    if len(n.inputs) == 3:
        c_v = n.inputs[2]
        c = m.const_of(c_v)
        ins.append(c_v if a["beta"] == 1.0 or c is None else
                   bb.const((c * np.asarray(a["beta"], c.dtype)).astype(c.dtype), hint=c_v.hint or "b"))
    return bb.emit("gemm", *ins, trans_a=a["trans_a"])


def _axes(n: Node, rank: int) -> tuple[int, ...]:
    return tuple(a % rank for a in n.attrs.ints("axes"))


@rule(P.op("squeeze", P.op(("avg_pool2d", "max_pool2d"),
                           P.op("unsqueeze", X, name="unsq").one_use(), name="pool").one_use()))
def pool1d_from_2d(m: Match, bb: RewriteBuilder) -> Value | None:
    pool, x = m.node("pool"), m["x"]
    a = pool.attrs
    if x.type.rank != 3 or _axes(m.node("unsq"), 4) != (2,) or _axes(m.root, 4) != (2,):
        return None
    k, st, pd, dl = a.ints("kernel"), a.ints("strides"), a.ints("pads"), a.ints("dilations")
    if k[0] != 1 or st[0] != 1 or pd[0] != 0 or pd[2] != 0 or dl[0] != 1 \
            or a.get("with_indices", False):
        return None
    extra: dict[str, Any] = {key: a[key] for key in ("ceil_mode", "count_include_pad", "storage_order")
                             if key in a}
    return bb.emit(pool.op.replace("2d", "1d"), x, kernel=(k[1],), strides=(st[1],),
                   pads=(pd[1], pd[3]), dilations=(dl[1],), **extra)


RULES: list[Rule] = [remove_noop, merge_reshapes, merge_transposes, constant_on_right, sub_to_add,
                     remove_neutral, merge_constant_chain, canonical_gemm, pool1d_from_2d]


@register("canonicalize")
def canonicalize(g: Graph) -> Graph:
    for _ in range(16):
        before = g
        g = dce(cse(rewrite(fold_constants(g), RULES)))
        if g is before:
            return g
    return g
