"""Constant folding with the op table's numpy reference.

    %y = op(const %a, const %b) {attrs}   =>   const %y = OPS[op].eval([a, b], attrs)

Only nodes whose inputs are all constants, with static output types, and whose
outputs are not much larger than their inputs (so that `expand` or `tile` of a
small constant does not bloat the model) are folded. The exception is what feeds an
attention's bias: Swin's relative-position bias plus its shifted-window mask is a
[windows, heads, 49, 49] constant that would otherwise be expanded and added on every
inference (two kernels writing 1.8 MB per block); folded, the attention reads it once.

`dequantize_linear` of a constant is never folded: it is how a quantized model spells
its int8 weights, which `lower-integer` consumes as they are (folded, they would turn
into float weights four times the size, and the convolution would stay float).
"""
from __future__ import annotations

import numpy as np

from vcompile.ir.graph import Graph, Node, Value
from vcompile.ir.ops import OPS
from vcompile.passes.infra.registry import note, register
from vcompile.passes.infra.rewriter import GraphEditor

GROWTH_LIMIT = 1 << 16  # elements a folded output may add beyond its inputs' size
BIAS_LIMIT = 1 << 24  # elements an attention bias may fold to


def _bias_side(g: Graph) -> set[Value]:
    """Values an attention's bias is computed from (transitively)."""
    producer = {v: n for n in g.nodes for v in n.outputs}
    todo = [n.inputs[3] for n in g.nodes if n.op == "attention" and len(n.inputs) > 3]
    seen: set[Value] = set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in producer:
            todo.extend(producer[v].inputs)
    return seen


def _foldable(n: Node, ed: GraphEditor, bias_side: set[Value]) -> bool:
    if n.region is not None or not all(v in ed.consts for v in n.inputs):
        return False
    if n.op == "dequantize_linear":
        return False
    if not all(v.type.is_static for v in n.outputs):
        return False
    size_out = sum(v.type.size for v in n.outputs)
    if all(v in bias_side for v in n.outputs):
        return size_out <= BIAS_LIMIT
    size_in = sum(ed.consts[v].size for v in n.inputs)
    return size_out <= size_in + GROWTH_LIMIT


@register("fold-constants")
def fold_constants(g: Graph) -> Graph:
    ed = GraphEditor(g)
    bias_side = _bias_side(g)
    for node in g.nodes:
        n = ed.substituted(node)
        if not _foldable(n, ed, bias_side):
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
