"""lower-integer on hand-built QDQ graphs, one or two per rule: after lowering no float op
is left in the integer region, and the interpreter's output is within a stated number of
output quantization steps of the QDQ graph's (the float simulation of the quantized
model): 1 for the exact rules (rounding ties and the dyadic multipliers' last bit), more
for the I-ViT approximations (Shiftmax, ShiftGELU, integer LayerNorm)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from tests.passes.qdq_util import float_ops, insert_qdq, output_steps
from vcompile import passes
from vcompile.ir import Builder, Graph, Value, interp, verify
from vcompile.passes.infra.manager import PassStat

RNG = np.random.default_rng(0)


def _graph(shapes: list[tuple[int, ...]], body: Callable[..., Value], name: str = "g") -> Graph:
    bb = Builder(name)
    xs = [bb.input(s, hint=f"x{i}") for i, s in enumerate(shapes)]
    return bb.build(body(bb, *xs))


def _w(bb: Builder, *shape: int, hint: str = "w", scale: float = 0.5) -> Value:
    return bb.const((RNG.standard_normal(shape) * scale).astype(np.float32), hint=hint)


def lower(g: Graph, *, asym: bool = False, skip: tuple[str, ...] = (), seed: int = 0,
          scale: float = 1.0) -> tuple[Graph, Graph, float, Counter[str]]:
    """(QDQ graph, lowered graph, largest error in output steps, ops of the lowered graph)."""
    rng = np.random.default_rng(seed)
    xs = [(rng.standard_normal(v.shape) * scale).astype(np.float32) for v in g.inputs]
    qg = insert_qdq(g, xs, asym=asym, skip=skip)
    low = passes.run(qg, "lower-integer", verify_each=True)
    verify(low)
    assert float_ops(low) == [], f"float ops left: {float_ops(low)}"
    steps = output_steps(qg, interp.run(low, *xs)[0], interp.run(qg, *xs)[0])
    return qg, low, steps, Counter(n.op for n in low.nodes)


def _conv(bb: Builder, x: Value, cout: int = 6, **attrs: object) -> Value:
    return bb.emit("conv2d", x, _w(bb, cout, x.shape[1], 3, 3), _w(bb, cout, hint="b"), **attrs)


@pytest.mark.parametrize("asym", [False, True])
@pytest.mark.parametrize("act", ["relu", "relu6", "none"])
def test_conv_with_fused_activation_is_exact(asym: bool, act: str) -> None:
    def body(bb: Builder, x: Value) -> Value:
        y = _conv(bb, x, pads=(1, 1, 1, 1), strides=(2, 2))
        return {"relu": lambda: bb.emit("relu", y), "relu6": lambda: bb.emit("clip", y, min=0, max=6),
                "none": lambda: y}[act]()
    skip = ("conv2d",) if act != "none" else ()
    _, low, steps, ops = lower(_graph([(1, 3, 9, 9)], body), asym=asym, skip=skip)
    assert steps <= 1.0
    assert ops["qconv2d"] == 1 and ops["requantize"] == 1 and ops["conv2d"] == 0
    rq = next(n for n in low.nodes if n.op == "requantize")
    zp = int(rq.attrs["zero_point"])  # type: ignore[arg-type]
    assert rq.attrs["clip"] == {"relu": (zp, 255 if asym else 127), "none": ()}.get(act, rq.attrs["clip"])


def test_depthwise_conv_and_linear_and_matmuls_are_exact() -> None:
    def body(bb: Builder, x: Value, z: Value) -> Value:
        y = bb.emit("conv2d", x, _w(bb, 4, 1, 3, 3), _w(bb, 4, hint="b"), groups=4, pads=(1, 1, 1, 1))
        t = bb.emit("reshape", y, shape=(1, 4, 16))
        t = bb.emit("linear", t, _w(bb, 16, 8), _w(bb, 8, hint="b"))
        t = bb.emit("matmul", t, _w(bb, 8, 5))
        return bb.emit("matmul", t, z)
    for asym in (False, True):
        _, _, steps, ops = lower(_graph([(1, 4, 4, 4), (1, 5, 3)], body), asym=asym)
        assert steps <= 1.0
        assert ops["qlinear"] == 2 and ops["qmatmul"] == 1 and ops["qconv2d"] == 1


@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_is_a_qlinear(trans_b: bool) -> None:
    def body(bb: Builder, x: Value) -> Value:
        w = _w(bb, 5, 8) if trans_b else _w(bb, 8, 5)
        return bb.emit("gemm", x, w, _w(bb, 5, hint="b"), trans_b=trans_b)
    _, _, steps, ops = lower(_graph([(3, 8)], body), asym=True)
    assert steps <= 1.0 and ops["qlinear"] == 1


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
@pytest.mark.parametrize("asym", [False, True])
def test_binary_ops_of_two_activations_are_exact(op: str, asym: bool) -> None:
    g = _graph([(2, 8), (1, 8)], lambda bb, a, b: bb.emit(op, a, b))
    _, _, steps, ops = lower(g, asym=asym)
    assert steps <= 1.0 and ops["qmul" if op == "mul" else "qadd"] == 1


def test_relu_after_a_residual_add_is_the_qadd_clip() -> None:
    g = _graph([(2, 8), (2, 8)], lambda bb, a, b: bb.emit("relu", bb.emit("add", a, b)))
    _, low, steps, ops = lower(g, skip=("add",))
    assert steps <= 1.0 and ops["qadd"] == 1 and ops["requantize"] == 0
    assert next(n for n in low.nodes if n.op == "qadd").attrs["clip"] == (0, 127)


@pytest.mark.parametrize("op", ["add", "mul"])
def test_binary_op_with_a_float_constant(op: str) -> None:
    g = _graph([(2, 8)], lambda bb, a: bb.emit(op, a, _w(bb, 8, hint="c")))
    _, _, steps, _ = lower(g)
    # the constant is quantized too (i16 for add, i8 for mul): a little more than one step
    assert steps <= 1.5


@pytest.mark.parametrize("op", ["relu", "clip", "hard_sigmoid", "hard_swish"])
@pytest.mark.parametrize("asym", [False, True])
def test_piecewise_linear_activations(op: str, asym: bool) -> None:
    attrs = {"clip": {"min": -0.5, "max": 1.0}}.get(op, {})
    g = _graph([(2, 3, 5)], lambda bb, x: bb.emit(op, x, **attrs))
    _, _, steps, ops = lower(g, asym=asym, scale=3.0)
    assert ops[op] == 0
    assert steps <= (1.0 if op in ("relu", "clip", "hard_sigmoid") else 2.0)


@pytest.mark.parametrize("op,tol", [("gelu", 2.0), ("silu", 2.0), ("sigmoid", 1.5)])
def test_smooth_activations_within_tolerance(op: str, tol: float) -> None:
    for asym in (False, True):
        _, _, steps, ops = lower(_graph([(4, 64)], lambda bb, x: bb.emit(op, x)), asym=asym, scale=3.0)
        assert steps <= tol and ops[op] == 0


def test_softmax_to_u8_is_a_lone_shiftmax() -> None:
    g = _graph([(3, 16)], lambda bb, x: bb.emit("softmax", x))
    _, low, steps, ops = lower(g, scale=3.0)
    assert ops["shiftmax"] == 1 and ops["requantize"] == 0 and steps <= 2.0
    sm = next(n for n in low.nodes if n.op == "shiftmax")
    assert sm.attrs["out_dtype"] == "u8" and sm.attrs["out_bits"] == 8


def test_softmax_into_another_scale_requantizes() -> None:
    # NOTE: a factor of fixed sign and spread: one step of the probabilities' own scale
    # (shiftmax against float softmax) is then at most 3 steps of the product's.
    c = np.linspace(0.5, 1.5, 16, dtype=np.float32)
    g = _graph([(3, 16)], lambda bb, x: bb.emit("mul", bb.emit("softmax", x), bb.const(c, hint="c")))
    for seed in range(3):
        _, _, steps, ops = lower(g, scale=3.0, skip=(), seed=seed)
        assert ops["shiftmax"] == 1 and steps <= 3.0


def test_layer_norm_within_tolerance() -> None:
    def body(bb: Builder, x: Value) -> Value:
        gamma = bb.const((1 + 0.2 * RNG.standard_normal(48)).astype(np.float32), hint="gamma")
        return bb.emit("layer_norm", x, gamma, _w(bb, 48, hint="beta", scale=0.1))
    for asym in (False, True):
        _, _, steps, ops = lower(_graph([(2, 5, 48)], body), asym=asym, scale=2.0)
        assert ops["ilayernorm"] == 1 and steps <= 2.0


@pytest.mark.parametrize("asym", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_attention_within_tolerance(with_bias: bool, asym: bool) -> None:
    mask = (RNG.standard_normal((1, 1, 10, 10)) * 2.0).astype(np.float32)
    mask[0, 0, :, 7:] = -np.inf  # a masked key: no weight, also in integers

    def body(bb: Builder, q: Value, k: Value, v: Value) -> Value:
        ins = [q, k, v] + ([bb.const(mask, hint="bias")] if with_bias else [])
        return bb.emit("attention", *ins, scale=0.35)
    g = _graph([(1, 2, 10, 8)] * 3, body)
    _, low, steps, ops = lower(g, scale=2.0, asym=asym)
    assert ops["qmatmul"] == 2 and ops["shiftmax"] == 1 and ops["add"] == int(with_bias)
    # probabilities with 8 bits: each output sums 10 rounded terms
    assert steps <= 3.0


@pytest.mark.parametrize("pads,include,ceil,lowered", [
    ((0, 0, 0, 0), False, False, True), ((1, 1, 1, 1), True, False, True),
    ((1, 0, 1, 1), False, False, True), ((1, 1, 1, 1), False, True, False)])
def test_avg_pool(pads: tuple[int, ...], include: bool, ceil: bool, lowered: bool) -> None:
    g = _graph([(1, 3, 6, 6)], lambda bb, x: bb.emit("avg_pool2d", x, kernel=(3, 3), pads=pads,
                                                      strides=(2, 2), count_include_pad=include,
                                                      ceil_mode=ceil))
    xs = [RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)]
    qg = insert_qdq(g, xs)
    stats: list[PassStat] = []
    low = passes.run(qg, "lower-integer", stats=stats)
    if not lowered:  # ceil mode: windows past the end, not lowered: a float island, counted
        assert float_ops(low) == ["avg_pool2d"]
        assert stats[0].counts["float island: avg_pool2d"] == 1
        return
    assert float_ops(low) == []
    assert output_steps(qg, interp.run(low, *xs)[0], interp.run(qg, *xs)[0]) <= 1.0


@pytest.mark.parametrize("asym", [False, True])
def test_global_average_is_reduce_sum(asym: bool) -> None:
    g = _graph([(1, 4, 5, 5)], lambda bb, x: bb.emit("reduce_mean", x, axes=(2, 3), keepdims=True))
    _, _, steps, ops = lower(g, asym=asym)
    assert ops["reduce_sum"] == 1 and ops["cast"] == 1 and ops["sub"] == int(asym) and steps <= 1.0


@pytest.mark.parametrize("op,c", [("div", 2.0), ("mul", -0.75)])
def test_scaling_by_a_scalar_constant_is_one_exact_rescale(op: str, c: float) -> None:
    g = _graph([(2, 8)], lambda bb, x: bb.emit(op, x, bb.const(np.float32(c), hint="c")))
    _, low, steps, ops = lower(g, asym=True)
    assert steps <= 1.0 and ops["qadd"] == 1 and ops["qmul"] == 0
    qadd = next(n for n in low.nodes if n.op == "qadd")
    assert qadd.attrs["b_mult"] == 0 and (int(qadd.attrs["a_mult"]) < 0) == (c < 0)  # type: ignore[arg-type]


def test_reduce_sum_and_reduce_max() -> None:
    def body(bb: Builder, x: Value) -> Value:
        return bb.emit("reduce_sum", bb.emit("reduce_max", x, axes=(2,), keepdims=False), axes=(1,))
    _, _, steps, ops = lower(_graph([(2, 6, 5)], body), skip=("reduce_max",))
    assert steps <= 1.0 and ops["reduce_sum"] == 1 and ops["reduce_max"] == 1


def test_group_norm_with_one_group_is_an_ilayernorm() -> None:
    def body(bb: Builder, x: Value) -> Value:
        return bb.emit("group_norm", x, _w(bb, 6, hint="gamma"), _w(bb, 6, hint="beta"), num_groups=1)
    _, low, steps, ops = lower(_graph([(1, 6, 4, 4)], body), scale=2.0)
    assert ops["ilayernorm"] == 1 and steps <= 2.0
    gamma = low.consts[next(n for n in low.nodes if n.op == "ilayernorm").inputs[1]]
    assert gamma.shape == (6, 1, 1)


def test_class_token_concat_and_pad_value_are_quantized() -> None:
    def body(bb: Builder, x: Value) -> Value:
        t = bb.emit("concat", _w(bb, 1, 1, 8, hint="cls"), x, axis=1)
        return bb.emit("pad", t, pads=(0, 0, 0, 0, 0, 1), value=1.0)
    _, low, steps, ops = lower(_graph([(1, 4, 8)], body))
    assert steps <= 1.0 and ops["concat"] == 1 and ops["pad"] == 1
    assert next(n for n in low.nodes if n.op == "concat").inputs[0] in low.consts  # an i8 constant


def test_onnx_style_i32_bias_is_used_as_is() -> None:
    bb = Builder("onnx_bias")
    x = bb.input((1, 2, 5, 5))
    sx, sw, so = np.float32(0.02), np.full(3, 0.01, np.float32), np.float32(0.05)
    z8 = bb.const(np.int8(0), hint="zp")
    xs = bb.const(sx, hint="s")
    xd = bb.emit("dequantize_linear", bb.emit("quantize_linear", x, xs, z8), xs, z8)
    w = RNG.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8)
    wd = bb.emit("dequantize_linear", bb.const(w, hint="wq"), bb.const(sw, hint="ws"),
                 bb.const(np.zeros(3, np.int8), hint="wzp"), axis=0)
    b = np.array([100, -2000, 37], np.int32)
    bd = bb.emit("dequantize_linear", bb.const(b, hint="bq"), bb.const(sx * sw, hint="bs"),
                 bb.const(np.zeros(3, np.int32), hint="bzp"), axis=0)
    y = bb.emit("conv2d", xd, wd, bd)
    os_ = bb.const(so, hint="so")
    g = bb.build(bb.emit("dequantize_linear", bb.emit("quantize_linear", y, os_, z8), os_, z8))
    low = passes.run(g, "lower-integer")
    conv = next(n for n in low.nodes if n.op == "qconv2d")
    np.testing.assert_array_equal(low.consts[conv.inputs[2]], b)
    xv = [RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)]
    assert float_ops(low) == []
    assert output_steps(g, interp.run(low, *xv)[0], interp.run(g, *xv)[0]) <= 1.0


@pytest.mark.parametrize("asym", [False, True])
def test_leaky_relu_spelled_with_where_is_an_integer_select(asym: bool) -> None:
    def body(bb: Builder, x: Value) -> Value:
        neg = bb.emit("less", x, bb.const(np.float32(0.0), hint="zero"))
        return bb.emit("where", neg, bb.emit("mul", x, bb.const(np.float32(0.1), hint="a")), x)
    _, low, steps, ops = lower(_graph([(2, 3, 8)], body), asym=asym, skip=("less", "mul"), scale=2.0)
    assert steps <= 1.0 and ops["where"] == 1 and ops["less"] == 1
    cond = next(n for n in low.nodes if n.op == "less")
    assert cond.inputs[0].dtype == ("u8" if asym else "i8")


@pytest.mark.parametrize("asym", [False, True])
def test_other_elementwise_chains_are_exact_lookup_tables(asym: bool) -> None:
    def body(bb: Builder, x: Value) -> Value:  # onnxruntime's QDQ GELU quantizes after erf
        t = bb.emit("erf", bb.emit("div", x, bb.const(np.float32(1.4142135), hint="c")))
        return bb.emit("tanh", bb.emit("exp", t))
    _, low, steps, ops = lower(_graph([(4, 16)], body), asym=asym, skip=("div", "erf", "exp"), scale=2.0)
    assert steps == 0.0 and ops["gather"] == 1 and ops["sub"] == int(not asym)
    lut = next(n for n in low.nodes if n.op == "gather")
    assert low.consts[lut.inputs[0]].shape == (256,)
