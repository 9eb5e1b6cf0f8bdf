"""fold-transposes: sink transposes through elementwise ops until they meet another
transpose, which they compose with (and cancel when the two are inverse).

    op(transpose(a, p), transpose(b, p), c)  => transpose(op(a, b, c'), p)
        op elementwise (unary, binary, where, clip, ...); every non-constant input a
        transpose by the same p, used once or by ops that all sink it; c a constant,
        c' = c (broadcast to the output rank) transposed by p's inverse, so it
        broadcasts against the untransposed inputs
    transpose(transpose(x, p1), p2)          => transpose(x, p1[p2])
    transpose(x, identity)                   => x

TensorFlow models exported by tf2onnx hold activations NHWC and wrap each conv in
NHWC <-> NCHW transposes: transpose(0,3,1,2) -> conv -> transpose(0,2,3,1) -> bias, relu,
... -> transpose(0,3,1,2) -> conv. Sunk through the elementwise ops, each conv's trailing
transpose meets the next conv's leading one and they cancel: a conv -> relu -> conv chain
keeps only the transposes at the graph's input and output, and the elementwise ops join
the conv's epilogue.

A transpose sinks only where that pays: when the op merges two or more transposes into
one, or when a transpose (to compose with) or a graph output lies downstream through
elementwise ops alone. Elsewhere the graph keeps the exporter's spelling, which the
`recognize` patterns match. Exact: the same elements meet the same operands. Symbolic
dims are moved like any other dim (nothing here depends on their size).
"""
from __future__ import annotations

import numpy as np

from vcompile.ir.graph import Graph, Node, Value
from vcompile.ir.ops import OPS
from vcompile.passes.canonicalize import merge_transposes
from vcompile.passes.dce import dce
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, rewrite, rule
from vcompile.passes.infra.registry import register
from vcompile.passes.infra.rewriter import GraphEditor

# Elementwise ops whose attrs name no axis (requantize's per-axis scales would move).
ELEMENTWISE = tuple(sorted(name for name, d in OPS.items() if d.kind == "elementwise"
                           and not {"axis", "axes"} & set(d.attrs) and not name.startswith("q")))
LOOKAHEAD = 16  # elementwise ops followed downstream in search of a transpose


def _downstream_transpose(ed: GraphEditor, v: Value) -> bool:
    """Whether a transpose or a graph output is reached from `v` through elementwise ops."""
    us = ed.graph_users
    seen: set[Value] = set()
    todo = [v]
    while todo and len(seen) < LOOKAHEAD:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in ed.g.outputs:
            return True
        for u in us.get(v, ()):
            if u.op == "transpose":
                return True
            if u.op in ELEMENTWISE and len(u.outputs) == 1:
                todo.append(u.outputs[0])
    return False


def _sinks_to(ed: GraphEditor, w: Value, v: Value, perm: tuple[int, ...], depth: int = 8) -> bool:
    """Whether `w` will be a transpose by `perm` once transposes sink: it is one, or `v`,
    or elementwise ops compute it from such values (and constants)."""
    if w is v or w in ed.consts:
        return True
    n = ed.graph_producers.get(w) or ed.producer.get(w)
    if n is None or depth == 0:
        return False
    if n.op == "transpose":
        return n.attrs.ints("perm") == perm
    return n.op in ELEMENTWISE and all(_sinks_to(ed, x, v, perm, depth - 1) for x in n.inputs)


def _every_user_sinks(ed: GraphEditor, v: Value, perm: tuple[int, ...]) -> bool:
    """Whether every user of transpose output `v` is a transpose (they compose) or an
    elementwise op that sinks it too, so that the transpose dies: a shared transpose
    (a conv output that also feeds a residual add) sinks along all its paths or none."""
    if v in ed.g.outputs or v not in ed.graph_users:
        return False
    for u in ed.graph_users[v]:
        if u.op == "transpose":
            continue
        if u.op not in ELEMENTWISE or len(u.outputs) != 1:
            return False
        others = [w for w in u.inputs if w is not v and w not in ed.consts]
        if not all(_sinks_to(ed, w, v, perm) for w in others):
            return False
        if not others and not _downstream_transpose(ed, u.outputs[0]):
            return False
    return True


def _transposed(ed: GraphEditor, n: Node) -> tuple[int, ...] | None:
    """The perm every non-constant input of `n` is a transpose by, if one; each transpose
    is used once or by ops that all sink it."""
    perm: tuple[int, ...] | None = None
    rank = n.outputs[0].type.rank
    for v in n.inputs:
        if v in ed.consts:
            if ed.consts[v].ndim > rank:
                return None
            continue
        t = ed.producer.get(v)
        if t is None or t.op != "transpose":
            return None
        p = t.attrs.ints("perm")
        if ed.uses[v] != 1 and not _every_user_sinks(ed, v, p):
            return None
        if perm is not None and p != perm:
            return None
        perm = p
    return perm if perm is not None and len(perm) == rank else None


@rule(P.op(ELEMENTWISE, any_inputs=True))
def sink_transpose(m: Match, bb: RewriteBuilder) -> Value | None:
    n, ed = m.root, m.ed
    perm = _transposed(ed, n)
    if perm is None:
        return None
    merged = sum(v not in ed.consts for v in n.inputs)
    if merged < 2 and not _downstream_transpose(ed, n.outputs[0]):
        return None
    inv = tuple(int(i) for i in np.argsort(perm))
    ins: list[Value] = []
    for v in n.inputs:
        c = ed.consts.get(v)
        if c is None:
            ins.append(ed.producer[v].inputs[0])
        elif c.ndim == 0:
            ins.append(v)
        else:
            full = c.reshape((1,) * (len(perm) - c.ndim) + c.shape)
            ins.append(bb.const(np.transpose(full, inv), hint=v.hint or "c"))
    y = bb.emit(n.op, *ins, **n.attrs)
    return bb.emit("transpose", y, perm=perm)


@rule(P.op("transpose", P.any("x")))
def identity_transpose(m: Match, bb: RewriteBuilder) -> Value | None:
    perm = m.root.attrs.ints("perm")
    return m["x"] if perm == tuple(range(len(perm))) else None


RULES = [sink_transpose, merge_transposes, identity_transpose]


@register("fold-transposes")
def fold_transposes(g: Graph) -> Graph:
    out = rewrite(g, RULES)
    return out if out is g else dce(out)
