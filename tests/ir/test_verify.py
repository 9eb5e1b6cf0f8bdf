"""Every kind of malformed graph is rejected with a message naming the node and its loc;
ParseError and InterpError messages say what is wrong and where."""
from __future__ import annotations

import re

import numpy as np
import pytest

from vcompile.ir import (
    Attrs,
    Builder,
    Graph,
    Node,
    ParseError,
    TensorType,
    Value,
    VerifyError,
    interp,
    parse_graph,
    verify,
)
from vcompile.ir.interp import InterpError

F23 = TensorType("f32", (2, 3))


def _x() -> Value:
    return Value(F23, "x")


def _graph(nodes: list[Node], inputs: list[Value], outputs: list[Value],
           consts: dict[Value, np.ndarray] | None = None) -> Graph:
    return Graph("bad", tuple(inputs), tuple(nodes), tuple(outputs), consts or {})


def _in(line: str) -> str:
    """The `in:` part of a message, matched literally, and the loc line after it."""
    loc = "" if line.endswith("{") else ' loc("src/n")'
    return re.escape(f"\n  in: {line}{loc}\n  from source node 'src/n'")


def test_a_good_graph_verifies_and_is_returned():
    bb = Builder()
    g = bb.build(bb.emit("relu", bb.input((2,))))
    assert verify(g) is g


def test_use_before_def_is_not_topological():
    x = _x()
    a, b = Value(F23, "a"), Value(F23, "b")
    n1 = Node("relu", (a,), (b,), loc="src/n")
    n2 = Node("neg", (x,), (a,))
    with pytest.raises(VerifyError, match=r"input 0 of relu \(f32\[2,3\]\) is used before it is "
                       r"defined; nodes must be in topological order" + _in("%b = relu(%a) : f32[2,3]")):
        verify(_graph([n1, n2], [x], [b]))


def test_value_defined_twice():
    x = _x()
    a = Value(F23, "a")
    nodes = [Node("relu", (x,), (a,)), Node("neg", (x,), (a,), loc="src/n")]
    with pytest.raises(VerifyError, match=r"value %a is defined twice \(again as an output of "
                       r"neg\); each SSA value has exactly one definition"
                       + _in("%a = neg(%x) : f32[2,3]")):
        verify(_graph(nodes, [x], [a]))
    with pytest.raises(VerifyError, match=r"value %x is defined twice \(again as a graph input\)"):
        verify(_graph([], [x, x], [x]))


def test_unknown_op():
    x = _x()
    y = Value(F23, "y")
    with pytest.raises(VerifyError, match=r"unknown op 'rleu'; did you mean relu\? \(the op "
                       r"table is vcompile.ir.ops.OPS\)" + _in("%y = rleu(%x) : f32[2,3]")):
        verify(_graph([Node("rleu", (x,), (y,), loc="src/n")], [x], [y]))


def test_wrong_arity():
    x = _x()
    y = Value(F23, "y")
    with pytest.raises(VerifyError, match=r"add takes 2 inputs, got 1"
                       + _in("%y = add(%x) : f32[2,3]")):
        verify(_graph([Node("add", (x,), (y,), loc="src/n")], [x], [y]))


def test_unknown_attr():
    x = _x()
    y = Value(F23, "y")
    n = Node("softmax", (x,), (y,), Attrs(axis=-1, dim=1), loc="src/n")
    with pytest.raises(VerifyError, match=r"softmax: unknown attr\(s\) dim; known: axis"
                       + _in("%y = softmax(%x) {axis=-1, dim=1} : f32[2,3]")):
        verify(_graph([n], [x], [y]))


def test_missing_required_attr():
    x = _x()
    y = Value(TensorType("f32", (6,)), "y")
    with pytest.raises(VerifyError, match=r"reshape: missing required attr 'shape'"
                       + _in("%y = reshape(%x) : f32[6]")):
        verify(_graph([Node("reshape", (x,), (y,), loc="src/n")], [x], [y]))


def test_missing_defaulted_attr():
    x = _x()
    y = Value(F23, "y")
    with pytest.raises(VerifyError, match=r"softmax lacks attrs axis: nodes carry every attr; "
                       r"build them with Builder.emit" + _in("%y = softmax(%x) : f32[2,3]")):
        verify(_graph([Node("softmax", (x,), (y,), loc="src/n")], [x], [y]))


def test_attr_of_the_wrong_kind():
    x = _x()
    y = Value(F23, "y")
    n = Node("softmax", (x,), (y,), Attrs(axis="last"), loc="src/n")
    with pytest.raises(VerifyError, match=r"softmax: attr axis='last' is not of kind int"
                       + _in('%y = softmax(%x) {axis="last"} : f32[2,3]')):
        verify(_graph([n], [x], [y]))


def test_attr_not_in_canonical_form():
    x = _x()
    y = Value(F23, "y")
    n = Node("clip", (x,), (y,), Attrs(min=0, max=6.0), loc="src/n")
    with pytest.raises(VerifyError, match=r"clip has attrs not in canonical form \(min=0; "
                       + ".*" + _in("%y = clip(%x) {max=6.0, min=0} : f32[2,3]")):
        verify(_graph([n], [x], [y]))


def test_declared_output_type_differs_from_inference():
    x = _x()
    y = Value(TensorType("f32", (3, 2)), "y")
    with pytest.raises(VerifyError, match=r"relu declares output type f32\[3,2\] but its inputs "
                       r"infer f32\[2,3\]" + _in("%y = relu(%x) : f32[3,2]")):
        verify(_graph([Node("relu", (x,), (y,), loc="src/n")], [x], [y]))


def test_ill_typed_inputs():
    x, w = _x(), Value(F23, "w")
    y = Value(TensorType("f32", (2, 3)), "y")
    with pytest.raises(VerifyError, match=r"matmul: inner dims differ: \[2,3\] @ \[2,3\]"
                       + _in("%y = matmul(%x, %w) : f32[2,3]")):
        verify(_graph([Node("matmul", (x, w), (y,), loc="src/n")], [x, w], [y]))


def test_undefined_graph_output():
    x = _x()
    with pytest.raises(VerifyError, match=r"graph output %ghost \(f32\[2,3\]\) is not defined by "
                       "any input, constant or node of the graph"):
        verify(_graph([], [x], [Value(F23, "ghost")]))


def test_const_array_not_matching_its_type():
    c = Value(TensorType("f32", (3,)), "c")
    with pytest.raises(VerifyError, match=r"constant %c is declared f32\[3\] but holds an array "
                       r"of shape \[2\] and dtype float32"):
        verify(_graph([], [], [c], {c: np.zeros(2, np.float32)}))
    with pytest.raises(VerifyError, match=r"dtype float64"):
        verify(_graph([], [], [c], {c: np.zeros(3)}))
    s = Value(TensorType("f32", ("N",)), "s")
    with pytest.raises(VerifyError, match=r"constants need static types"):
        verify(_graph([], [], [s], {s: np.zeros(3, np.float32)}))


def _region(bad: bool) -> Graph:
    a = Value(F23, "a")
    b = Value(F23, "b")
    return _graph([Node("relu", (b if bad else a,), (b,))], [a], [b])


def test_bad_region():
    x = _x()
    y = Value(F23, "y")
    n = Node("fused", (x,), (y,), loc="src/n", region=_region(bad=True))
    with pytest.raises(VerifyError, match=r"(?s)the region of fused is malformed: input 0 of relu "
                       r".*is used before it is defined.*" + _in('%y = fused(%x) : f32[2,3] loc("src/n") {')):
        verify(_graph([n], [x], [y]))


def test_region_typing():
    x = Value(TensorType("f32", (3, 2)), "x")
    y = Value(F23, "y")
    n = Node("fused", (x,), (y,), loc="src/n", region=_region(bad=False))
    with pytest.raises(VerifyError, match=r"fused: input 0 is f32\[3,2\] but region input 0 is "
                       r"f32\[2,3\]"):
        verify(_graph([n], [x], [y]))
    n = Node("fused", (x, x), (y,), region=_region(bad=False))
    with pytest.raises(VerifyError, match=r"fused: 2 inputs for a region of 1"):
        verify(_graph([n], [x], [y]))
    x = _x()
    n = Node("relu", (x,), (y,), region=_region(bad=False))
    with pytest.raises(VerifyError, match=r"region node's op must be an identifier that is not a "
                       r"registered op \(such as 'fused'\), got 'relu'"):
        verify(_graph([n], [x], [y]))


# ---- ParseError ------------------------------------------------------------------------

GOOD = """\
graph @g(%x: f32[2,3]) {
  %y = relu(%x) : f32[2,3]
  return %y
}
"""


@pytest.mark.parametrize("old, new, message", [
    ("relu(%x)", "relu(%x) $", r"line 2: unexpected text '\$ : f32\[2,3\]': %y = relu\(%x\) \$ : f32\[2,3\]"),
    ("relu(%x)", "relu(%z)", r"line 2: %z is used before it is defined: %y = relu\(%z\)"),
    ("return %y", "return %q", r"line 3: %q is used before it is defined: return %q"),
    ("%y = relu", "%x = relu", r"line 2: %x is defined twice: %x = relu\(%x\)"),
    (": f32[2,3]\n  return", ": f32[3,2]\n  return",
     r"line 2: declared type f32\[3,2\] but relu infers f32\[2,3\]: %y = relu"),
    ("relu(%x)", "relu(%x, %x)", r"line 2: relu takes 1 inputs, got 2: %y = relu\(%x, %x\)"),
    ("relu(%x)", "frob(%x)", r"line 2: unknown op 'frob'"),
    ("relu(%x)", "relu(%x) {alpha=1.0}", r"line 2: relu: unknown attr\(s\) alpha; known: none"),
    ("}\n", "", r"unexpected end of text: a graph is missing its closing '}'"),
    ("}\n", "}\n}\n", r"line 5: text after the graph's closing brace: }"),
    ("f32[2,3])", "f32[2,3)", r"line 1: expected a dim or '\]', found '\)': graph @g"),
    ("f32[2,3])", "f32[2,-3])", r"line 1: bad dim -3 in shape \(2, -3\)"),
    ("f32[2,3])", "q32[2,3])", r"line 1: unknown dtype 'q32'"),
    ("%y = relu(%x) : f32[2,3]", "%y, %z = relu(%x) : f32[2,3]", r"line 2: 2 results but 1 types"),
    ("return %y", "return %y %x", r"line 3: unexpected '%x' after the return values"),
])
def test_parse_errors(old: str, new: str, message: str):
    assert old in GOOD
    with pytest.raises(ParseError, match=message):
        parse_graph(GOOD.replace(old, new, 1))


@pytest.mark.parametrize("const, message", [
    ("const %c: f32[3] = [1.0, 2.0]", r"line 2: 2 values given for a constant of type f32\[3\]"),
    ("const %c: i64[2] = [1.5, 2]", r"line 2: float value in a constant of type i64\[2\]"),
    ("const %c: u8[1] = [300]", r"line 2: bad value for a constant of type u8\[1\]"),
    ("const %c: f32[N]", r"line 2: no value given for a constant of symbolic type f32\[N\]"),
    ("const %c: f32[2] = [1.0, 2.0] x", r"line 2: unexpected 'x' after the constant"),
    ("const %c: f32[] = [1.0]", r"line 2: 1 values given for a constant of type f32\[\]"),
])
def test_parse_errors_in_constants(const: str, message: str):
    with pytest.raises(ParseError, match=message):
        parse_graph(GOOD.replace("  %y", f"  {const}\n  %y"))


def test_parse_error_for_a_dict_const_of_the_wrong_type():
    text = GOOD.replace("  %y", "  const %c: f32[3]\n  %y")
    with pytest.raises(ParseError, match=r"value given for %c has shape \(2,\) and dtype float32, "
                       r"not f32\[3\]"):
        parse_graph(text, consts={"c": np.zeros(2, np.float32)})


def test_parse_error_for_a_duplicate_attr():
    with pytest.raises(ParseError, match=r"attr axis is given twice"):
        parse_graph(GOOD.replace("relu(%x)", "softmax(%x) {axis=0, axis=1}"))


# ---- InterpError -----------------------------------------------------------------------

def _two_inputs() -> Graph:
    bb = Builder("g")
    x, y = bb.input(("N", 3), hint="x"), bb.input(("N", 3), hint="y")
    return bb.build(bb.emit("add", x, y))


def test_interp_wrong_input_count():
    with pytest.raises(InterpError, match=r"graph @g takes 2 inputs, got 1"):
        interp.run(_two_inputs(), np.zeros((2, 3), np.float32))


def test_interp_wrong_dtype_and_shape():
    g = _two_inputs()
    with pytest.raises(InterpError, match=r"input 0 \(%x\) must be f32\[N,3\], got f64\[2,3\]"):
        interp.run(g, np.zeros((2, 3)), np.zeros((2, 3), np.float32))
    with pytest.raises(InterpError, match=r"input 0 \(%x\) must be f32\[N,3\], got f32\[2,4\]"):
        interp.run(g, np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32))


def test_interp_symbolic_dim_mismatch_between_inputs():
    with pytest.raises(InterpError, match=r"input 1 \(%y\) must be f32\[N,3\] \(N=2 from earlier "
                       r"inputs\), got f32\[5,3\]"):
        interp.run(_two_inputs(), np.zeros((2, 3), np.float32), np.zeros((5, 3), np.float32))


def test_interp_failing_op_names_the_node():
    bb = Builder("g")
    x = bb.input(("N",))
    g = bb.build(bb.emit("reshape", x, shape=(2, "M"), loc="src/r"))  # M is never bound
    with pytest.raises(InterpError, match=r"evaluating reshape failed: .*\n  in: %0 = reshape\(%x\)"
                       r" \{shape=\[2,\"M\"\]\} : f32\[2,M\] loc\(\"src/r\"\)\n  from source node 'src/r'"):
        interp.run(g, np.zeros(4, np.float32))
