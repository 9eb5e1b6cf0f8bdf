"""TensorType: validation, printing, symbolic matching; dtype names."""
from __future__ import annotations

import numpy as np
import pytest

from vcompile.ir import TensorType
from vcompile.ir.types import dtype_of


def test_printing_and_properties():
    t = TensorType("f32", (1, "N", 3))
    assert str(t) == "f32[1,N,3]" and t.rank == 3 and not t.is_static
    assert str(TensorType("i64", ())) == "i64[]"
    assert TensorType("f16", (2, 3)).size == 6
    assert TensorType("bool", ()).size == 1
    assert t.with_dtype("f64") == TensorType("f64", (1, "N", 3))
    assert t.with_shape((2,)).shape == (2,)
    assert TensorType("u8", (1,)).np_dtype == np.uint8


def test_numpy_ints_and_lists_normalize():
    t = TensorType("f32", [np.int64(2), "N"])  # type: ignore[arg-type]
    assert t == TensorType("f32", (2, "N")) and hash(t) == hash(TensorType("f32", (2, "N")))
    assert type(t.shape[0]) is int and isinstance(t.shape, tuple)
    assert TensorType.of(np.zeros((2, 3), np.float32)) == TensorType("f32", (2, 3))


@pytest.mark.parametrize("dtype, shape, message", [
    ("float32", (1,), r"unknown dtype 'float32'; expected one of f16, bf16, f32"),
    ("f32", (-1,), r"bad dim -1 in shape \(-1,\): dims are ints >= 0 or names"),
    ("f32", (True,), r"bad dim True"),
    ("f32", ("2x",), r"bad dim '2x'"),
    ("f32", (1.0,), r"bad dim 1.0"),
])
def test_invalid_types(dtype: str, shape: tuple, message: str):
    with pytest.raises(TypeError, match=message):
        TensorType(dtype, shape)


def test_size_of_a_symbolic_type_is_an_error():
    with pytest.raises(ValueError, match=r"f32\[N\] has symbolic dims; its size is unknown"):
        _ = TensorType("f32", ("N",)).size


def test_matches_binds_symbols_consistently():
    t = TensorType("f32", ("N", "N", 3))
    assert t.matches(np.zeros((2, 2, 3), np.float32))
    assert not t.matches(np.zeros((2, 4, 3), np.float32))
    assert not t.matches(np.zeros((2, 2, 3), np.float64))
    assert not t.matches(np.zeros((2, 2), np.float32))
    env = {"N": 5}
    assert not t.matches(np.zeros((2, 2, 3), np.float32), env)
    env = {}
    assert TensorType("f32", ("N", 3)).matches(np.zeros((4, 3), np.float32), env) and env == {"N": 4}


def test_dtype_of():
    assert dtype_of(np.zeros(1, np.int8)) == "i8"
    assert dtype_of(np.dtype(np.bool_)) == "bool"
    assert dtype_of(np.float32) == "f32" and dtype_of(np.float16(1)) == "f16"
    with pytest.raises(TypeError, match=r"numpy dtype complex64 has no IR dtype"):
        dtype_of(np.complex64)


# ---- the data model: Attrs equality, Node/Graph normalization, read-only consts ----------

def test_attrs_equal_exactly_when_they_print_the_same():
    from vcompile.ir import Attrs
    assert Attrs(a=1, b=(1, 2)) == {"b": [1, 2], "a": 1}  # dicts compare after freezing
    assert Attrs(a=1) != Attrs(a=1.0) and Attrs(a=1) != Attrs(a=True)
    assert Attrs(a=float("nan")) == Attrs(a=float("nan"))
    assert Attrs(a=0.0) != Attrs(a=-0.0)
    assert hash(Attrs(a=(1, 2))) == hash(Attrs({"a": [1, 2]}))
    assert len({Attrs(a=1), Attrs(a=1.0), Attrs(a=True)}) == 3
    assert Attrs(a=1) != {"a": object()} and Attrs() != 3
    assert list(Attrs(b=1, a=2)) == ["a", "b"]
    assert Attrs(a=np.array([1, 2])) == Attrs(a=(1, 2))
    with pytest.raises(TypeError, match=r"attrs hold scalars, strings and tuples"):
        Attrs(w={"nested": 1})


def test_node_and_graph_store_frozen_forms():
    from vcompile.ir import Attrs, Graph, Node, Value
    x = Value(TensorType("f32", (2,)))
    y = Value(TensorType("f32", (2,)))
    n = Node("relu", [x], [y], {"z": 1})  # type: ignore[arg-type]
    assert n.inputs == (x,) and n.outputs == (y,) and n.attrs == Attrs(z=1)
    assert isinstance(n.attrs, Attrs)
    g = Graph("g", [x], [n], [y])  # type: ignore[arg-type]
    assert isinstance(g.nodes, tuple) and isinstance(g.inputs, tuple)


def test_graph_consts_are_read_only_copies_unless_already_read_only():
    from vcompile.ir import Graph, Value
    c, d, e = (Value(TensorType("f32", (2,))) for _ in range(3))
    mine = np.zeros(2, np.float32)
    frozen = np.ones(2, np.float32)
    frozen.flags.writeable = False
    base = np.zeros(4, np.float32)
    view = base[:2]
    view.flags.writeable = False  # read-only, but its base can still change
    consts = {c: mine, d: frozen, e: view}
    g = Graph("g", (), (), (c,), consts)
    assert mine.flags.writeable and g.consts[c] is not mine  # the caller's array is untouched
    assert not g.consts[c].flags.writeable
    assert g.consts[d] is frozen  # shared: passes that rebuild graphs copy no weights
    assert g.consts[e] is not view
    base[0] = 7.0
    mine[0] = 7.0
    consts.clear()
    assert g.consts[c][0] == 0.0 and g.consts[e][0] == 0.0 and len(g.consts) == 3
    assert Graph("h", (), (), (c,), g.consts).consts[c] is g.consts[c]
