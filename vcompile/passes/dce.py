"""Dead-code elimination.

    %t = op(...)   (no node and no graph output uses %t)   =>   (removed)

Also removes constants nothing uses. Ops have no side effects, so a node is dead
exactly when none of its outputs is used.
"""
from __future__ import annotations

from vcompile.ir.graph import Graph
from vcompile.passes.infra.registry import note, register
from vcompile.passes.infra.rewriter import eliminate_dead


@register("dce")
def dce(g: Graph) -> Graph:
    out = eliminate_dead(g)
    if out is not g:
        note("nodes-removed", len(g.nodes) - len(out.nodes))
        note("consts-removed", len(g.consts) - len(out.consts))
    return out
