"""NaN, +-Inf and -0.0 through every float op family, compiled and interpreted, against
onnxruntime (issue 25, item 4: Relu(NaN) was 0, ReduceMax skipped NaN, a row of -inf
reduced to -3.4e38).

One ONNX model per op family, one output per op, so that the sweep pays for a few
builds per opt level. Inputs mix NaN, +Inf, -Inf, -0.0, 0.0 and ordinary values; the
reductions get rows that are all -inf, all +inf, all NaN, and the poolings windows of
-inf and NaN. Outputs are compared with NaN == NaN, infinities exactly, finite values to
float32 tolerance (the fast exp/erf approximations), and the sign of zero where ONNX
defines it (ops whose IEEE result is a signed zero: neg, abs, floor, ...). A few outputs
where onnxruntime itself is not IEEE (see ORACLE) are compared with numpy instead.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("tvm")

from onnx import TensorProto, helper  # noqa: E402

import vcompile  # noqa: E402
from vcompile.api import to_graph  # noqa: E402
from vcompile.ir import interp  # noqa: E402

pytestmark = pytest.mark.tvm

NAN, INF = np.float32(np.nan), np.float32(np.inf)
SPECIAL = np.array([NAN, INF, -INF, -0.0, 0.0, 1.5, -2.25, 0.5, -0.75, 3.0], np.float32)
# ops whose result's sign of zero IEEE arithmetic fixes (compared bit for bit at zeros)
SIGNED_ZERO = {"Neg", "Abs", "Floor", "Ceil", "Round", "Identity", "Sqrt", "Mul", "Sin",
               "Tanh", "Erf", "Concat", "Transpose", "Pad"}


def _data(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) * 2
    pick = rng.random(shape) < 0.5
    x[pick] = rng.choice(SPECIAL, size=int(pick.sum()))
    return x


def _rows(x: np.ndarray) -> np.ndarray:
    """x [..., W]: some last-axis rows all -inf, all +inf, all NaN, -inf with NaN, +-inf."""
    r = x.reshape(-1, x.shape[-1])
    r[0], r[1], r[2] = -INF, INF, NAN
    r[3] = -INF
    r[3, 1] = NAN
    r[4] = np.resize(np.array([INF, -INF, 1.0, 2.0, 3.0], np.float32), r.shape[1])
    r[5] = -0.0
    r[6] = np.arange(1, r.shape[1] + 1)
    return x


X = _rows(_data((2, 3, 4, 5), 0))
Y = _data((2, 3, 4, 5), 1)
Y.reshape(-1)[:12] = [0.0, NAN, INF, -INF, 0.0, -0.0, NAN, 0.0, 1.0, INF, -INF, NAN]
X.reshape(-1)[60:72] = [NAN, 0.0, 0.0, NAN, INF, 0.0, -INF, -0.0, NAN, -INF, INF, NAN]
Y.reshape(-1)[60:72] = [0.0, NAN, -0.0, NAN, -INF, -INF, INF, 0.0, 1.0, -1.0, -1.0, 1.0]
# pooling: one 2x2 window of -inf, one of NaN, one with a NaN among finite values
P = _data((2, 3, 6, 6), 2)
P[0, 0, :2, :2], P[0, 1, :2, :2], P[1, 0, 2, 3] = -INF, NAN, NAN
P[1, 1, :, :] = -INF
P[1, 2, 2:4, 2:4] = [[INF, -INF], [NAN, 1.0]]
P1 = _rows(_data((2, 4, 8), 3))
P3 = _data((1, 2, 4, 4, 4), 4)
P3[0, 0, :2, :2, :2] = -INF
P3[0, 1, 1, 1, 1] = NAN


def _f(name: str, shape: tuple[int, ...] | list[Any]) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _c(name: str, a: Any) -> Any:
    return onnx.numpy_helper.from_array(np.asarray(a), name)  # float32, int64, int8, uint8


class Family:
    """One model: inputs, nodes (each node's first output is an op under test)."""

    def __init__(self, name: str, inputs: dict[str, np.ndarray]) -> None:
        self.name, self.inputs = name, inputs
        self.nodes: list[Any] = []
        self.outs: list[tuple[str, str, bool]] = []  # (output name, op type, exact: bool/int)
        self.inits: list[Any] = []

    def op(self, label: str, op: str, ins: list[str], *, exact: bool = False,
           extra: int = 0, **attrs: Any) -> str:
        out = f"{label}_y"
        self.nodes.append(helper.make_node(op, ins, [out] + [f"{label}_e{i}" for i in range(extra)],
                                           **attrs))
        self.outs.append((out, op, exact))
        self.outs += [(f"{label}_e{i}", op, True) for i in range(extra)]
        return out

    def inner(self, op: str, ins: list[str], out: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    def const(self, name: str, a: Any) -> str:
        self.inits.append(_c(name, a))
        return name

    def save(self, d: Path) -> str:
        sess_shapes = {k: v.shape for k, v in self.inputs.items()}
        outs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o, _, _ in self.outs]
        g = helper.make_graph(self.nodes, self.name, [_f(k, s) for k, s in sess_shapes.items()],
                              outs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        path = d / f"{self.name}.onnx"
        onnx.save(m, str(path))
        return str(path)


def _unary() -> Family:
    f = Family("unary", {"x": X})
    for op in ("Abs", "Neg", "Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Reciprocal",
               "Floor", "Ceil", "Round", "Sin", "Cos", "HardSwish", "Identity"):
        f.op(op, op, ["x"])
    f.op("HardSigmoid", "HardSigmoid", ["x"], alpha=0.3, beta=0.4)
    f.op("LeakyRelu", "LeakyRelu", ["x"], alpha=0.1)
    lo, hi = f.const("lo", np.float32(-1.0)), f.const("hi", np.float32(1.0))
    zero = f.const("z", np.float32(0))
    f.op("Clip", "Clip", ["x", lo, hi])
    f.op("ClipMin", "Clip", ["x", zero])
    f.op("ClipMax", "Clip", ["x", "", zero])
    f.op("Silu", "Mul", ["x", f.inner("Sigmoid", ["x"], "sig")])
    f.op("Softmax", "Softmax", ["x"], axis=-1)
    f.op("LogSoftmax", "LogSoftmax", ["x"], axis=-1)
    f.op("SoftmaxAxis1", "Softmax", ["x"], axis=1)
    return f


def _binary() -> Family:
    f = Family("binary", {"x": X, "y": Y})
    for op in ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"):
        f.op(op, op, ["x", "y"])
    zero = f.const("zero", np.float32(0.0))
    f.op("MaxZero", "Max", ["x", zero])
    f.op("ZeroMax", "Max", [zero, "x"])
    f.op("MinZero", "Min", ["x", zero])
    f.op("Max3", "Max", ["x", "y", zero])
    f.op("Min3", "Min", [zero, "y", "x"])
    f.op("Sum", "Sum", ["x", "y", "x"])
    f.op("Mean", "Mean", ["x", "y"])
    f.op("Fmod", "Mod", ["x", "y"], fmod=1)
    for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
        f.op(op, op, ["x", "y"], exact=True)
    f.op("Where", "Where", [f.inner("Greater", ["x", zero], "pos"), "x", "y"])
    return f


def _reduce() -> Family:
    f = Family("reduce", {"x": X})
    for op in ("ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean", "ReduceProd"):
        if op == "ReduceSum":
            f.op(op, op, ["x", f.const("ax", np.array([-1], np.int64))])
            f.op(op + "23", op, ["x", f.const("ax23", np.array([2, 3], np.int64))], keepdims=0)
        else:
            f.op(op, op, ["x"], axes=[-1])
            f.op(op + "23", op, ["x"], axes=[2, 3], keepdims=0)
    f.op("ReduceMaxAll", "ReduceMax", ["x"], keepdims=0)
    f.op("GlobalMaxPool", "GlobalMaxPool", ["x"])
    f.op("GlobalAveragePool", "GlobalAveragePool", ["x"])
    return f


def _pool() -> Family:
    f = Family("pool", {"p": P, "p1": P1, "p3": P3})
    f.op("MaxPool2", "MaxPool", ["p"], kernel_shape=[2, 2], strides=[2, 2])
    f.op("MaxPool3p", "MaxPool", ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    f.op("MaxPoolCeil", "MaxPool", ["p"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    f.op("MaxPoolIdx", "MaxPool", ["p"], kernel_shape=[2, 2], strides=[2, 2], extra=1)
    f.op("AvgPool3p", "AveragePool", ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    f.op("AvgPool3pInc", "AveragePool", ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
         count_include_pad=1)
    f.op("MaxPool1d", "MaxPool", ["p1"], kernel_shape=[2], strides=[1])
    f.op("AvgPool1d", "AveragePool", ["p1"], kernel_shape=[2], strides=[2])
    f.op("MaxPool3d", "MaxPool", ["p3"], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    f.op("AvgPool3d", "AveragePool", ["p3"], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    return f


def _linalg() -> Family:
    """NaN/Inf through contractions, normalizations and data movement."""
    a = np.random.default_rng(5).standard_normal((4, 16)).astype(np.float32)
    a[1, 3] = NAN  # one NaN: MatMul+Add+Relu must give NaN for its whole row
    a[2, 5] = INF
    img = np.random.default_rng(6).standard_normal((1, 8, 6, 6)).astype(np.float32)
    img[0, 2, 3, 3], img[0, 5, 0, 0] = NAN, -INF
    f = Family("linalg", {"a": a, "img": img, "x": X})
    rng = np.random.default_rng(7)
    w = f.const("w", rng.standard_normal((16, 16)).astype(np.float32))
    b = f.const("b", rng.standard_normal(16).astype(np.float32))
    mm = f.inner("MatMul", ["a", w], "mm")
    f.op("MatMulAddRelu", "Relu", [f.inner("Add", [mm, b], "mm_b")])
    f.op("Gemm", "Gemm", ["a", w, b], transB=1)
    cw = f.const("cw", rng.standard_normal((8, 8, 3, 3)).astype(np.float32))
    cb = f.const("cb", rng.standard_normal(8).astype(np.float32))
    f.op("ConvRelu", "Relu", [f.inner("Conv", ["img", cw, cb], "conv", pads=[1, 1, 1, 1])])
    dw = f.const("dw", rng.standard_normal((8, 1, 3, 3)).astype(np.float32))
    f.op("DepthwiseConv", "Conv", ["img", dw], pads=[1, 1, 1, 1], group=8)
    f.op("ConvClip", "Clip", [f.inner("Conv", ["img", cw], "conv2"), f.const("c0", np.float32(0)),
                              f.const("c6", np.float32(6))])
    ones, zeros = f.const("s", np.ones(3, np.float32)), f.const("t", np.zeros(3, np.float32))
    f.op("BatchNorm", "BatchNormalization", ["x", ones, zeros, zeros, ones])
    f.op("InstanceNorm", "InstanceNormalization", ["x", ones, zeros])
    g5, b5 = f.const("g5", np.ones(5, np.float32)), f.const("b5", np.zeros(5, np.float32))
    f.op("LayerNorm", "LayerNormalization", ["x", g5, b5], axis=-1)
    f.op("Transpose", "Transpose", ["x"], perm=[0, 2, 3, 1])
    f.op("Concat", "Concat", ["x", "x"], axis=1)
    f.op("Pad", "Pad", ["x", f.const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    f.op("Resize", "Resize", ["x", "", f.const("scales", np.array([1, 1, 2, 2], np.float32))],
         mode="nearest")
    return f


def _max_pool(x: np.ndarray, k: list[int], s: list[int], pads: list[int] | None = None,
              ceil: bool = False) -> np.ndarray:
    """Max pooling with IEEE max: -inf padding, NaN in a window gives NaN."""
    nd = len(k)
    pb, pe = (pads[:nd], pads[nd:]) if pads else ([0] * nd, [0] * nd)
    span = [n + b + e for n, b, e in zip(x.shape[2:], pb, pe, strict=True)]
    rnd = np.ceil if ceil else np.floor
    out = [int(rnd((n - kk) / ss)) + 1 for n, kk, ss in zip(span, k, s, strict=True)]
    extra = [max(0, (o - 1) * ss + kk - n) for o, ss, kk, n in zip(out, s, k, span, strict=True)]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(b, e + v) for b, e, v in zip(pb, pe, extra, strict=True)],
                constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=tuple(range(2, 2 + nd)))
    win = win[(slice(None), slice(None), *(slice(None, o * ss, ss) for o, ss in zip(out, s, strict=True)))]
    return win.max(axis=tuple(range(-nd, 0)))


# Where onnxruntime (1.31) departs from IEEE/numpy semantics, the ONNX reference and
# PyTorch, the expected result is numpy's instead:
# - Clip with one bound: onnxruntime fills the other with the dtype's finite limit, so
#   Clip(inf, min=0) = 3.4e38 (the ONNX reference and numpy keep inf);
# - ReduceMax/ReduceMin/GlobalMaxPool: Eigen's max skips NaN, or not, by its position
#   (the ONNX reference: NaN);
# - MaxPool (no indices): MLAS's max drops NaN by position (a window [[inf, -inf], [NaN,
#   1]] gives 1.0), and a window of -inf gives -3.4e38 in some paths, -inf in others.
ORACLE = {
    "ClipMin": lambda: np.maximum(X, 0), "ClipMax": lambda: np.minimum(X, 0),
    "ReduceMax": lambda: X.max(-1, keepdims=True), "ReduceMin": lambda: X.min(-1, keepdims=True),
    "ReduceMax23": lambda: X.max((2, 3)), "ReduceMin23": lambda: X.min((2, 3)),
    "ReduceMaxAll": lambda: X.max(), "GlobalMaxPool": lambda: X.max((2, 3), keepdims=True),
    "MaxPool2": lambda: _max_pool(P, [2, 2], [2, 2]),
    "MaxPool3p": lambda: _max_pool(P, [3, 3], [1, 1], [1, 1, 1, 1]),
    "MaxPoolCeil": lambda: _max_pool(P, [3, 3], [2, 2], ceil=True),
    "MaxPool1d": lambda: _max_pool(P1, [2], [1]),
    "MaxPool3d": lambda: _max_pool(P3, [2, 2, 2], [2, 2, 2]),
}


def _attention() -> Family:
    """softmax(q kT * scale + bias) v, which -O1 and up compile as one attention kernel
    (keys padded to whole vectors: 10 -> 16): a fully masked row, a NaN and an Inf."""
    rng = np.random.default_rng(8)
    q = rng.standard_normal((1, 2, 8, 16)).astype(np.float32)
    k = rng.standard_normal((1, 2, 10, 16)).astype(np.float32)
    v = rng.standard_normal((1, 2, 10, 16)).astype(np.float32)
    q[0, 0, 4, 2], q[0, 1, 5, 1] = NAN, INF
    bias = np.zeros((1, 1, 8, 10), np.float32)
    bias[0, 0, 1, :] = -INF  # every key masked: onnxruntime gives NaN
    bias[0, 0, 2, 3:] = -INF
    f = Family("attention", {"q": q, "k": k, "v": v})
    kt = f.inner("Transpose", ["k"], "kt", perm=[0, 1, 3, 2])
    s = f.inner("Mul", [f.inner("MatMul", ["q", kt], "s"), f.const("scale", np.float32(0.25))],
                "ss")
    p = f.inner("Softmax", [f.inner("Add", [s, f.const("bias", bias)], "sb")], "p", axis=-1)
    f.op("Attention", "MatMul", [p, "v"])
    return f


def _quant() -> Family:
    """QuantizeLinear of NaN and +-Inf saturates (NaN to the type's minimum, as onnxruntime)."""
    f = Family("quant", {"x": X})
    s = f.const("qs", np.float32(0.5))
    for label, zp in (("QuantizeI8", np.int8(3)), ("QuantizeU8", np.uint8(128))):
        z = f.const(label + "_zp", zp)
        q = f.op(label, "QuantizeLinear", ["x", s, z], exact=True)
        f.op(label.replace("Quantize", "Dequantize"), "DequantizeLinear", [q, s, z])
    return f


FAMILIES = {f.name: f for f in (_unary(), _binary(), _reduce(), _pool(), _linalg(), _attention(),
                                 _quant())}


@cache
def _model(name: str, d: str) -> tuple[str, list[np.ndarray]]:
    fam = FAMILIES[name]
    path = fam.save(Path(d))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    want = sess.run([o for o, _, _ in fam.outs], fam.inputs)
    for k, (out, _, _) in enumerate(fam.outs):
        label = out.removesuffix("_y")
        if label in ORACLE:
            want[k] = np.asarray(ORACLE[label](), np.float32)
    return path, want


def mismatch(got: np.ndarray, want: np.ndarray, signed_zero: bool) -> str | None:
    """Why `got` differs from onnxruntime's `want` (None when equal)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if want.dtype.kind in "biu":
        bad = got != want
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        gn, wn = np.isnan(g), np.isnan(w)
        fin = np.isfinite(g) & np.isfinite(w)
        bad = (gn != wn) | (~gn & ~wn & ~fin & (g != w))
        bad |= fin & ~np.isclose(g, w, rtol=2e-4, atol=2e-5)
        if signed_zero:
            bad |= fin & (w == 0) & (g == 0) & (np.signbit(g) != np.signbit(w))
    if not bad.any():
        return None
    i = tuple(int(k) for k in np.argwhere(bad)[0])
    return f"{int(bad.sum())} of {bad.size} differ, first at {i}: got {got[i]!r}, onnxruntime {want[i]!r}"


def _check(name: str, got: list[np.ndarray], want: list[np.ndarray]) -> list[str]:
    fam = FAMILIES[name]
    bad = []
    for (out, op, _), g, w in zip(fam.outs, got, want, strict=True):
        why = mismatch(g, w, op in SIGNED_ZERO)
        if why:
            bad.append(f"{out.removesuffix('_y')}: {why}")
    return bad


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("nan_inf"))


def _outputs(m: Any, fam: Family) -> list[np.ndarray]:
    res = m(*fam.inputs.values())
    return [np.asarray(r) for r in res][: len(fam.outs)]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_interp_equals_onnxruntime(name: str, model_dir: str) -> None:
    path, want = _model(name, model_dir)
    g = to_graph(path)
    got = interp.run(g, *FAMILIES[name].inputs.values())
    names = [v.hint for v in g.outputs]
    # the graph's outputs are the model's, in order (an extra Indices output included)
    assert len(got) == len(FAMILIES[name].outs), names
    assert _check(name, got, want) == []


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_compiled_equals_onnxruntime(name: str, level: int, model_dir: str) -> None:
    path, want = _model(name, model_dir)
    m = vcompile.compile(path, target="host", opt_level=level)
    assert _check(name, _outputs(m, FAMILIES[name]), want) == []


def test_oracle_max_pool_matches_onnxruntime_without_nan() -> None:
    """The numpy max pool that replaces onnxruntime's on NaN is onnxruntime's on finite data."""
    x = np.random.default_rng(8).standard_normal((1, 2, 7, 7)).astype(np.float32)
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                            pads=[1, 0, 1, 0], ceil_mode=1)
    g = helper.make_graph([node], "mp", [_f("x", x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_array_equal(_max_pool(x, [3, 3], [2, 2], [1, 0, 1, 0], ceil=True), want)
