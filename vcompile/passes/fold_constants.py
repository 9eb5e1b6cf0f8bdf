"""Constant folding with the op table's numpy reference.

    %y = op(const %a, const %b) {attrs}   =>   const %y = OPS[op].eval([a, b], attrs)

Only nodes whose inputs are all constants, with static output types, and whose
outputs are not much larger than their inputs (so that `expand` or `tile` of a
small constant does not bloat the model) are folded.
"""
from __future__ import annotations

import numpy as np

from vcompile.ir.graph import Graph, Node
from vcompile.ir.ops import OPS
from vcompile.passes.registry import note, register
from vcompile.passes.rewriter import GraphEditor

GROWTH_LIMIT = 1 << 16  # elements a folded output may add beyond its inputs' size


def _foldable(n: Node, ed: GraphEditor) -> bool:
    if n.region is not None or not all(v in ed.consts for v in n.inputs):
        return False
    if not all(v.type.is_static for v in n.outputs):
        return False
    size_in = sum(ed.consts[v].size for v in n.inputs)
    return sum(v.type.size for v in n.outputs) <= size_in + GROWTH_LIMIT


@register("fold-constants")
def fold_constants(g: Graph) -> Graph:
    ed = GraphEditor(g)
    for node in g.nodes:
        n = ed.substituted(node)
        if not _foldable(n, ed):
            ed.keep(n)
            continue
        with np.errstate(all="ignore"):
            results = [np.asarray(r) for r in OPS[n.op].eval([ed.consts[v] for v in n.inputs], n.attrs)]
        if any(r.shape != v.shape for v, r in zip(n.outputs, results, strict=True)):
            ed.keep(n)  # NOTE: an eval disagreeing with infer is an op-table bug; leave it be
            continue
        for v, r in zip(n.outputs, results, strict=True):
            ed.add_const(v, r.astype(v.type.np_dtype, order="C"))
        ed.drop(n)
        note("nodes-folded")
    return ed.build()
