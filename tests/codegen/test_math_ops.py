"""The math ops of `ir/ops/math.py`, compiled through TVM, against onnxruntime (and the
interpreter where onnxruntime lacks the op): one ONNX model holding every op, so the
suite pays for one build. Inputs carry NaN, +-Inf, -0.0 and values outside the domains."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vcompile.ir import interp
from vcompile.ir.builder import Builder

pytest.importorskip("tvm")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.tvm

# ONNX op (attrs) -> the IR op it becomes; every new op appears once
UNARY = ["Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Sign",
         "IsNaN"]
TESTED_OPS = {"tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "sign",
              "isnan", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "shift_left",
              "shift_right", "cumsum", "cumprod", "hardmax", "bitcast"}

rng = np.random.default_rng(0)
SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 1e-3],
                   np.float32)
XF = np.concatenate([SPECIAL, rng.uniform(-3, 3, 36).astype(np.float32)]).reshape(4, 12)
HM = rng.integers(-2, 3, (4, 12)).astype(np.float32)  # ties, so "first maximum" matters
AI = rng.integers(-100, 100, (4, 12)).astype(np.int32)
BI = rng.integers(-100, 100, (12,)).astype(np.int32)
SU = rng.integers(0, 255, (4, 12)).astype(np.uint8)
SS = rng.integers(0, 10, (4, 12)).astype(np.uint8)  # shifts past the bit width included
XC = rng.standard_normal((1, 4, 5, 6)).astype(np.float32) * 3
SLOPE = rng.uniform(0, 1, (4, 1, 1)).astype(np.float32)
# converters made of existing ops, and function bodies: compiled in the same build
COMPOSED = [("PRelu", ["xc", "slope"], {}), ("Softplus", ["xc"], {}), ("Elu", ["xc"], {}),
            ("Mish", ["xc"], {}), ("LRN", ["xc"], {"size": 3, "alpha": 0.1}),
            ("LpPool", ["xc"], {"kernel_shape": [2, 3], "pads": [1, 1, 0, 1]}),
            ("LpNormalization", ["xc"], {"axis": 1}), ("ReduceLogSumExp", ["xc"], {}),
            ("Trilu", ["xc"], {}), ("IsInf", ["xf"], {})]


def _model() -> onnx.ModelProto:
    V = helper.make_tensor_value_info
    ins = [V("xf", TensorProto.FLOAT, XF.shape), V("hm", TensorProto.FLOAT, HM.shape),
           V("ai", TensorProto.INT32, AI.shape), V("bi", TensorProto.INT32, BI.shape),
           V("su", TensorProto.UINT8, SU.shape), V("ss", TensorProto.UINT8, SS.shape),
           V("xc", TensorProto.FLOAT, XC.shape), V("slope", TensorProto.FLOAT, SLOPE.shape)]
    axis = helper.make_tensor("axis", TensorProto.INT64, [], [1])
    N = helper.make_node
    nodes = [N(op, ["xf"], [op.lower()]) for op in UNARY] + [
        N("BitwiseAnd", ["ai", "bi"], ["and"]), N("BitwiseOr", ["ai", "bi"], ["or"]),
        N("BitwiseXor", ["ai", "bi"], ["xor"]), N("BitwiseNot", ["ai"], ["not"]),
        N("BitShift", ["su", "ss"], ["shl"], direction="LEFT"),
        N("BitShift", ["su", "ss"], ["shr"], direction="RIGHT"),
        N("CumSum", ["xf", "axis"], ["cs"]),
        N("CumSum", ["xf", "axis"], ["cs_rev_ex"], exclusive=1, reverse=1),
        N("Hardmax", ["hm"], ["hardmax"]), N("Hardmax", ["hm"], ["hardmax0"], axis=0),
        *[N(op, ins, [op.lower()], **at) for op, ins, at in COMPOSED]]
    outs = [V(o, TensorProto.UNDEFINED, None) for n in nodes for o in n.output]
    g = helper.make_graph(nodes, "math", ins, outs, initializer=[axis])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    return onnx.shape_inference.infer_shapes(m)


def test_math_ops_match_onnxruntime() -> None:
    import vcompile
    model = _model()
    feeds = {"xf": XF, "hm": HM, "ai": AI, "bi": BI, "su": SU, "ss": SS, "xc": XC,
             "slope": SLOPE}
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    m = vcompile.compile(model, opt_level=0)
    got = m(*feeds.values())
    names = [o.name for o in model.graph.output]
    for name, g, w in zip(names, got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=name)


def test_ops_onnxruntime_lacks_match_interp() -> None:
    """cumprod and bitcast (ONNX 26) and shifts of signed ints (ONNX 28) are newer than
    onnxruntime; hardmax with NaN: onnxruntime's answer depends on its SIMD path."""
    import vcompile
    bb = Builder("newer")
    xf = bb.input(XF.shape, hint="xf")
    s8 = bb.input((2, 6), dtype="i8", hint="s8")
    k8 = bb.input((2, 6), dtype="i8", hint="k8")
    hn = bb.input((3, 4), hint="hn")
    outs = [bb.emit("cumprod", xf, axis=1), bb.emit("cumprod", xf, axis=0, exclusive=True,
                                                      reverse=True),
            bb.emit("shift_left", s8, k8), bb.emit("shift_right", s8, k8),
            bb.emit("hardmax", hn, axis=1), bb.emit("hardmax", hn, axis=0),
            bb.emit("bitcast", xf, to="i32"), bb.emit("bitcast", k8, to="u8"),
            bb.emit("bitcast", bb.emit("less", k8, s8), to="u8")]
    g = bb.build(*outs)
    a8 = np.array([[-8, 4, -1, 100, -128, 3], [5, -5, 7, -7, 1, -1]], np.int8)
    b8 = np.array([[1, -1, 8, 9, 1, 0], [2, 3, 7, 127, -8, 6]], np.int8)
    nan = np.nan
    h = np.array([[1, nan, 3, nan], [nan, 1, 2, 0], [2, 0, 2, 1]], np.float32)
    feeds: list[Any] = [XF, a8, b8, h]
    m = vcompile.compile(g, opt_level=0)
    for got, want in zip(m(*feeds), interp.run(g, *feeds), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def test_math_kernels_run_on_pocl() -> None:
    """The GPU path: trig (OpenCL C names), sign, hardmax (plain reducers, which the GPU
    schedules need) and the integer ops as OpenCL kernels on PoCL, against interp."""
    pytest.importorskip("pyopencl", reason="pyopencl is not installed")
    from tests.codegen.pocl import pocl_device, run_on_pocl
    try:
        pocl_device()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no PoCL OpenCL device: {e}")
    bb = Builder("gpu")
    x = bb.input((3, 4), hint="x")
    a, s = bb.input((3, 4), dtype="u8", hint="a"), bb.input((3, 4), dtype="u8", hint="s")
    outs = [bb.emit(op, x) for op in ("tan", "asin", "acos", "atan", "asinh", "acosh", "atanh",
                                      "sign", "isnan")]
    outs += [bb.emit("hardmax", x, axis=1), bb.emit("hardmax", x, axis=0),
             bb.emit("shift_right", a, s), bb.emit("bitwise_xor", a, s)]
    g = bb.build(*outs)
    xs = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    xs[1, 2], xs[2, 0] = np.nan, 1.5
    feeds = [xs, (np.arange(12, dtype=np.uint8) * 21).reshape(3, 4),
             np.arange(12, dtype=np.uint8).reshape(3, 4)]
    got, _ = run_on_pocl(g, "opencl-mali", feeds)
    for y, want in zip(got, interp.run(g, *feeds), strict=True):
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
