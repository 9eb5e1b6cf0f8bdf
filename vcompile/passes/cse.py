"""Common-subexpression elimination.

    %a = op(%x, %y) {attrs}; %b = op(%x, %y) {attrs}   =>   %a, with uses of %b -> %a
    const %c1 = A; const %c2 = A (same dtype, shape, bytes)   =>   const %c1

Two nodes are the same when op, inputs (by identity), attrs and region agree; ops
are pure, so computing one of them is enough. Constants are merged first so that
nodes reading equal constants become equal too.
"""
from __future__ import annotations

import hashlib

from vcompile.ir.graph import Graph, Node, Value
from vcompile.passes.infra.registry import note, register
from vcompile.passes.infra.rewriter import GraphEditor


def _const_key(arr) -> tuple:
    return (arr.dtype.str, arr.shape, hashlib.blake2b(arr.tobytes(), digest_size=16).digest())


@register("cse")
def cse(g: Graph) -> Graph:
    ed = GraphEditor(g)
    seen_const: dict[tuple, Value] = {}
    for v, arr in g.consts.items():
        first = seen_const.setdefault(_const_key(arr), v)
        if first is not v:
            ed.replace(v, first)
            note("consts-merged")
    seen: dict[tuple, Node] = {}
    for node in g.nodes:
        n = ed.substituted(node)
        key = (n.op, tuple(map(id, n.inputs)), n.attrs, id(n.region) if n.region else None)
        prev = seen.get(key)
        if prev is None or len(prev.outputs) != len(n.outputs):
            seen[key] = n
            ed.keep(n)
            continue
        ed.drop(n)
        for old, new in zip(n.outputs, prev.outputs, strict=True):
            ed.replace(old, new)
        note("nodes-merged")
    if not ed.changed:
        return g
    ed.changed = True
    return ed.build()
