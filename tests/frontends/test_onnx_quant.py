"""Importing already-quantized ONNX models: quantize_static's QDQ and QOperator formats
(tests/quant_models.py) and hand-built integer ops, checked against onnxruntime.

QOperator models import as the integer-only ops of ir/ops/integer.py and must match
onnxruntime within one quantization step of the output. QDQ models import as
quantize_linear/dequantize_linear around float ops (weights stay dequantize_linear of int8
constants); `check_qdq` takes a pass list so the same check runs after `lower-integer`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.quant_models import MODELS, step
from vcompile import passes as vpasses
from vcompile.frontends import UnsupportedOp
from vcompile.frontends.onnx import ConversionError, load
from vcompile.ir import Graph, interp, op_counts, verify
from vcompile.ir.types import FLOAT_DTYPES

BOUNDARY = {"quantize_linear", "dequantize_linear"}
# Passes the QDQ check runs after import; add ("lower-integer",) once that pass lands.
QDQ_PASSES: list[tuple[str, ...]] = [(), ("lower-integer",)]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:  # float exports shared
    return tmp_path_factory.mktemp("quant_models")


def import_and_run(model: Path | onnx.ModelProto, inputs: Sequence[np.ndarray],
                   passes: Sequence[str] = ()) -> tuple[Graph, list[np.ndarray]]:
    """Import (then run `passes`), verify, and interpret on `inputs`."""
    g = verify(load(model if isinstance(model, onnx.ModelProto) else str(model)))
    if passes:
        g = verify(vpasses.run(g, list(passes)))
    return g, interp.run(g, *inputs)


def steps_off(path: Path, ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|ours - ref| in quantization steps of the output (1e-4 slack for float noise)."""
    return np.abs(ours.astype(np.float64) - ref) / step(path) - 1e-4


def float_ops(g: Graph) -> dict[str, int]:
    """Ops with a float output, Q/DQ boundary ops excepted."""
    out: dict[str, int] = {}
    for n in g.nodes:
        if n.op not in BOUNDARY and any(v.type.dtype in FLOAT_DTYPES for v in n.outputs):
            out[n.op] = out.get(n.op, 0) + 1
    return out


def check_qdq(tmp: Path, model: str, per_channel: bool, act: str,
              passes: Sequence[str] = ()) -> Graph:
    """A QDQ model imports (then runs `passes`) and matches onnxruntime's fused integer
    kernels within one output step (TinyMixed: two, see test_qdq_models_match_ort)."""
    path, xs, ref = MODELS[model](tmp, "qdq", per_channel, act)
    g, (y,) = import_and_run(path, xs, passes)
    off = steps_off(path, y, ref[0])
    if model == "mixed":
        assert off.max() <= 2 and (off <= 1).mean() >= 0.9, off.max()
    else:
        assert off.max() <= 1, off.max()
    return g


@pytest.mark.parametrize("passes", QDQ_PASSES, ids=lambda p: ",".join(p) or "import")
@pytest.mark.parametrize("act", ["u8", "i8"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("model", ["cnn", "transformer", "mixed"])
def test_qdq_models_match_ort(models_dir, model, per_channel, act, passes):
    # NOTE: TinyMixed's 2x2 average pools land on rounding ties a quarter of the time, so
    # onnxruntime's fused QLinearAveragePool and its own unfused float graph already differ
    # by one step there, and the concat's requantization to another scale adds one more.
    check_qdq(models_dir, model, per_channel, act, passes)


def test_qdq_weights_stay_dequantized_int8_constants(models_dir):
    path, _, _ = MODELS["cnn"](models_dir, "qdq", True, "u8")
    g = load(str(path))
    assert (op_counts(g)["conv2d"], op_counts(g)["quantize_linear"]) == (3, 9)
    const_dq = [n for n in g.nodes if n.op == "dequantize_linear" and n.inputs[0] in g.consts]
    # 3 conv weights + 3 conv biases (i32) + the gemm's weight and bias
    assert sorted(g.consts[n.inputs[0]].dtype.name for n in const_dq) == ["int32"] * 4 + ["int8"] * 4
    w = [n for n in const_dq if g.consts[n.inputs[0]].dtype == np.int8]
    assert all(n.inputs[1].type.shape in ((8,), (16,), (10,)) for n in w)  # per channel


def test_qdq_u8_symmetric_weights_become_int8(models_dir):
    path, xs, ref = MODELS["cnn"](models_dir, "qdq", True, "u8", weight_type="u8",
                                  extra_options={"WeightSymmetric": True})
    inits = onnx.load(str(path)).graph.initializer
    assert TensorProto.UINT8 in {t.data_type for t in inits if t.name.endswith("_quantized")}
    g, (y,) = import_and_run(path, xs)
    dq = [n for n in g.nodes if n.op == "dequantize_linear" and n.inputs[0] in g.consts]
    weights = [g.consts[n.inputs[0]] for n in dq if g.consts[n.inputs[0]].dtype != np.int32]
    assert len(weights) == 4 and all(w.dtype == np.int8 for w in weights)
    assert all(not g.consts[n.inputs[2]].any() for n in dq)  # zero points 0
    assert steps_off(path, y, ref[0]).max() <= 1


# ---- QOperator -------------------------------------------------------------------------

# mixed: 2 convs + 2 average pools as qconv2d, sigmoid and leaky relu as tables; one of the
# concat's inputs is at the output's scale already, the other is rescaled by a qadd
EXPECTED_QOPERATOR = {
    "cnn": {"quantize_linear": 1, "qconv2d": 4, "requantize": 5, "qadd": 1, "max_pool2d": 1,
            "reshape": 1, "qlinear": 1, "dequantize_linear": 1},
    "mixed": {"quantize_linear": 1, "qconv2d": 4, "requantize": 4, "gather": 2, "cast": 2,
              "qmul": 1, "qadd": 1, "concat": 1, "dequantize_linear": 1},
}


@pytest.mark.parametrize("act", ["u8", "i8"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("model", ["cnn", "mixed"])
def test_qoperator_convnets_import_integer_only(models_dir, model, per_channel, act):
    path, xs, ref = MODELS[model](models_dir, "qoperator", per_channel, act)
    g, (y,) = import_and_run(path, xs)
    assert op_counts(g) == EXPECTED_QOPERATOR[model]
    assert float_ops(g) == {}  # not one float op between the entry Q and the exit DQ
    assert steps_off(path, y, ref[0]).max() <= 1


@pytest.mark.parametrize("act", ["u8", "i8"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_qoperator_transformer(models_dir, per_channel, act):
    path, xs, ref = MODELS["transformer"](models_dir, "qoperator", per_channel, act)
    g, (y,) = import_and_run(path, xs)
    counts = op_counts(g)
    # qkv/proj/fc1/fc2 with constant weights, q@k^T and attn@v at run time
    assert (counts["qlinear"], counts["qmatmul"], counts["shiftmax"]) == (4, 2, 1)
    assert (counts["qadd"], counts["qmul"], counts["requantize"]) == (7, 3, 7)
    assert "matmul" not in counts and "softmax" not in counts
    # quantize_static leaves LayerNormalization, the erf of GELU and the q/k/v split (Gather,
    # then k's transpose) in float between DequantizeLinear and QuantizeLinear
    assert float_ops(g) == {"layer_norm": 2, "div": 1, "erf": 1, "gather": 3, "transpose": 1}
    assert steps_off(path, y, ref[0]).max() <= 1


def test_qoperator_u8_symmetric_weights_become_int8(models_dir):
    path, xs, ref = MODELS["cnn"](models_dir, "qoperator", False, "u8", weight_type="u8",
                                  extra_options={"WeightSymmetric": True})
    g, (y,) = import_and_run(path, xs)
    ws = [g.consts[n.inputs[1]] for n in g.nodes if n.op in ("qconv2d", "qlinear")]
    assert len(ws) == 5 and all(w.dtype == np.int8 for w in ws)
    assert steps_off(path, y, ref[0]).max() <= 1


def test_qoperator_asymmetric_u8_weights_are_refused(models_dir):
    path, _, _ = MODELS["cnn"](models_dir, "qoperator", False, "u8", weight_type="u8")
    with pytest.raises(ConversionError, match=r"\(QLinearConv\): u8 weight minus its zero "
                       r"point\(s\) \[\d+\] spans -?\d+\.\.\d+, which does not fit int8; .*"
                       "WeightSymmetric=True"):
        load(str(path))


# ---- hand-built integer ops ------------------------------------------------------------

U8, I8, F = TensorProto.UINT8, TensorProto.INT8, TensorProto.FLOAT
RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, inits, ms: bool = False) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "q", inputs, outputs,
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 8
    return m


def _ort(m: onnx.ModelProto, *xs: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs, strict=True)})


def _vi(name: str, t: int, shape: Sequence[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, t, list(shape))


def test_conv_integer_with_u8_weight_zero_point_128_is_exact():
    w = RNG.integers(100, 156, (4, 3, 3, 3)).astype(np.uint8)
    node = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], pads=[1, 1, 1, 1],
                            strides=[2, 2])
    m = _model([node], [_vi("x", U8, (1, 3, 7, 7))], [_vi("y", TensorProto.INT32, (1, 4, 4, 4))],
               {"w": w, "xz": np.array(131, np.uint8), "wz": np.array(128, np.uint8)})
    x = RNG.integers(0, 256, (1, 3, 7, 7)).astype(np.uint8)
    g, (y,) = import_and_run(m, [x])
    assert op_counts(g) == {"qconv2d": 1} and g.consts[g.nodes[0].inputs[1]].dtype == np.int8
    np.testing.assert_array_equal(y, _ort(m, x)[0])


@pytest.mark.parametrize("const_b", [True, False], ids=["weight", "runtime"])
def test_matmul_integer_is_exact(const_b):
    a = RNG.integers(0, 256, (2, 5, 6)).astype(np.uint8)
    b = RNG.integers(-128, 128, (6, 3)).astype(np.int8)
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    inits = {"az": np.array(7, np.uint8), "bz": np.array(-3, np.int8)}
    inputs = [_vi("a", U8, a.shape)]
    if const_b:
        inits["b"] = b
    else:
        inputs.append(_vi("b", I8, b.shape))
    m = _model([node], inputs, [_vi("y", TensorProto.INT32, (2, 5, 3))], inits)
    xs = [a] if const_b else [a, b]
    g, (y,) = import_and_run(m, xs)
    assert op_counts(g) == ({"qlinear": 1} if const_b else {"qmatmul": 1})
    np.testing.assert_array_equal(y, _ort(m, *xs)[0])


def _qlinear_conv(x_scale_input: bool = False, x_zp: np.ndarray | None = None) -> onnx.ModelProto:
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    inits = {"xs": np.array(0.02, np.float32), "xz": np.array(3, np.uint8) if x_zp is None else x_zp,
             "w": RNG.integers(-127, 128, (4, 3, 1, 1)).astype(np.int8),
             "ws": np.full(4, 0.01, np.float32), "wz": np.zeros(4, np.int8),
             "ys": np.array(0.05, np.float32), "yz": np.array(128, np.uint8)}
    inputs = [_vi("x", U8, (1, 3, 4, 4))]
    if x_scale_input:
        del inits["xs"]
        inputs.append(_vi("xs", F, ()))
    node = helper.make_node("QLinearConv", names, ["y"], name="qconv")
    return _model([node], inputs, [_vi("y", U8, (1, 4, 4, 4))], inits)


def test_qlinear_conv_needs_constant_scales():
    with pytest.raises(ConversionError, match=r"^ONNX node 'qconv' \(QLinearConv\): the input "
                       r"scale \(input 1\) must be a constant \(an initializer\)"):
        load(_qlinear_conv(x_scale_input=True))


def test_per_channel_activation_zero_point_is_refused():
    with pytest.raises(ConversionError, match=r"the input zero point must be one value per "
                       r"tensor, got shape \[3\]; only weights may be quantized per channel"):
        load(_qlinear_conv(x_zp=np.array([1, 2, 3], np.uint8)))


def test_unsupported_contrib_ops_are_listed_together():
    q = ["x", "s", "z", "s", "z"]
    nodes = [helper.make_node("QLinearReduceMean", q, ["a"], name="rm", domain="com.microsoft",
                              axes=[1], keepdims=1),
             helper.make_node("QLinearLRN", ["a", "s", "z", "s", "z"], ["y"], name="lrn",
                              domain="com.microsoft", size=3)]
    m = _model(nodes, [_vi("x", U8, (1, 4, 2, 2))], [_vi("y", U8, (1, 1, 2, 2))],
               {"s": np.array(0.1, np.float32), "z": np.array(0, np.uint8)}, ms=True)
    with pytest.raises(UnsupportedOp, match=r"unsupported ONNX op\(s\): com\.microsoft\.QLinearLRN "
                       r"\(nodes: 'lrn'\); com\.microsoft\.QLinearReduceMean \(nodes: 'rm'\)\. "
                       r"Supported ONNX ops: .*com\.microsoft\.QLinearAdd"):
        load(m)


def test_avg_pool_with_excluded_padding_is_refused():
    node = helper.make_node("QLinearAveragePool", ["x", "s", "z", "s", "z"], ["y"], name="pool",
                            domain="com.microsoft", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    m = _model([node], [_vi("x", U8, (1, 2, 4, 4))], [_vi("y", U8, (1, 2, 4, 4))],
               {"s": np.array(0.1, np.float32), "z": np.array(0, np.uint8)}, ms=True)
    with pytest.raises(ConversionError, match=r"'pool' \(QLinearAveragePool\): padding without "
                       "count_include_pad=1"):
        load(m)


def test_qlinear_sigmoid_table_matches_ort_exactly():
    nodes = [helper.make_node("QLinearSigmoid", ["x", "s", "z", "ys", "yz"], ["y"],
                              domain="com.microsoft")]
    m = _model(nodes, [_vi("x", I8, (2, 128))], [_vi("y", I8, (2, 128))],
               {"s": np.array(0.05, np.float32), "z": np.array(-5, np.int8),
                "ys": np.array(1 / 255, np.float32), "yz": np.array(-128, np.int8)}, ms=True)
    x = np.arange(-128, 128, dtype=np.int8).reshape(2, 128)  # every input value once
    g, (y,) = import_and_run(m, [x])
    assert op_counts(g) == {"cast": 1, "gather": 1}
    np.testing.assert_array_equal(y, _ort(m, x)[0])


@pytest.mark.parametrize("quantized_output", [True, False], ids=["u8_out", "float_out"])
def test_qgemm_matches_ort(quantized_output):
    names = ["a", "as", "az", "b", "bs", "bz", "c"] + (["ys", "yz"] if quantized_output else [])
    inits = {"as": np.array(0.03, np.float32), "az": np.array(120, np.uint8),
             "b": RNG.integers(-127, 128, (5, 6)).astype(np.int8),  # [N, K]: transB
             "bs": RNG.uniform(0.005, 0.02, 5).astype(np.float32), "bz": np.zeros(5, np.int8),
             "c": RNG.integers(-500, 500, 5).astype(np.int32),
             "ys": np.array(0.04, np.float32), "yz": np.array(100, np.uint8)}
    out = _vi("y", U8 if quantized_output else F, (3, 5))
    m = _model([helper.make_node("QGemm", names, ["y"], domain="com.microsoft", transB=1)],
               [_vi("a", U8, (3, 6))], [out], {k: inits[k] for k in names[1:]}, ms=True)
    a = RNG.integers(0, 256, (3, 6)).astype(np.uint8)
    (g, (y,)), (ref,) = import_and_run(m, [a]), _ort(m, a)
    if quantized_output:
        assert op_counts(g) == {"qlinear": 1, "requantize": 1}
        assert np.abs(y.astype(np.int64) - ref).max() <= 1
    else:
        assert op_counts(g) == {"qlinear": 1, "dequantize_linear": 1}
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
