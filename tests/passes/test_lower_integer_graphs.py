"""lower-integer across whole graphs: the QDQ boundary moving through layout ops (per-axis
dequantize included), Q(DQ) folding, float islands, no-op and idempotence, and
hypothesis-generated QDQ graphs."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.passes.qdq_util import float_ops, insert_qdq, output_steps
from tests.passes.test_lower_integer import _conv, _graph, _w, lower
from tests.strategies import GraphContext, graphs
from vcompile import passes
from vcompile.ir import OPS, Builder, Graph, TensorType, Value, interp
from vcompile.passes.infra.manager import PassStat
from vcompile.passes.infra.rewriter import replace_values
from vcompile.passes.integer.lower_integer import lower_integer

LAYOUT_SKIP = ("max_pool2d", "pad", "transpose", "reshape", "concat", "split", "slice", "squeeze",
               "unsqueeze", "gather")


def test_dequantize_sinks_through_layout_ops_to_the_conv() -> None:
    def body(bb: Builder, x: Value, z: Value) -> Value:
        t = bb.emit("max_pool2d", x, kernel=(2, 2), strides=(2, 2))
        t = bb.emit("pad", t, pads=(0, 0, 1, 1, 0, 0, 1, 1))
        t = bb.emit("concat", t, t, axis=1)
        a, b = bb.emit_multi("split", t, axis=1, sizes=(3, 3))
        y = _conv(bb, bb.emit("add", a, b), cout=4)
        y = bb.emit("transpose", bb.emit("reshape", y, shape=(1, 4, 16)), perm=(0, 2, 1))
        idx = bb.const(np.array([0, 2, 5], np.int64), hint="idx")
        y = bb.emit("squeeze", bb.emit("slice", bb.emit("gather", y, idx, axis=1), starts=(0,),
                                        ends=(1,), axes=(0,), steps=(1,)), axes=(0,))
        return bb.emit("linear", bb.emit("unsqueeze", y, axes=(0,)), _w(bb, 4, 3))
    for asym in (False, True):
        _, low, steps, ops = lower(_graph([(1, 3, 8, 8), (1,)], body), asym=asym, skip=LAYOUT_SKIP)
        assert steps <= 1.0
        assert ops["qconv2d"] == 1 and ops["qlinear"] == 1 and ops["qadd"] == 1
        # one quantize at the entry, one dequantize at the exit
        assert ops["quantize_linear"] == 1 and ops["dequantize_linear"] == 1


def _per_axis_weight_graph(layout: str) -> Graph:
    rng = np.random.default_rng(3)
    bb = Builder("per_axis")
    x = bb.input((2, 8))
    s, z = bb.const(np.float32(0.05), hint="s"), bb.const(np.int8(0), hint="zp")
    xq = bb.emit("dequantize_linear", bb.emit("quantize_linear", x, s, z), s, z)
    w = bb.const(rng.integers(-127, 128, (5, 8)).astype(np.int8), hint="wq")
    ws = bb.const((rng.random(5) * 0.01 + 0.001).astype(np.float32), hint="ws")
    wd = bb.emit("dequantize_linear", w, ws, bb.const(np.zeros(5, np.int8), hint="wzp"), axis=0)
    wt = {"transpose": lambda: bb.emit("transpose", wd, perm=(1, 0)),
          "unsqueeze": lambda: bb.emit("squeeze", bb.emit("transpose", bb.emit(
              "unsqueeze", wd, axes=(0,)), perm=(0, 2, 1)), axes=(0,)),
          "reshape": lambda: bb.emit("reshape", wd, shape=(8, 5))}[layout]()
    y = bb.emit("matmul", xq, wt)
    so = bb.const(np.float32(0.02), hint="so")
    return bb.build(bb.emit("dequantize_linear", bb.emit("quantize_linear", y, so, z), so, z))


@pytest.mark.parametrize("layout", ["transpose", "unsqueeze", "reshape"])
def test_per_axis_dequantize_moves_its_axis_or_stays(layout: str) -> None:
    g = _per_axis_weight_graph(layout)
    low = passes.run(g, "lower-integer")
    x = [np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)]
    assert output_steps(g, interp.run(low, *x)[0], interp.run(g, *x)[0]) <= 1.0
    if layout != "reshape":  # DQ(w, axis 0) -> transpose => DQ(transpose(w), axis 1) -> qlinear
        assert float_ops(low) == [] and Counter(n.op for n in low.nodes)["qlinear"] == 1
    else:  # a reshape mixes the channel axis: the weight stays float, so does the matmul
        assert float_ops(low) == ["matmul"]


def test_requantize_of_requantize_and_equal_params_fold() -> None:
    bb = Builder("qdq")
    x = bb.input((2, 6))
    s1, s2 = bb.const(np.float32(0.03), hint="s"), bb.const(np.float32(0.05), hint="s")
    z = bb.const(np.int8(0), hint="zp")
    t = bb.emit("dequantize_linear", bb.emit("quantize_linear", x, s1, z), s1, z)
    t = bb.emit("dequantize_linear", bb.emit("quantize_linear", t, s1, z), s1, z)  # equal: folds
    t = bb.emit("dequantize_linear", bb.emit("quantize_linear", t, s2, z), s2, z)  # other: requantize
    g = bb.build(t)
    low = passes.run(g, "lower-integer")
    ops = Counter(n.op for n in low.nodes)
    assert ops == Counter({"quantize_linear": 1, "requantize": 1, "dequantize_linear": 1})
    xs = [np.linspace(-4, 4, 12, dtype=np.float32).reshape(2, 6)]
    assert output_steps(g, interp.run(low, *xs)[0], interp.run(g, *xs)[0]) <= 1.0


def test_unlowerable_op_stays_a_counted_float_island() -> None:
    def body(bb: Builder, x: Value, y: Value) -> Value:  # a quotient of two activations
        return bb.emit("relu", bb.emit("div", bb.emit("relu", x), y))
    g = _graph([(2, 5), (2, 5)], body)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, 5)).astype(np.float32), rng.random((2, 5)).astype(np.float32) + 0.5]
    qg = insert_qdq(g, xs)
    stats: list[PassStat] = []
    low = passes.run(qg, "lower-integer", stats=stats)
    assert float_ops(low) == ["div"]
    assert stats[0].counts["float island: div"] == 1
    assert Counter(n.op for n in low.nodes)["relu"] == 0  # both relus became integer
    np.testing.assert_array_equal(interp.run(low, *xs)[0], interp.run(qg, *xs)[0])


def _fold_weights(g: Graph) -> Graph:
    """g with each dequantize_linear of constants folded into a float constant."""
    consts, mapping, drop = dict(g.consts), {}, []
    for n in g.nodes:
        if n.op == "dequantize_linear" and all(v in g.consts for v in n.inputs):
            (arr,) = OPS[n.op].eval([g.consts[v] for v in n.inputs], n.attrs)
            mapping[n.outputs[0]] = Value(n.outputs[0].type, "w")
            consts[mapping[n.outputs[0]]] = arr
            drop.append(n)
    return replace_values(g.replace(consts=consts), mapping, drop)


def test_float_weights_are_quantized_again() -> None:
    def body(bb: Builder, x: Value) -> Value:
        y = bb.emit("relu", _conv(bb, x, pads=(1, 1, 1, 1)))
        y = bb.emit("reshape", y, shape=(1, 6, 64))
        return bb.emit("gemm", bb.emit("reduce_mean", y, axes=(2,), keepdims=False),
                       _w(bb, 4, 6), _w(bb, 4, hint="b"), trans_b=True)
    g = _graph([(1, 3, 8, 8)], body)
    xs = [np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)]
    qg = insert_qdq(g, xs)
    folded = passes.run(_fold_weights(qg), [p for p in passes.pipeline(2) if p != "fuse"])
    stats: list[PassStat] = []
    low = passes.run(folded, "lower-integer", stats=stats)
    assert float_ops(low) == [] and stats[0].counts["quantized float weight"] == 2
    assert output_steps(qg, interp.run(low, *xs)[0], interp.run(qg, *xs)[0]) <= 1.0


def test_symbolic_batch() -> None:
    def body(bb: Builder, x: Value) -> Value:
        y = bb.emit("avg_pool2d", _conv(bb, x, pads=(1, 1, 1, 1)), kernel=(2, 2), strides=(2, 2),
                    pads=(1, 1, 0, 0))
        return bb.emit("softmax", bb.emit("reduce_mean", y, axes=(2, 3), keepdims=False))
    g = _graph([("N", 3, 6, 6)], body)  # type: ignore[list-item]
    xs = [np.random.default_rng(4).standard_normal((2, 3, 6, 6)).astype(np.float32)]
    qg = insert_qdq(g, xs)
    low = passes.run(qg, "lower-integer", verify_each=True)
    assert float_ops(low) == []
    assert output_steps(qg, interp.run(low, *xs)[0], interp.run(qg, *xs)[0]) <= 1.0


def test_graph_without_quantize_is_returned_unchanged() -> None:
    g = _graph([(1, 3, 6, 6)], lambda bb, x: bb.emit("relu", _conv(bb, x)))
    assert lower_integer(g) is g


def test_lowering_is_idempotent_and_keeps_float_outputs() -> None:
    g = _graph([(2, 8)], lambda bb, x: bb.emit("gelu", bb.emit("linear", x, _w(bb, 8, 8))))
    _, low, _, _ = lower(g)
    assert lower_integer(low) is low
    assert all(v.dtype == "f32" for v in low.outputs)


# ---- hypothesis: random QDQ graphs of the ops with integer forms -------------------------

def _gen(op: str):  # type: ignore[no-untyped-def]
    def gen(ctx: GraphContext) -> bool:
        x = ctx.pick(lambda v: v.dtype == "f32" and v.type.rank == 2 and v.shape[-1] == 8
                     and v not in ctx.bb.consts)
        if x is None:
            return False
        if op == "linear":
            w, b = ctx.const((8, 8), hint="w"), ctx.const((8,), hint="b")
            ctx.emit("linear", x, w, b)
        elif op in ("add", "mul"):
            y = ctx.pick(lambda v: v.type == x.type and v not in ctx.bb.consts)
            ctx.emit(op, x, y if y is not None else x)
        elif op == "layer_norm":
            ctx.emit(op, x, ctx.const((8,), hint="gamma", positive=True), ctx.const((8,), hint="beta"))
        else:
            ctx.emit(op, x)
        return True
    return gen


GENS = {op: _gen(op) for op in ("linear", "add", "mul", "relu", "gelu", "softmax", "layer_norm",
                                 "hard_swish", "silu")}


@settings(max_examples=25, deadline=None)
@given(graphs(gens=GENS, max_nodes=7, inputs=st.just([TensorType("f32", (3, 8))])), st.booleans())
def test_random_qdq_graphs_lower_completely(g: Graph, asym: bool) -> None:
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 8)).astype(np.float32)]
    qg = insert_qdq(g, xs, asym=asym)
    low = passes.run(qg, "lower-integer", verify_each=True)
    assert float_ops(low) == []
    assert lower_integer(low) is low
    # NOTE: a layer_norm over a row whose spread is a few quantization steps turns an
    # upstream one-step difference into a large one (the QDQ simulation has it too, with
    # other roundings); test_lower_integer.py bounds layer_norm on its own.
    if any(n.op == "layer_norm" for n in g.nodes):
        return
    for got, want in zip(interp.run(low, *xs), interp.run(qg, *xs), strict=True):
        if want.dtype.kind != "f":
            np.testing.assert_array_equal(got, want)
            continue
        # one step per op on the way, loosely: errors pass through later ops
        scale = float(np.abs(want).max()) + 1e-6
        assert np.abs(got - want).max() <= 0.1 * scale + 1e-3
