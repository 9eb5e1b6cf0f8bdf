"""Builder: types are inferred, defaults filled, and bad ops fail with BuildError."""
from __future__ import annotations

import numpy as np
import pytest

from vcompile.ir import Attrs, Builder, BuildError, TensorType, verify


def test_emit_infers_types_fills_defaults_and_canonicalizes_float_attrs():
    bb = Builder("b")
    x = bb.input(("N", 3))
    y = bb.emit("clip", x, min=0, hint="y", loc="src")
    (n,) = bb.nodes
    assert y.type == TensorType("f32", ("N", 3)) and y.hint == "y" and n.loc == "src"
    assert n.attrs == {"min": 0.0, "max": np.inf}
    assert isinstance(n.attrs["min"], float)
    verify(bb.build(y))


def test_const_dtypes_and_read_only():
    bb = Builder()
    assert bb.const(1.5).dtype == "f32"  # Python floats default to f32
    assert bb.const([1, 2]).dtype == "i64"
    assert bb.const(True).dtype == "bool"
    assert bb.const(np.zeros(2)).dtype == "f64"  # numpy arrays keep their dtype
    assert bb.const([1, 2], dtype="f16").dtype == "f16"
    src = np.zeros(3, np.float32)
    c = bb.const(src)
    g = bb.build(c)
    assert src.flags.writeable and not g.consts[c].flags.writeable
    assert g.consts[c] is bb.consts[c]  # the builder's copy is shared, not copied again


def test_multi_output_ops_need_emit_multi_and_add_no_node():
    bb = Builder()
    x = bb.input((4,))
    with pytest.raises(BuildError, match=r"split has 2 outputs; use emit_multi"):
        bb.emit("split", x, sizes=(2, 2))
    assert bb.nodes == []
    a, b = bb.emit_multi("split", x, sizes=(1, 3))
    assert (a.shape, b.shape) == ((1,), (3,))


@pytest.mark.parametrize("op, shapes, attrs, message", [
    ("rleu", [(2,)], {}, r"unknown op 'rleu'; did you mean relu\?"),
    ("nonsense_op", [(2,)], {}, r"unknown op 'nonsense_op' \(the op table is"),
    ("add", [(2,)], {}, r"add takes 2 inputs, got 1"),
    ("gemm", [(2,)], {}, r"gemm takes 2 to 3 inputs, got 1"),
    ("relu", [(2,), (2,)], {}, r"relu takes 1 inputs, got 2"),
    ("matmul", [(2, 3), (4, 5)], {}, r"matmul: inner dims differ: \[2,3\] @ \[4,5\]"),
    ("add", [(2, 3), (4,)], {}, r"shapes \[2,3\] and \[4\] do not broadcast"),
    ("add", [("N", 3), ("M", 3)], {}, r"shapes \[N,3\] and \[M,3\] do not broadcast"),
    ("reshape", [(2, 3)], {"shape": (4, 2)}, r"reshape: cannot reshape \[2, 3\] into \[4, 2\]"),
    ("reshape", [(2, 3)], {}, r"reshape: missing required attr 'shape'"),
    ("softmax", [(2, 3)], {"axis": 2}, r"softmax: axis 2 is out of range for rank 2"),
    ("softmax", [(2, 3)], {"dim": 1}, r"softmax: unknown attr\(s\) dim; known: axis"),
    ("softmax", [(2, 3)], {"axis": 1.0}, r"softmax: attr axis=1.0 is not of kind int"),
    ("transpose", [(2, 3)], {"perm": (0, 0)}, r"transpose: perm \[0, 0\] is not a permutation"),
    ("concat", [(2, 3), (3, 3)], {"axis": 1}, r"concat: shapes f32\[2,3\], f32\[3,3\] differ off axis 1"),
    ("split", [(4,)], {"sizes": (1, 2)}, r"split: sizes \[1, 2\] do not add up to dim 4"),
    ("linear", [(2, 3), (4, 5)], {}, r"linear: x's last dim 3 differs from w's first 4"),
    ("linear", [(2, 4), (4, 5), (4,)], {}, r"linear: bias must be \[5\], got f32\[4\]"),
    ("attention", [(2, 5, 4), (2, 7, 4)], {}, r"attention takes 3 to 4 inputs, got 2"),
    ("attention", [(2, 5, 4), (2, 7, 3), (2, 7, 6)], {},
     r"attention: q \[..., N, D\], k \[..., M, D\], v \[..., M, E\] expected"),
    ("attention", [(2, 5, 4), (3, 7, 4), (3, 7, 6)], {}, r"attention: batch dims differ"),
    ("attention", [(2, 5, 4), (2, 7, 4), (2, 7, 6), (5, 6)], {},
     r"attention: bias f32\[5,6\] does not broadcast to the scores \[2,5,7\]"),
])
def test_build_errors(op: str, shapes: list[tuple], attrs: dict, message: str):
    bb = Builder()
    xs = [bb.input(s) for s in shapes]
    with pytest.raises(BuildError, match=message):
        bb.emit_multi(op, *xs, **attrs)
    assert bb.nodes == []


def test_dtype_errors():
    bb = Builder()
    x, i = bb.input((2,)), bb.input((2,), dtype="i64")
    with pytest.raises(BuildError, match=r"add: inputs must share one dtype, got f32, i64"):
        bb.emit("add", x, i)
    with pytest.raises(BuildError, match=r"exp: needs a float input, got i64"):
        bb.emit("exp", i)


def test_passing_an_array_instead_of_a_value():
    bb = Builder()
    x = bb.input((2,))
    with pytest.raises(BuildError, match=r"input 1 of add is a ndarray, not a Value; wrap arrays "
                       r"with Builder.const"):
        bb.emit("add", x, np.ones(2, np.float32))  # type: ignore[arg-type]


def test_region_nodes_are_typed_by_their_region():
    body = Builder("body")
    a = body.input((2,), dtype="i64")
    region = body.build(body.emit("cast", a, to="f32"), a)
    bb = Builder()
    x = bb.input((2,), dtype="i64")
    f, same = bb.emit_multi("fused", x, region=region, tag="t")
    assert (f.type, same.type) == (TensorType("f32", (2,)), TensorType("i64", (2,)))
    assert bb.nodes[0].attrs == Attrs(tag="t")
    with pytest.raises(BuildError, match=r"fused: input 0 is f32\[2\] but region input 0 is i64\[2\]"):
        bb.emit_multi("fused", bb.input((2,)), region=region)
    with pytest.raises(BuildError, match=r"region node's op must be an identifier that is not a "
                       r"registered op \(such as 'fused'\), got 'fused.1'"):
        bb.emit_multi("fused.1", x, region=region)
    with pytest.raises(BuildError, match=r"fused: attrs hold scalars|is not allowed"):
        bb.emit_multi("fused", x, region=region, w=object())
