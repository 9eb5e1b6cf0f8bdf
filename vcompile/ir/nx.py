"""The graph as a `networkx.DiGraph`, for analyses (paths, convexity, dominators).

Nodes are the IR's `Node` objects (hashed by identity), plus one node per graph
input named ``("input", i)``; each edge carries the `Value` that flows along it
(``value``) and, when one node feeds another several values, all of them
(``values``, in order of first use).
Constants are not nodes: they are data, not dataflow.
"""
from __future__ import annotations

import networkx as nx

from vcompile.ir.graph import Graph, Node, Value


def to_networkx(g: Graph) -> nx.DiGraph:
    dg = nx.DiGraph()
    producer: dict[Value, object] = {}
    for i, v in enumerate(g.inputs):
        key = ("input", i)
        dg.add_node(key, op="input", value=v)
        producer[v] = key
    for n in g.nodes:
        dg.add_node(n, op=n.op)
        for v in n.inputs:
            if v not in producer:
                continue
            if dg.has_edge(producer[v], n):  # add(x, x), or two outputs of one split
                vals = dg.edges[producer[v], n]["values"]
                if v not in vals:
                    vals.append(v)
            else:
                dg.add_edge(producer[v], n, value=v, values=[v])
        for v in n.outputs:
            producer[v] = n
    return dg


def is_convex(dg: nx.DiGraph, group: set[Node]) -> bool:
    """A node set is convex when no path leaves it and comes back into it."""
    outside_succ = {s for n in group for s in dg.successors(n) if s not in group}
    reach: set[object] = set()
    for s in outside_succ:
        reach |= nx.descendants(dg, s) | {s}
    return not (reach & group)
