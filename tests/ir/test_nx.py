"""to_networkx: one node per IR node and graph input, edges carry values; is_convex."""
from __future__ import annotations

from vcompile.ir import Builder, Graph, to_networkx
from vcompile.ir.nx import is_convex


def _diamond() -> Graph:
    """x -> a=relu -> b=neg -> d=add(b, c); a -> c=exp -> d; plus a constant."""
    bb = Builder()
    x = bb.input((2,))
    a = bb.emit("relu", x, hint="a")
    b = bb.emit("neg", a, hint="b")
    c = bb.emit("exp", a, hint="c")
    d = bb.emit("add", b, bb.emit("mul", c, bb.const([1.0, 2.0])), hint="d")
    return bb.build(d)


def test_counts_and_edge_values():
    g = _diamond()
    dg = to_networkx(g)
    assert dg.number_of_nodes() == len(g.nodes) + len(g.inputs)  # consts are not nodes
    assert dg.number_of_edges() == 6
    relu, neg = g.nodes[0], g.nodes[1]
    assert dg.nodes[("input", 0)]["value"] is g.inputs[0]
    assert dg.nodes[relu]["op"] == "relu"
    assert dg.edges[relu, neg]["value"] is relu.output
    assert dg.edges[("input", 0), relu]["value"] is g.inputs[0]


def test_several_values_between_two_nodes_share_one_edge():
    bb = Builder()
    x = bb.input((4,))
    p, q = bb.emit_multi("split", x, sizes=(2, 2))
    s = bb.emit("add", p, q)
    g = bb.build(bb.emit("add", s, s))
    dg = to_networkx(g)
    split, add1, add2 = g.nodes
    assert dg.edges[split, add1]["values"] == [p, q]
    assert dg.edges[add1, add2]["values"] == [s]
    assert dg.number_of_edges() == 3


def test_is_convex():
    g = _diamond()
    dg = to_networkx(g)
    relu, neg, exp, mul, add = g.nodes
    assert is_convex(dg, {relu, neg})
    assert is_convex(dg, {neg, exp, mul, add})
    assert is_convex(dg, {relu, neg, exp, mul, add})
    assert is_convex(dg, {exp})
    assert not is_convex(dg, {relu, add})  # relu -> neg -> add leaves and re-enters
    assert not is_convex(dg, {relu, neg, add})  # relu -> exp -> mul -> add
