"""Golden tests of the exact text form: naming, attrs, floats, consts, regions, parsing."""
from __future__ import annotations

import numpy as np
import pytest

from vcompile.ir import DTYPES, Builder, Graph, ParseError, interp, parse_graph, print_graph, verify
from vcompile.ir.printer import const_names, value_names


def roundtrip(text: str, **kw: object) -> Graph:
    """Parse `text`, check it verifies and prints back unchanged."""
    g = verify(parse_graph(text, **kw))  # type: ignore[arg-type]
    assert print_graph(g) == text
    return g


# ---- naming ----------------------------------------------------------------------------

NAMES = """\
graph @names(%x: f32[2,3], %x_1: f32[2,3], %x_1_1: f32[2,3]) {
  %0 = add(%x, %x_1) : f32[2,3]
  %1 = mul(%0, %x_1_1) : f32[2,3]
  %x_2 = neg(%1) : f32[2,3]
  return %x_2
}
"""


def test_names_suffix_repeats_number_unhinted_and_dodge_collisions():
    bb = Builder("names")
    x, x2 = bb.input((2, 3), hint="x"), bb.input((2, 3), hint="x")
    x3 = bb.input((2, 3), hint="x_1")  # collides with the second "x"
    b = bb.emit("mul", bb.emit("add", x, x2), x3)
    g = bb.build(bb.emit("neg", b, hint="x"))
    assert print_graph(g) == NAMES
    assert roundtrip(NAMES).inputs[1].hint == "x_1"
    assert list(value_names(g).values()) == ["x", "x_1", "x_1_1", "0", "1", "x_2"]


def test_hints_are_sanitized_and_digit_hints_are_numbered():
    bb = Builder("my-net")
    x = bb.input((2,), hint="in put")
    y = bb.emit("relu", x, hint="7")
    z = bb.emit("neg", y, hint="a.b")
    assert print_graph(bb.build(z)) == """\
graph @my_net(%in_put: f32[2]) {
  %0 = relu(%in_put) : f32[2]
  %a.b = neg(%0) : f32[2]
  return %a.b
}
"""


def test_numbering_skips_names_taken_by_parsed_digit_like_values():
    text = """\
graph @g(%0: f32[2], %1: f32[2]) {
  %2 = add(%0, %1) : f32[2]
  return %2, %0
}
"""
    g = roundtrip(text)
    assert [v.hint for v in g.inputs] == ["", ""]  # numbers are not hints


# ---- attrs, floats, strings, bools -----------------------------------------------------

ATTRS = """\
graph @attrs(%x: f32[N,3]) {
  const %k: f32[6] = [0.1, 1e-30, inf, -inf, nan, -0.0]
  %0 = clip(%x) {max=0.10000000149011612, min=-inf} : f32[N,3]
  %1 = hard_sigmoid(%0) {alpha=1e-30, beta=nan} : f32[N,3]
  %s = reduce_sum(%k) {axes=[], keepdims=false} : f32[]
  %2 = add(%1, %s) : f32[N,3]
  return %2
}
"""


def test_floats_print_shortest_and_round_trip_including_inf_and_nan():
    bb = Builder("attrs")
    x = bb.input(("N", 3))
    y = bb.emit("clip", x, max=np.float32(0.1), min=-np.inf)  # attrs print sorted
    z = bb.emit("hard_sigmoid", y, alpha=1e-30, beta=float("nan"))
    k = bb.const(np.array([0.1, 1e-30, np.inf, -np.inf, np.nan, -0.0], np.float32), hint="k")
    s = bb.emit("reduce_sum", k, keepdims=False, hint="s")
    g = bb.build(bb.emit("add", z, s))
    assert print_graph(g) == ATTRS
    g2 = roundtrip(ATTRS)
    np.testing.assert_array_equal(next(iter(g2.consts.values())), g.consts[k])
    assert np.signbit(next(iter(g2.consts.values()))[5])
    assert g2.nodes[0].attrs["max"] == float(np.float32(0.1))
    assert np.isnan(g2.nodes[1].attrs["beta"])  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", ["f16", "f32", "f64"])
def test_inline_floats_round_trip_bit_exactly_per_dtype(dtype: str):
    bb = Builder("g")
    vals = np.array([0.1, 1 / 3, 65504.0, 6e-8, 1e-7, -2.5, 1e4, np.pi], DTYPES[dtype])
    text = print_graph(bb.build(bb.const(vals)))
    back = next(iter(roundtrip(text).consts.values()))
    assert back.tobytes() == vals.tobytes()


def test_ints_negative_attrs_strings_with_quotes_and_loc():
    text = """\
graph @g(%x: i64[6]) {
  const %c: bool[2] = [true, false]
  %0 = reshape(%x) {shape=[-1,3]} : i64[2,3]
  %1 = slice(%0) {axes=[-1], ends=[-1], starts=[-3], steps=[1]} : i64[2,2] loc("say \\"hi\\"")
  %2 = gelu(%x) {approximate="tanh"} : f32[6]
  return %1, %c
}
"""
    with pytest.raises(ParseError, match="gelu: needs a float input"):
        parse_graph(text)
    text = text.replace("gelu(%x)", "cast(%x)").replace('approximate="tanh"', 'to="f32"')
    g = roundtrip(text)
    assert g.nodes[1].loc == 'say "hi"'
    assert g.nodes[0].attrs["shape"] == (-1, 3)


def test_symbolic_dims_in_types_and_attrs():
    text = """\
graph @g(%x: f32[N,4]) {
  %0 = reshape(%x) {shape=["N",2,2]} : f32[N,2,2]
  %1 = reshape(%0) {shape=["N",-1]} : f32[N,4]
  return %1
}
"""
    g = roundtrip(text)
    assert g.nodes[0].attrs["shape"] == ("N", 2, 2)


def test_dims_named_like_number_tokens_parse():
    roundtrip("graph @g(%x: f32[inf,nan]) {\n  return %x\n}\n")


# ---- constants ---------------------------------------------------------------------------

CONSTS = """\
graph @g(%x: f32[3,3]) {
  const %eight: f32[2,4] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
  const %nine: f32[3,3]
  const %s: i64[] = -7
  %0 = add(%x, %nine) : f32[3,3]
  return %0, %eight, %s
}
"""


def test_consts_show_values_only_up_to_eight_elements():
    bb = Builder("g")
    x = bb.input((3, 3))
    eight = bb.const(np.arange(8, dtype=np.float32).reshape(2, 4), hint="eight")
    nine = bb.const(np.ones((3, 3), np.float32), hint="nine")
    s = bb.const(np.int64(-7), hint="s")
    assert print_graph(bb.build(bb.emit("add", x, nine), eight, s)) == CONSTS


def test_omitted_consts_come_from_a_seeded_rng_deterministically():
    a, b = parse_graph(CONSTS), parse_graph(CONSTS)
    c = parse_graph(CONSTS, consts=1)
    nine = [list(g.consts.values())[1] for g in (a, b, c)]
    np.testing.assert_array_equal(nine[0], nine[1])
    assert not np.array_equal(nine[0], nine[2])
    assert nine[0].dtype == np.float32 and not nine[0].flags.writeable


def test_omitted_consts_come_from_a_dict_by_printed_name_without_touching_it():
    nine = np.full((3, 3), 2.0, np.float32)
    g = roundtrip(CONSTS, consts={"nine": nine})
    (out, *_) = interp.run(g, np.ones((3, 3), np.float32))
    np.testing.assert_array_equal(out, np.full((3, 3), 3.0, np.float32))
    assert nine.flags.writeable  # the graph took a read-only copy
    nine[0, 0] = 100.0
    assert list(g.consts.values())[1][0, 0] == 2.0


def test_inline_value_wins_over_a_dict_entry():
    g = parse_graph(CONSTS, consts={"eight": np.zeros((2, 4), np.float32)})
    assert list(g.consts.values())[0][1, 3] == 7.0


# ---- multi-output nodes and regions ------------------------------------------------------

def test_multi_output_node():
    text = """\
graph @g(%x: f32[5,2]) {
  %a, %a_1, %a_2 = split(%x) {axis=0, sizes=[1,3,1]} : f32[1,2], f32[3,2], f32[1,2]
  %0 = concat(%a_2, %a) {axis=0} : f32[2,2]
  return %0, %a_1
}
"""
    g = roundtrip(text)
    bb = Builder("g")
    parts = bb.emit_multi("split", bb.input((5, 2)), hint="a", sizes=(1, 3, 1))
    assert print_graph(bb.build(bb.emit("concat", parts[2], parts[0], axis=0), parts[1])) == text
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    cat, mid = interp.run(g, x)
    np.testing.assert_array_equal(cat, x[[4, 0]])
    np.testing.assert_array_equal(mid, x[1:4])


FUSED = """\
graph @outer(%x: f32[N,4]) {
  %f, %f_1 = fused(%x) {kind="ew", note="a \\"b\\""} : f32[N,4], f32[N,1] loc("blk") {
    graph @body(%x: f32[N,4]) {
      const %c: f32[4] = [1.0, 2.0, 3.0, 4.0]
      %0 = mul(%x, %c) : f32[N,4]
      %1 = relu(%0) : f32[N,4]
      %2 = reduce_sum(%1) {axes=[1], keepdims=true} : f32[N,1]
      return %1, %2
    }
  }
  %0 = sub(%f, %f_1) : f32[N,4]
  return %0
}
"""


def _fused_graph() -> Graph:
    body = Builder("body")
    x = body.input(("N", 4))
    y = body.emit("relu", body.emit("mul", x, body.const([1.0, 2.0, 3.0, 4.0])))
    region = body.build(y, body.emit("reduce_sum", y, axes=(1,)))
    bb = Builder("outer")
    x = bb.input(("N", 4))
    f, s = bb.emit_multi("fused", x, hint="f", loc="blk", region=region, kind="ew", note='a "b"')
    return bb.build(bb.emit("sub", f, s))


def test_region_node_prints_nested_parses_back_verifies_and_runs():
    g = _fused_graph()
    verify(g)
    assert print_graph(g) == FUSED
    g2 = roundtrip(FUSED)
    assert g2.nodes[0].region is not None and g2.nodes[0].attrs["note"] == 'a "b"'
    x = np.array([[1, -1, 2, 0], [0, 1, 1, 1]], np.float32)
    relu = np.maximum(x * [1, 2, 3, 4], 0)
    want = relu - relu.sum(1, keepdims=True)
    for h in (g, g2):
        np.testing.assert_allclose(interp.run(h, x)[0], want)


def test_region_node_with_a_registered_op_name_is_rejected():
    with pytest.raises(ParseError, match="region node's op must be an identifier that is not "
                                        "a registered op"):
        parse_graph(FUSED.replace("fused(", "add("))


def test_region_consts_are_keyed_by_the_owning_node():
    text = """\
graph @outer(%x: f32[9]) {
  const %c: f32[9]
  %f = fused(%x) : f32[9] {
    graph @body(%x: f32[9]) {
      const %c: f32[9]
      %0 = add(%x, %c) : f32[9]
      return %0
    }
  }
  %0 = mul(%f, %c) : f32[9]
  return %0
}
"""
    outer, inner = np.full(9, 2.0, np.float32), np.full(9, 1.0, np.float32)
    g = roundtrip(text, consts={"c": outer, "f/c": inner})
    assert set(const_names(g)) == {"c", "f/c"}
    np.testing.assert_array_equal(const_names(g)["f/c"], inner)
    (y,) = interp.run(g, np.zeros(9, np.float32))
    np.testing.assert_array_equal(y, np.full(9, 2.0, np.float32))
