"""`verify` formats nothing on a valid graph (names and node text only for an error), so
it is linear in the graph's size; it used to print every node's location on success."""
from __future__ import annotations

import importlib

import pytest

from vcompile.ir import Builder, Graph, Node, VerifyError, verify

V = importlib.import_module("vcompile.ir.verify")  # `vcompile.ir.verify` is also the function


def _chain(n: int, loc: bool = True) -> Graph:
    bb = Builder("chain")
    y = bb.input((1, 16), hint="x")
    for i in range(n):
        y = bb.emit("relu", y, hint="y", loc=f"src/n{i}" if loc else "")
    return bb.build(y)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts calls of the formatting functions verify uses."""
    count = {"print_node": 0, "value_names": 0}

    def counted(name: str):  # noqa: ANN202
        real = getattr(V, name)

        def wrapper(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            count[name] += 1
            return real(*a, **kw)
        return wrapper
    for name in count:
        monkeypatch.setattr(V, name, counted(name))
    return count


def test_valid_graph_formats_nothing(calls: dict[str, int]) -> None:
    g = _chain(2000)
    assert verify(g) is g
    assert calls == {"print_node": 0, "value_names": 0}


def test_valid_region_formats_nothing(calls: dict[str, int]) -> None:
    body = _chain(50)
    bb = Builder("outer")
    x = bb.input((1, 16), hint="x")
    y = bb.emit("fused", x, region=body, kernel="relu")
    verify(bb.build(y))
    assert calls == {"print_node": 0, "value_names": 0}


def test_an_error_still_names_the_node_and_its_loc(calls: dict[str, int]) -> None:
    g = _chain(100)
    bad = Node("relu", g.nodes[-1].inputs, g.nodes[49].outputs, g.nodes[-1].attrs, "src/again")
    broken = g.replace(nodes=(*g.nodes, bad))
    with pytest.raises(VerifyError, match=r"is defined twice \(again as an output of relu\)"
                       r"; each SSA value has exactly one definition\n  in: .*relu.*"
                       r"\n  from source node 'src/again'"):
        verify(broken)
    assert calls["print_node"] == 1 and calls["value_names"] == 1


def test_work_per_node_is_constant(calls: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """The mechanism behind linear time: each node costs one infer_node call, whatever
    the graph's size (no per-node work that grows with the graph)."""
    n_infer = 0
    real = V.infer_node

    def infer(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        nonlocal n_infer
        n_infer += 1
        return real(*a, **kw)
    monkeypatch.setattr(V, "infer_node", infer)
    for n in (1000, 4000):
        n_infer = 0
        verify(_chain(n))
        assert n_infer == n
    assert calls == {"print_node": 0, "value_names": 0}
