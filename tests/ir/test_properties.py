"""Property tests over generated graphs: the text form round-trips, generated graphs
verify, and the interpreter is deterministic."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import assert_close, fused_graphs, graphs, seeded_inputs
from vcompile.ir import Graph, interp, parse_graph, print_graph, verify
from vcompile.ir.printer import MAX_INLINE, const_names, value_names

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _big_consts(g: Graph) -> dict[str, np.ndarray]:
    """The constants the text leaves out, by printed name (the parser needs them)."""
    return {k: a for k, a in const_names(g).items() if a.size > MAX_INLINE}


def _same_results(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()  # bit-exact: nan payloads and -0.0 included


@PROPS
@given(graphs())
def test_generated_graphs_verify(g: Graph):
    assert verify(g) is g
    assert 1 <= len(g.nodes) <= 12


@PROPS
@given(st.one_of(graphs(), fused_graphs()), st.integers(0, 3))
def test_print_parse_round_trips_and_keeps_semantics(g: Graph, seed: int):
    text = print_graph(g)
    assert print_graph(g) == text  # deterministic
    back = verify(parse_graph(text, consts=_big_consts(g)))
    assert print_graph(back) == text
    xs = seeded_inputs(g, seed)
    _same_results(interp.run(back, *xs), interp.run(g, *xs))


@PROPS
@given(graphs())
def test_value_names_match_the_printed_text(g: Graph):
    names = value_names(g)
    text = print_graph(g)
    assert len(set(names.values())) == len(names)  # unique
    for v in g.inputs:
        assert f"%{names[v]}: {v.type}" in text
    for n in g.nodes:
        assert ", ".join("%" + names[v] for v in n.outputs) + f" = {n.op}(" in text


@PROPS
@given(graphs(), st.integers(0, 2**16))
def test_interp_is_deterministic_and_types_match(g: Graph, seed: int):
    xs = seeded_inputs(g, seed)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(xs, seeded_inputs(g, seed), strict=True))
    first = interp.run(g, *xs)
    _same_results(interp.run(g, *[x.copy() for x in xs]), first)
    assert_close(first, first)
    bindings: dict[str, int] = {}
    for v, x in zip(g.inputs, xs, strict=True):
        assert v.type.matches(x, bindings)
    for v, out in zip(g.outputs, first, strict=True):
        assert v.type.matches(out, dict(bindings))


@PROPS
@given(graphs())
def test_omitted_consts_are_filled_deterministically(g: Graph):
    text = print_graph(g)
    a, b = parse_graph(text, consts=7), parse_graph(text, consts=7)
    for x, y in zip(a.consts.values(), b.consts.values(), strict=True):
        assert x.tobytes() == y.tobytes()
    assert print_graph(a) == text
