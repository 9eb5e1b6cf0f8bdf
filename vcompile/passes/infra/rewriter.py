"""Editing immutable graphs: a `GraphEditor` copies a graph node by node, dropping
nodes, inserting new ones and substituting values, then builds the new Graph.

The editor keeps what pattern matching needs about the graph being built: each
value's producer, the constants, and use counts. Use counts are conservative
during an edit (a node left dead still counts as a user until `dce`), so a
`.one_use()` check may decline a rewrite that a later sweep then does; it never
lets one through that would compute a value twice.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import cached_property

import numpy as np

from vcompile.ir.graph import Graph, Node, Value, users


def use_counts(g: Graph) -> Counter[Value]:
    """How many node inputs and graph outputs refer to each value."""
    c: Counter[Value] = Counter()
    for n in g.nodes:
        c.update(n.inputs)
    c.update(g.outputs)
    return c


def eliminate_dead(g: Graph) -> Graph:
    """Drop nodes none of whose outputs is used, and unused constants; `g` if none."""
    live = set(g.outputs)
    keep: list[Node] = []
    for n in reversed(g.nodes):
        if any(v in live for v in n.outputs):
            keep.append(n)
            live.update(n.inputs)
    consts = {v: a for v, a in g.consts.items() if v in live}
    if len(keep) == len(g.nodes) and len(consts) == len(g.consts):
        return g
    return g.replace(nodes=tuple(reversed(keep)), consts=consts)


class GraphEditor:
    """Rebuilds `g`: `keep(node)` copies a node (its inputs substituted), `add(node)`
    inserts a new one, `replace(old, new)` makes later users of `old` use `new`."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.nodes: list[Node] = []
        self.consts: dict[Value, np.ndarray] = dict(g.consts)
        self.subst: dict[Value, Value] = {}
        self.producer: dict[Value, Node] = {}
        self.uses = use_counts(g)
        self.changed = False

    @cached_property
    def graph_users(self) -> dict[Value, list[Node]]:
        """Each value's users in `g`, the graph being rebuilt (as it was before any edit):
        what lies downstream of the node a rule is tried on."""
        return users(self.g)

    @cached_property
    def graph_producers(self) -> dict[Value, Node]:
        """Each value's producer in `g` (downstream nodes are not in `producer` yet)."""
        return self.g.producers()

    def resolve(self, v: Value) -> Value:
        while v in self.subst:
            v = self.subst[v]
        return v

    def substituted(self, n: Node) -> Node:
        """`n` with its inputs substituted (the same object when none changed)."""
        ins = tuple(self.resolve(v) for v in n.inputs)
        if all(a is b for a, b in zip(ins, n.inputs, strict=True)):
            return n
        return Node(n.op, ins, n.outputs, n.attrs, n.loc, n.region)

    def keep(self, n: Node) -> None:
        self.nodes.append(n)
        for v in n.outputs:
            self.producer[v] = n

    def add(self, n: Node) -> None:
        """Insert a new node here; its inputs must already be defined."""
        self.keep(n)
        self.uses.update(n.inputs)
        self.changed = True

    def add_const(self, v: Value, arr: np.ndarray) -> None:
        self.consts[v] = arr
        self.changed = True

    def drop(self, n: Node) -> None:
        """Leave `n` out (it was not kept); its inputs lose a user."""
        self.uses.subtract(n.inputs)
        self.changed = True

    def replace(self, old: Value, new: Value) -> None:
        if old is new:
            return
        self.subst[old] = new
        self.uses[new] += self.uses[old]
        self.changed = True

    def build(self) -> Graph:
        """The edited graph with dead nodes removed; the original when nothing changed."""
        if not self.changed:
            return self.g
        outs = tuple(self.resolve(v) for v in self.g.outputs)
        g = self.g.replace(nodes=tuple(self.nodes), outputs=outs, consts=self.consts)
        return eliminate_dead(g)


def replace_values(g: Graph, mapping: dict[Value, Value], drop: Iterable[Node] = ()) -> Graph:
    """`g` with every use of a key of `mapping` replaced, and the `drop` nodes removed."""
    ed = GraphEditor(g)
    gone = set(map(id, drop))
    ed.subst.update(mapping)
    ed.changed = bool(mapping) or bool(gone)
    for n in g.nodes:
        if id(n) not in gone:
            ed.keep(ed.substituted(n))
    return ed.build()
