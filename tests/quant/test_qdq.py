"""QDQ insertion: placement (golden IR), weight quantization, numerics of the QDQ form."""
from __future__ import annotations

import numpy as np
import pytest

from vcompile.ir import interp
from vcompile.ir.builder import Builder
from vcompile.ir.graph import Graph
from vcompile.ir.printer import print_graph
from vcompile.quant import quantize
from vcompile.quant.qdq import QuantizeError, plan, quantize_weight

RNG = np.random.default_rng(0)


def _f32(*shape: int, rng: np.random.Generator | None = None) -> np.ndarray:
    return (rng or RNG).standard_normal(shape).astype(np.float32)


def conv_block(seed: int = 0) -> Graph:
    """conv -> relu -> reshape -> transpose -> linear -> softmax, weights drawn from `seed`
    (not from the module's generator, whose state depends on which tests ran before)."""
    r = np.random.default_rng(seed)
    bb = Builder("block")
    x = bb.input((1, 2, 4, 4), hint="x")
    y = bb.emit("conv2d", x, bb.const(_f32(3, 2, 3, 3, rng=r), "w"), bb.const(_f32(3, rng=r), "b"),
                pads=(1, 1, 1, 1), hint="conv")
    y = bb.emit("relu", y, hint="relu")
    y = bb.emit("transpose", bb.emit("reshape", y, shape=(1, 3, 16), hint="r"), perm=(0, 2, 1), hint="t")
    y = bb.emit("linear", y, bb.const(_f32(3, 4, rng=r), "w2"), bb.const(_f32(4, rng=r), "b2"), hint="fc")
    return bb.build(bb.emit("softmax", y, axis=-1, hint="sm"))


EXPECTED_NODES = """\
%x_q = quantize_linear(%x, %x_scale, %x_zp) {axis=1, saturate=true} : i8[1,2,4,4]
%x_dq = dequantize_linear(%x_q, %x_scale, %x_zp) {axis=1} : f32[1,2,4,4]
%w_dq = dequantize_linear(%w_i8, %w_scale, %w_zp) {axis=0} : f32[3,2,3,3]
%conv = conv2d(%x_dq, %w_dq, %b) {dilations=[1,1], groups=1, pads=[1,1,1,1], strides=[1,1]} : f32[1,3,4,4]
%relu = relu(%conv) : f32[1,3,4,4]
%relu_q = quantize_linear(%relu, %relu_scale, %relu_zp) {axis=1, saturate=true} : i8[1,3,4,4]
%relu_dq = dequantize_linear(%relu_q, %relu_scale, %relu_zp) {axis=1} : f32[1,3,4,4]
%r = reshape(%relu_dq) {shape=[1,3,16]} : f32[1,3,16]
%t = transpose(%r) {perm=[0,2,1]} : f32[1,16,3]
%w2_dq = dequantize_linear(%w2_i8, %w2_scale, %w2_zp) {axis=1} : f32[3,4]
%fc = linear(%t, %w2_dq, %b2) : f32[1,16,4]
%fc_q = quantize_linear(%fc, %fc_scale, %fc_zp) {axis=1, saturate=true} : i8[1,16,4]
%fc_dq = dequantize_linear(%fc_q, %fc_scale, %fc_zp) {axis=1} : f32[1,16,4]
%sm = softmax(%fc_dq) {axis=-1} : f32[1,16,4]
%sm_q = quantize_linear(%sm, %sm_scale, %sm_zp) {axis=1, saturate=true} : u8[1,16,4]
%sm_1 = dequantize_linear(%sm_q, %sm_scale, %sm_zp) {axis=1} : f32[1,16,4]
return %sm_1"""


def _node_lines(g: Graph) -> str:
    lines = [ln.strip() for ln in print_graph(g).splitlines()[1:-1]]
    return "\n".join(ln for ln in lines if not ln.startswith("const "))


def test_placement_golden():
    """Inputs first; after relu, not between conv and relu; layout ops bare; biases float;
    per-channel weights (conv axis 0, linear axis 1); softmax u8; the output a DQ."""
    g = conv_block()
    q = quantize(g, calib={"x": _f32(3, 1, 2, 4, 4)})
    assert _node_lines(q) == EXPECTED_NODES
    consts = {v.hint: a for v, a in q.consts.items()}
    assert consts["sm_scale"] == np.float32(2.0 ** -8) and consts["sm_zp"].dtype == np.uint8
    assert consts["w_scale"].shape == (3,) and consts["w2_scale"].shape == (4,)
    assert consts["b"].dtype == np.float32  # biases stay float


def test_activation_scale_is_calibrated_range_over_127():
    g = conv_block()
    xs = _f32(2, 1, 2, 4, 4)
    q = quantize(g, calib={"x": xs}, method="minmax")
    s = {v.hint: float(a) for v, a in q.consts.items() if v.hint == "x_scale"}
    assert s["x_scale"] == pytest.approx(float(np.abs(xs).max()) / 127, rel=1e-6)


def test_qdq_form_is_close_to_float():
    r = np.random.default_rng(1)
    for seed in range(3):
        g = conv_block(seed)
        x = _f32(1, 2, 4, 4, rng=r)
        q = quantize(g, calib={"x": np.concatenate([x[None], _f32(3, 1, 2, 4, 4, rng=r)])})
        yf, yq = interp.run(g, x)[0], interp.run(q, x)[0]
        # a few steps of the logits, then u8 steps of 2^-8 (0.08 the worst of 40 draws)
        assert np.abs(yf - yq).max() < 0.1
    assert not np.array_equal(yf, yq)  # the pairs do round


def test_quantize_weight_per_channel_symmetric():
    w = np.array([[1.0, -2.0], [0.5, 0.25], [0.0, 0.0]], np.float32).T  # [K=2, N=3]
    q, s = quantize_weight(w, axis=1)
    assert q.dtype == np.int8 and s.tolist() == pytest.approx([2 / 127, 0.5 / 127, 1.0])
    assert q.tolist() == [[64, 127, 0], [-127, 64, 0]]
    qt, st = quantize_weight(w, axis=None)
    assert st.shape == () and float(st) == pytest.approx(2 / 127) and int(np.abs(qt).max()) == 127


def _residual() -> Graph:
    """layer_norm -> linear -> gelu -> add(residual) -> add const; an exp the list does not name."""
    bb = Builder("res")
    x = bb.input((1, 5, 8), hint="x")
    h = bb.emit("layer_norm", x, bb.const(np.ones(8, np.float32), "gamma"),
                bb.const(np.zeros(8, np.float32), "beta"), hint="ln")
    h = bb.emit("gelu", bb.emit("linear", h, bb.const(_f32(8, 8), "w"), hint="fc"), hint="act")
    y = bb.emit("add", x, h, hint="res")
    y = bb.emit("add", y, bb.const(_f32(1, 5, 8), "pos"), hint="pos_add")
    y = bb.emit("mul", bb.emit("exp", y, hint="e"), bb.const(np.float32(0.5), "half"), hint="m")
    return bb.build(y)


def test_plan_covers_every_quantized_op_input():
    g = _residual()
    marked = {v.hint for v in plan(g)}
    # the exp output feeds mul (quantized): it gets a pair so the region stays bounded
    assert marked == {"x", "ln", "fc", "act", "res", "pos_add", "e", "m"}


def test_constants_per_tensor_but_ln_params_and_scalar_factors_float():
    q = quantize(_residual(), calib={"x": _f32(2, 1, 5, 8)})
    by_hint = {v.hint: (v, a) for v, a in q.consts.items()}
    assert by_hint["gamma"][1].dtype == np.float32 and by_hint["beta"][1].dtype == np.float32
    assert by_hint["pos_i8"][1].dtype == np.int8 and by_hint["pos_scale"][1].shape == ()
    assert "half_i8" not in by_hint and by_hint["half"][1] == np.float32(0.5)  # x * c: one rescale


def test_fused_graph_is_refused():
    from vcompile import passes as P
    g = P.run(conv_block(), ["canonicalize", "fuse"])
    with pytest.raises(QuantizeError, match="before fusion"):
        quantize(g, calib={"x": _f32(1, 2, 4, 4)})


def test_graph_output_of_a_layout_op_is_dequantized():
    bb = Builder("tail")
    x = bb.input((2, 6), hint="x")
    y = bb.emit("linear", x, bb.const(_f32(6, 3), "w"), hint="fc")
    g = bb.build(bb.emit("reshape", y, shape=(6,), hint="flat"))
    q = quantize(g, calib={"x": _f32(2, 6)})
    assert q.outputs[0].hint == "flat"  # outputs keep their names
    assert q.producers()[q.outputs[0]].op == "dequantize_linear"


def test_attention_inputs_come_from_quantized_values_and_its_bias_stays_float():
    bb = Builder("attn")
    x = bb.input((1, 6, 8), hint="x")
    qkv = bb.emit("linear", x, bb.const(_f32(8, 24), "w"), hint="qkv")
    q, k, v = bb.emit_multi("split", qkv, axis=2, sizes=(8, 8, 8))
    bias = np.zeros((1, 6, 6), np.float32)
    bias[0, :, 0] = -100.0  # a mask beside small terms: an i8 scale would erase the small ones
    bias[0, :, 1] = 0.03
    y = bb.emit("attention", q, k, v, bb.const(bias, "bias"), scale=0.35, hint="att")
    g = bb.build(y)
    qg = quantize(g, calib={"x": _f32(2, 1, 6, 8)})
    att = next(n for n in qg.nodes if n.op == "attention")
    prod = qg.producers()
    assert all(prod[prod[i].inputs[0]].op == "dequantize_linear" for i in att.inputs[:3])  # via split
    assert att.inputs[3] in qg.consts and qg.consts[att.inputs[3]][0, 0, 1] == np.float32(0.03)
    assert prod[qg.outputs[0]].op == "dequantize_linear" and qg.outputs[0].hint == "att"


def test_form_violations_finds_an_unquantized_output():
    from vcompile.quant.qdq import form_violations
    g = conv_block()
    q = quantize(g, calib={"x": _f32(1, 2, 4, 4)})
    assert form_violations(q) == []
    assert form_violations(g) == ["conv2d %conv: input 0 (%x) is not dequantized",
                                  "conv2d %conv: input 1 (%w) is not dequantized",
                                  "conv2d %conv: output is read unquantized",  # through relu
                                  "relu %relu: output is read unquantized",
                                  "linear %fc: input 0 (%t) is not dequantized",
                                  "linear %fc: input 1 (%w2) is not dequantized",
                                  "linear %fc: output is read unquantized",
                                  "softmax %sm: input 0 (%fc) is not dequantized",
                                  "softmax %sm: output is read unquantized"]


def test_relu_after_concat_gets_its_own_pair():
    """Only contractions and add/sub/mul/div absorb a following relu."""
    bb = Builder("cat")
    x = bb.input((1, 2, 3), hint="x")
    y = bb.emit("relu", bb.emit("concat", x, x, axis=1, hint="cat"), hint="act")
    g = bb.build(bb.emit("linear", y, bb.const(_f32(3, 2), "w"), hint="fc"))
    assert {v.hint for v in plan(g)} == {"x", "cat", "act", "fc"}
    q = quantize(g, calib={"x": _f32(1, 2, 3)})
    from vcompile.quant.qdq import form_violations
    assert form_violations(q) == []
