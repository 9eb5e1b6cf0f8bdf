"""The reference interpreter: hand-computed results, symbolic batch binding, freeing of
dead intermediates, and checking of op evals against their declared types."""
from __future__ import annotations

import weakref

import numpy as np
import pytest

from vcompile.ir import OPS, Builder, interp, parse_graph
from vcompile.ir.interp import InterpError
from vcompile.ir.ops import OpDef


def test_hand_computed_arithmetic_with_broadcasting_and_consts():
    g = parse_graph("""\
graph @g(%x: f32[2,3]) {
  const %b: f32[3] = [1.0, 2.0, 3.0]
  %0 = add(%x, %b) : f32[2,3]
  %1 = relu(%0) : f32[2,3]
  %2 = reduce_sum(%1) {axes=[1], keepdims=false} : f32[2]
  return %2, %1
}
""")
    x = np.array([[-5, 0, 1], [1, -3, -1]], np.float32)
    total, act = interp.run(g, x)
    np.testing.assert_array_equal(act, [[0, 2, 4], [2, 0, 2]])
    np.testing.assert_array_equal(total, np.array([6, 4], np.float32))
    assert total.dtype == np.float32


def test_hand_computed_matmul_softmax_and_integer_division():
    bb = Builder()
    x = bb.input((1, 2))
    w = bb.const(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    s = bb.emit("softmax", bb.emit("matmul", x, w))
    i = bb.input((2,), dtype="i64")
    q = bb.emit("div", i, bb.const(np.array([2, 2])))
    sm, quot = interp.run(bb.build(s, q), np.array([[0.0, np.log(3.0)]], np.float32),
                          np.array([7, -7]))
    np.testing.assert_allclose(sm, [[0.25, 0.75]], rtol=1e-6)
    np.testing.assert_array_equal(quot, [3, -3])  # truncates toward zero, as ONNX


def test_reshape_with_a_symbolic_batch_binds_n_from_the_inputs():
    g = parse_graph("""\
graph @g(%x: f32[N,2,3]) {
  %0 = reshape(%x) {shape=["N",6]} : f32[N,6]
  return %0
}
""")
    for n in (1, 4):
        x = np.arange(n * 6, dtype=np.float32).reshape(n, 2, 3)
        (y,) = interp.run(g, x)
        np.testing.assert_array_equal(y, x.reshape(n, 6))


def test_outputs_may_be_inputs_or_consts_and_repeat():
    bb = Builder()
    x = bb.input((2,))
    c = bb.const(np.array([1.0, 2.0], np.float32))
    y = bb.emit("neg", x)
    xa = np.array([3.0, 4.0], np.float32)
    out = interp.run(bb.build(y, x, c, y), xa)
    np.testing.assert_array_equal(out[0], -xa)
    np.testing.assert_array_equal(out[1], xa)
    np.testing.assert_array_equal(out[2], [1, 2])
    assert out[3] is out[0]


def test_dead_intermediates_are_freed(monkeypatch: pytest.MonkeyPatch):
    """x -> relu -> relu -> relu -> relu: when the k-th relu runs, only the (k-1)-th
    result may still be alive; earlier intermediates must have been dropped."""
    relu = OPS["relu"]
    refs: list[weakref.ref[np.ndarray]] = []
    alive_at_call: list[list[bool]] = []

    def spy(xs, attrs):  # type: ignore[no-untyped-def]
        alive_at_call.append([r() is not None for r in refs])
        (out,) = relu.eval(xs, attrs)
        refs.append(weakref.ref(out))
        return (out,)

    monkeypatch.setitem(OPS, "relu", OpDef("relu", relu.arity, relu.attrs, relu.infer, spy,
                                           relu.kind))
    bb = Builder()
    v = bb.input((4,))
    for _ in range(4):
        v = bb.emit("relu", v)
    (out,) = interp.run(bb.build(v), np.ones(4, np.float32))
    assert alive_at_call == [[], [True], [False, True], [False, False, True]]
    assert refs[-1]() is out


def test_an_eval_that_disagrees_with_infer_is_an_error(monkeypatch: pytest.MonkeyPatch):
    neg = OPS["neg"]
    monkeypatch.setitem(OPS, "neg", OpDef("neg", neg.arity, neg.attrs, neg.infer,
                                          lambda xs, a: (xs[0].astype(np.float64),), neg.kind))
    bb = Builder()
    g = bb.build(bb.emit("neg", bb.input((2,))))
    with pytest.raises(InterpError, match=r"neg eval returned f64\[2\] for an output declared "
                       r"f32\[2\] \(a bug in the op's eval or infer\)\n  in: %0 = neg\(%x\)"):
        interp.run(g, np.ones(2, np.float32))


def test_interp_is_deterministic_and_does_not_modify_inputs():
    bb = Builder()
    x = bb.input((3,))
    g = bb.build(bb.emit("exp", bb.emit("neg", x)))
    xa = np.array([0.0, 1.0, 2.0], np.float32)
    a, b = interp.run(g, xa), interp.run(g, xa)
    assert a[0].tobytes() == b[0].tobytes()
    np.testing.assert_array_equal(xa, [0, 1, 2])


def test_ieee_special_values_do_not_warn_or_raise():
    bb = Builder()
    x = bb.input((3,))
    g = bb.build(bb.emit("log", x))
    with np.errstate(all="raise"):
        (y,) = interp.run(g, np.array([0.0, -1.0, 1.0], np.float32))
    assert y[0] == -np.inf and np.isnan(y[1]) and y[2] == 0


def test_axes_naming_one_dim_twice_reduce_and_squeeze_once() -> None:
    from vcompile.ir import Builder, interp
    bb = Builder("dup")
    x = bb.input((1, 3), hint="x")
    s = bb.emit("reduce_sum", x, axes=(1, -1), keepdims=False)
    q = bb.emit("squeeze", x, axes=(0, -2))
    g = bb.build(s, q)
    arr = np.arange(3, dtype=np.float32).reshape(1, 3)
    total, squeezed = interp.run(g, arr)
    assert total.shape == (1,) and total[0] == 3.0
    np.testing.assert_array_equal(squeezed, [0.0, 1.0, 2.0])
