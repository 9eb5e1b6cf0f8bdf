"""The nn, pool, resize and quant ops against independent references.

Each op runs through its table entry (defaults filled, `infer` checked against what
`eval` returns) and is compared with onnx's ReferenceEvaluator on a one-node model,
with torch, or with the ONNX backend node tests' own expected outputs (translated to
vcompile attrs by a small stand-in for the frontend, at the backend's tolerances).
"""
from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from vcompile.ir.ops import OPS, ShapeError
from vcompile.ir.types import TensorType, dtype_of

RNG = np.random.default_rng(0)


def run(op: str, *xs: np.ndarray, **attrs: Any) -> tuple[np.ndarray, ...]:
    """Eval `op` and check that the arrays have the types `infer` promised."""
    opdef = OPS[op]
    a = opdef.fill_defaults(attrs)
    types = opdef.infer([TensorType.of(x) for x in xs], a)
    ys = opdef.eval(list(xs), a)
    assert len(ys) == len(types) == opdef.num_outputs(a, len(xs))
    for t, y in zip(types, ys, strict=True):
        assert t.matches(y), f"{op}: eval gave {y.dtype}{list(y.shape)}, infer said {t}"
    return ys


def onnx_ref(op_type: str, inputs: dict[str, np.ndarray | None], n_out: int = 1,
             opset: int = 22, **attrs: Any) -> list[np.ndarray]:
    """Run one ONNX node through onnx.reference; a None input is left out ("")."""
    names = [k if v is not None else "" for k, v in inputs.items()]
    feeds = {k: v for k, v in inputs.items() if v is not None}
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op_type, names, outs, **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for k, v in feeds.items()],
        [helper.make_empty_tensor_value_info(o) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return list(ReferenceEvaluator(model).run(None, feeds))


def randn(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ---- conv / conv_transpose ----------------------------------------------------------------

CONV_CASES = [  # (nd, C, O, k, strides, pads, dilations, groups)
    (2, 3, 4, 3, 1, 0, 1, 1),
    (2, 4, 6, 3, 2, 1, 1, 2),
    (2, 6, 6, 3, 1, 2, 2, 6),    # depthwise
    (2, 4, 8, 5, 2, 2, 1, 4),    # depthwise, channel multiplier 2
    (2, 8, 4, 1, 1, 0, 1, 1),
    (1, 4, 5, 3, 2, 1, 2, 1),
    (3, 4, 4, 3, 1, 1, 1, 2),
    (3, 3, 3, 2, 2, 0, 1, 3),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_torch(case: tuple[int, ...]) -> None:
    torch = pytest.importorskip("torch")
    nd, c, o, k, s, p, d, g = case
    x, w, b = randn(2, c, *[9 - nd] * nd), randn(o, c // g, *[k] * nd), randn(o)
    (y,) = run(f"conv{nd}d", x, w, b, strides=(s,) * nd, pads=(p,) * 2 * nd,
               dilations=(d,) * nd, groups=g)
    fn = getattr(torch.nn.functional, f"conv{nd}d")
    want = fn(*map(torch.from_numpy, (x, w, b)), stride=s, padding=p, dilation=d, groups=g)
    close(y, want.numpy())


def test_conv_asymmetric_pads_and_f64_match_onnx() -> None:
    f64 = np.float64
    x, w, b = randn(1, 2, 7, 6, dtype=f64), randn(3, 2, 3, 2, dtype=f64), randn(3, dtype=f64)
    attrs = {"strides": (2, 1), "pads": (1, 0, 2, 1), "dilations": (1, 2)}
    (y,) = run("conv2d", x, w, b, **attrs)
    (want,) = onnx_ref("Conv", {"x": x, "w": w, "b": b}, **attrs)
    close(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op, w_shape", [("conv2d", (4, 3, 3, 3)), ("conv_transpose2d", (3, 4, 3, 3))])
def test_conv_f16_accumulates_in_f32(op: str, w_shape: tuple[int, ...]) -> None:
    x, w, b = randn(1, 3, 6, 6), randn(*w_shape), randn(4)
    half = [v.astype(np.float16) for v in (x, w, b)]
    (y,) = run(op, *half, pads=(1, 1, 1, 1))
    (want,) = run(op, *[v.astype(np.float32) for v in half], pads=(1, 1, 1, 1))
    close(y, want.astype(np.float16), rtol=1e-3, atol=1e-3)


def test_conv_large_input_takes_the_accumulating_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from vcompile.ir.ops import nn
    x, w, b = randn(2, 4, 8, 8), randn(6, 2, 3, 3), randn(6)
    (fast,) = run("conv2d", x, w, b, pads=(1, 1, 1, 1), groups=2)
    monkeypatch.setattr(nn, "_IM2COL_LIMIT", 0)
    (slow,) = run("conv2d", x, w, b, pads=(1, 1, 1, 1), groups=2)
    close(slow, fast)


CONVT_CASES = [  # (nd, C, O, k, strides, pads, dilations, groups, output_padding)
    (2, 3, 4, 3, 1, 0, 1, 1, 0),
    (2, 4, 6, 3, 2, 1, 1, 2, 1),
    (2, 2, 2, 4, 3, 2, 2, 1, 2),
    (1, 4, 4, 3, 2, 0, 1, 4, 1),
    (3, 2, 4, 2, 2, 1, 1, 1, 0),
]


@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose_matches_torch(case: tuple[int, ...]) -> None:
    torch = pytest.importorskip("torch")
    nd, c, o, k, s, p, d, g, op = case
    x, w, b = randn(2, c, *[5] * nd), randn(c, o // g, *[k] * nd), randn(o)
    (y,) = run(f"conv_transpose{nd}d", x, w, b, strides=(s,) * nd, pads=(p,) * 2 * nd,
               dilations=(d,) * nd, groups=g, output_padding=(op,) * nd)
    fn = getattr(torch.nn.functional, f"conv_transpose{nd}d")
    want = fn(*map(torch.from_numpy, (x, w, b)), stride=s, padding=p, output_padding=op,
              groups=g, dilation=d)
    close(y, want.numpy())


def test_conv_transpose_asymmetric_pads_match_onnx() -> None:
    x, w, b = randn(1, 2, 4, 3), randn(2, 3, 3, 3), randn(3)
    attrs = {"strides": (2, 3), "pads": (0, 1, 2, 0), "output_padding": (1, 2)}
    (y,) = run("conv_transpose2d", x, w, b, **attrs)
    (want,) = onnx_ref("ConvTranspose", {"x": x, "w": w, "b": b}, **attrs)
    close(y, want)


def test_conv_infers_symbolic_batch() -> None:
    t = OPS["conv2d"].infer([TensorType("f32", ("N", 8, 32, 32)), TensorType("f32", (16, 4, 3, 3)),
                             TensorType("f32", (16,))],
                            OPS["conv2d"].fill_defaults({"strides": (2, 2), "pads": (1, 1, 1, 1),
                                                         "groups": 2}))
    assert t == (TensorType("f32", ("N", 16, 16, 16)),)


@pytest.mark.parametrize("shapes, attrs, match", [
    (((1, 4, 8, 8), (6, 4, 3, 3), (6,)), {"groups": 2}, "does not fit"),
    (((1, 4, 8, 8), (6, 4, 3, 3), (5,)), {}, "bias must have shape"),
    (((1, 4, 8, 8), (6, 4, 9, 9), (6,)), {}, "larger than the padded input"),
    (((1, 4, 8, 8), (6, 4, 3, 3), (6,)), {"pads": (1, 1)}, "need 2 strides"),
    (((1, 4, 8), (6, 4, 3, 3), (6,)), {}, "must have rank 4"),
])
def test_conv_infer_errors(shapes: tuple[tuple[int, ...], ...], attrs: dict[str, Any], match: str) -> None:
    opdef = OPS["conv2d"]
    with pytest.raises(ShapeError, match=match):
        opdef.infer([TensorType("f32", s) for s in shapes], opdef.fill_defaults(attrs))


# ---- pooling ------------------------------------------------------------------------------

POOL_CASES = [  # (nd, k, strides, pads, dilations, ceil)
    (2, 3, 2, 1, 1, False), (2, 3, 2, 1, 1, True), (2, 2, 2, 0, 1, True), (2, 3, 3, 1, 2, True),
    (1, 4, 3, 2, 1, True), (3, 2, 2, 1, 1, False), (3, 3, 2, 1, 1, True), (2, 5, 1, 2, 1, False),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_matches_torch(case: tuple[Any, ...]) -> None:
    torch = pytest.importorskip("torch")
    nd, k, s, p, d, ceil = case
    x = randn(2, 3, *[11 - 2 * nd] * nd)
    y, idx = run(f"max_pool{nd}d", x, kernel=(k,) * nd, strides=(s,) * nd, pads=(p,) * 2 * nd,
                 dilations=(d,) * nd, ceil_mode=ceil, with_indices=True)
    fn = getattr(torch.nn.functional, f"max_pool{nd}d")
    want, want_idx = fn(torch.from_numpy(x), k, s, p, d, ceil_mode=ceil, return_indices=True)
    close(y, want.numpy())
    plane = np.prod(x.shape[2:]) * np.arange(6).reshape((2, 3) + (1,) * nd)
    np.testing.assert_array_equal(idx, want_idx.numpy() + plane)  # ONNX flattens N and C too
    (alone,) = run(f"max_pool{nd}d", x, kernel=(k,) * nd, strides=(s,) * nd, pads=(p,) * 2 * nd,
                   dilations=(d,) * nd, ceil_mode=ceil)
    close(alone, y)


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 0, 1, 2)])
def test_max_pool_indices_match_onnx(storage_order: int, pads: tuple[int, ...]) -> None:
    x = randn(2, 2, 6, 5)
    attrs = {"strides": (2, 2), "pads": pads}
    y, idx = run("max_pool2d", x, kernel=(3, 2), storage_order=storage_order, with_indices=True, **attrs)
    want, want_idx = onnx_ref("MaxPool", {"x": x}, n_out=2, kernel_shape=(3, 2),
                              storage_order=storage_order, **attrs)
    close(y, want)
    np.testing.assert_array_equal(idx, want_idx)


def test_max_pool_integer_input_pads_with_the_dtype_minimum() -> None:
    x = RNG.integers(0, 5, (1, 1, 4, 4)).astype(np.uint8)
    (y,) = run("max_pool2d", x, kernel=(3, 3), pads=(1, 1, 1, 1))
    want = np.max([np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))[..., i:i + 4, j:j + 4]
                   for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("include_pad", [False, True])
def test_avg_pool_matches_torch(case: tuple[Any, ...], include_pad: bool) -> None:
    torch = pytest.importorskip("torch")
    nd, k, s, p, d, ceil = case
    if d != 1 or 2 * p > k:
        pytest.skip("torch avg_pool has no dilation and needs pad <= kernel/2")
    x = randn(2, 3, *[11 - 2 * nd] * nd)
    (y,) = run(f"avg_pool{nd}d", x, kernel=(k,) * nd, strides=(s,) * nd, pads=(p,) * 2 * nd,
               ceil_mode=ceil, count_include_pad=include_pad)
    fn = getattr(torch.nn.functional, f"avg_pool{nd}d")
    want = fn(torch.from_numpy(x), k, s, p, ceil_mode=ceil, count_include_pad=include_pad)
    close(y, want.numpy())


def test_pool_infers_ceil_mode_and_errors() -> None:
    opdef = OPS["avg_pool2d"]
    a = opdef.fill_defaults({"kernel": (3, 3), "strides": (2, 2), "ceil_mode": True})
    assert opdef.infer([TensorType("f16", ("N", 3, 8, 8))], a) == (TensorType("f16", ("N", 3, 4, 4)),)
    with pytest.raises(ShapeError, match="needs a float input"):
        opdef.infer([TensorType("i8", (1, 3, 8, 8))], a)
    with pytest.raises(ShapeError, match="need 2 kernel sizes"):
        opdef.infer([TensorType("f32", (1, 3, 8, 8))], opdef.fill_defaults({"kernel": (3,)}))
    mp = OPS["max_pool1d"]
    types = mp.infer([TensorType("f32", (1, 2, 9))], mp.fill_defaults({"kernel": (2,), "with_indices": True}))
    assert [t.dtype for t in types] == ["f32", "i64"]


# ---- normalization ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (2, 3, 4, 5)])
def test_batch_norm_matches_onnx(shape: tuple[int, ...]) -> None:
    x, g, b, m = randn(*shape), randn(3), randn(3), randn(3)
    v = np.abs(randn(3)) + 0.1
    (y,) = run("batch_norm", x, g, b, m, v, epsilon=1e-3)
    (want,) = onnx_ref("BatchNormalization", {"x": x, "g": g, "b": b, "m": m, "v": v}, epsilon=1e-3)
    close(y, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_instance_and_group_norm_match_onnx(dtype: Any) -> None:
    x, g, b = randn(2, 6, 4, 5, dtype=dtype), randn(6, dtype=dtype), randn(6, dtype=dtype)
    tol = {"rtol": 1e-2, "atol": 1e-2} if dtype == np.float16 else {}
    (y,) = run("instance_norm", x, g, b, epsilon=1e-4)
    (want,) = onnx_ref("InstanceNormalization", {"x": x, "g": g, "b": b}, epsilon=1e-4)
    close(y, want, **tol)
    for groups in (1, 3, 6):
        (y,) = run("group_norm", x, g, b, num_groups=groups)
        (want,) = onnx_ref("GroupNormalization", {"x": x, "g": g, "b": b}, opset=21,
                           num_groups=groups)
        close(y, want, **tol)


@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm_matches_onnx(axis: int, with_bias: bool) -> None:
    x = randn(2, 3, 8) * 5 + 3
    norm_shape = x.shape[axis % 3:]
    g, b = randn(*norm_shape), (randn(*norm_shape) if with_bias else None)
    ys = run("layer_norm", x, g, *([b] if b is not None else []), axis=axis)
    (want, _, _) = onnx_ref("LayerNormalization", {"x": x, "g": g, "b": b}, n_out=3, axis=axis)
    close(ys[0], want)


def test_layer_norm_f16_computes_statistics_in_f32() -> None:
    x = (randn(4, 64) * 100 + 1000).astype(np.float16)
    (y,) = run("layer_norm", x, np.ones(64, np.float16))
    x32 = x.astype(np.float32)
    want = (x32 - x32.mean(-1, keepdims=True)) / np.sqrt(x32.var(-1, keepdims=True) + 1e-5)
    close(y, want.astype(np.float16), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("op, shapes, attrs, match", [
    ("batch_norm", [(2, 3, 4), (3,), (3,), (4,), (3,)], {}, "parameters must have shape"),
    ("batch_norm", [(3,)] * 5, {}, "rank >= 2"),
    ("group_norm", [(2, 6, 4), (6,), (6,)], {"num_groups": 4}, "must divide"),
    ("layer_norm", [(2, 3, 4), (3,)], {"axis": -1}, "must broadcast to the normalized dims"),
    ("layer_norm", [(2, 3, 4), (4,)], {"axis": 3}, "out of range"),
])
def test_norm_infer_errors(op: str, shapes: list[tuple[int, ...]], attrs: dict[str, Any], match: str) -> None:
    with pytest.raises(ShapeError, match=match):
        OPS[op].infer([TensorType("f32", s) for s in shapes], OPS[op].fill_defaults(attrs))


# ---- resize -------------------------------------------------------------------------------

TRANSFORMS = ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"]


def _resize_both(x: np.ndarray, sizes: tuple[int, ...] | None, scales: tuple[float, ...] | None,
                 **attrs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ours, onnx's) for a model that gives either output sizes or scales."""
    roi = np.asarray(attrs.get("roi", ()), np.float32) if "roi" in attrs else None
    feeds = {"x": x, "roi": roi, "scales": None if scales is None else np.asarray(scales, np.float32),
             "sizes": None if sizes is None else np.asarray(sizes, np.int64)}
    (want,) = onnx_ref("Resize", feeds, **{k: v for k, v in attrs.items() if k != "roi"})
    if sizes is None:
        sizes = tuple(int(s) for s in np.asarray(scales, np.float32).astype(np.float64) * x.shape)
        scales = tuple(float(np.float32(s)) for s in scales)  # type: ignore[union-attr]
    else:
        scales = tuple(o / i for o, i in zip(sizes, x.shape, strict=True))
    (y,) = run("resize", x, sizes=sizes, scales=scales, **attrs)
    return y, want


@pytest.mark.parametrize("mode, ctm", list(itertools.product(["nearest", "linear", "cubic"], TRANSFORMS)))
@pytest.mark.parametrize("out", [(1, 2, 7, 9), (1, 2, 3, 2), (1, 2, 1, 5)])
def test_resize_sizes_match_onnx(mode: str, ctm: str, out: tuple[int, ...]) -> None:
    y, want = _resize_both(randn(1, 2, 4, 5), out, None, mode=mode, coordinate_transformation_mode=ctm)
    close(y, want)


@pytest.mark.parametrize("scales", [(1.0, 1.0, 1.7, 0.6), (1.0, 1.0, 2.0, 3.0), (1.0, 1.0, 0.5, 0.8)])
@pytest.mark.parametrize("extra", [
    {"mode": "nearest", "nearest_mode": "round_prefer_ceil"},
    {"mode": "nearest", "nearest_mode": "floor", "coordinate_transformation_mode": "asymmetric"},
    {"mode": "nearest", "nearest_mode": "ceil", "coordinate_transformation_mode": "align_corners"},
    {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1},
    {"mode": "linear", "antialias": 1},
    {"mode": "cubic", "antialias": 1, "coordinate_transformation_mode": "pytorch_half_pixel"},
    {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"},
])
def test_resize_scales_and_options_match_onnx(scales: tuple[float, ...], extra: dict[str, Any]) -> None:
    y, want = _resize_both(randn(1, 3, 6, 5), None, scales, **extra)
    close(y, want)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_tf_crop_and_resize_matches_onnx(mode: str) -> None:
    roi = (0, 0, 0.4, -0.2, 1, 1, 1.3, 0.7)
    y, want = _resize_both(randn(1, 2, 5, 6), (1, 2, 4, 7), None, mode=mode, roi=roi,
                           coordinate_transformation_mode="tf_crop_and_resize",
                           extrapolation_value=-3.0)
    close(y, want)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_uint8_and_odd_ranks_match_onnx(mode: str) -> None:
    x = RNG.integers(0, 256, (2, 3, 7)).astype(np.uint8)
    y, want = _resize_both(x, (2, 3, 11), None, mode=mode)
    np.testing.assert_array_equal(y, want)
    y, want = _resize_both(randn(1, 2, 3, 4, 5), (1, 2, 5, 3, 6), None, mode=mode)
    close(y, want)


def test_resize_infer_and_errors() -> None:
    opdef = OPS["resize"]
    a = opdef.fill_defaults({"sizes": ("N", 3, 8, 8), "scales": (1.0, 1.0, 2.0, 2.0)})
    assert opdef.infer([TensorType("f32", ("N", 3, 4, 4))], a) == (TensorType("f32", ("N", 3, 8, 8)),)
    bad = [({"mode": "area"}, "unknown mode"), ({"mode": "nearest", "antialias": True}, "antialias"),
           ({"coordinate_transformation_mode": "tf_crop_and_resize"}, "needs a roi"),
           ({"sizes": (2, 3, 8, 8)}, "symbolic dim N"), ({"scales": (1.0,)}, "need 4 sizes")]
    for attrs, match in bad:
        a = opdef.fill_defaults({"sizes": ("N", 3, 8, 8), "scales": (1.0, 1.0, 2.0, 2.0), **attrs})
        with pytest.raises(ShapeError, match=match):
            opdef.infer([TensorType("f32", ("N", 3, 4, 4))], a)


# ---- quantization -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize("per_axis", [False, True])
def test_quantize_dequantize_match_onnx(dtype: Any, per_axis: bool) -> None:
    x = randn(2, 3, 4) * 300
    scale = (np.abs(randn(3)) + 0.5) if per_axis else np.float32(1.3).reshape(())
    info = np.iinfo(dtype)
    zp = RNG.integers(info.min // 2, info.max // 2 + 1, scale.shape).astype(dtype)
    (q,) = run("quantize_linear", x, scale, zp, axis=1)
    (want,) = onnx_ref("QuantizeLinear", {"x": x, "s": scale, "z": zp}, axis=1)
    np.testing.assert_array_equal(q, want)
    (d,) = run("dequantize_linear", q, scale, zp, axis=-2)
    (want,) = onnx_ref("DequantizeLinear", {"q": q, "s": scale, "z": zp}, axis=-2)
    close(d, want)


def test_quantize_rounds_half_to_even_and_saturates() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1e9, -1e9, 3e9], np.float32)
    (q,) = run("quantize_linear", x, np.float32(1).reshape(()), np.zeros((), np.int8))
    np.testing.assert_array_equal(q, [0, 2, 2, 0, -2, 127, -128, 127])
    (q32,) = run("quantize_linear", x, np.float32(1).reshape(()), np.array(3, np.int32))
    np.testing.assert_array_equal(q32, [3, 5, 5, 3, 1, 10**9 + 3, -(10**9) + 3, 2**31 - 1])


def test_quant_blocked_scale_broadcasts_and_errors() -> None:
    x, scale = randn(3, 4) * 10, np.repeat(np.abs(randn(3, 2)) + 0.1, 2, axis=1)
    zp = np.zeros(scale.shape, np.uint8)
    (q,) = run("quantize_linear", x, scale, zp)
    np.testing.assert_array_equal(q, np.clip(np.rint(x / scale), 0, 255).astype(np.uint8))
    qd, dq = OPS["quantize_linear"], OPS["dequantize_linear"]
    f32, a = TensorType("f32", (2, 3)), qd.fill_defaults({})
    with pytest.raises(ShapeError, match="per-axis scale"):
        qd.infer([f32, TensorType("f32", (2,)), TensorType("u8", (2,))], a)
    with pytest.raises(ShapeError, match="must have one shape"):
        qd.infer([f32, TensorType("f32", (3,)), TensorType("u8", ())], a)
    with pytest.raises(ShapeError, match="must have the input's dtype"):
        dq.infer([TensorType("u8", (2, 3)), TensorType("f32", ()), TensorType("i8", ())],
                 dq.fill_defaults({}))


# ---- the ONNX backend node tests ----------------------------------------------------------

def _same_pads(auto_pad: str, sizes: tuple[int, ...], k: list[int], s: list[int],
               d: list[int]) -> list[int]:
    """Explicit pads for ONNX auto_pad (what the frontend resolves)."""
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return [0] * 2 * len(sizes)
    total = [max(0, (-(-n // si) - 1) * si + (ki - 1) * di + 1 - n)
             for n, ki, si, di in zip(sizes, k, s, d, strict=True)]
    small = [t // 2 for t in total]
    big = [t - t // 2 for t in total]
    return small + big if auto_pad == "SAME_UPPER" else big + small


def _window(at: dict[str, Any], x: np.ndarray, k: list[int]) -> dict[str, Any]:
    nd = x.ndim - 2
    s, d = at.get("strides", [1] * nd), at.get("dilations", [1] * nd)
    pads = at.get("pads", [0] * 2 * nd)
    if at.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        pads = _same_pads(at["auto_pad"], x.shape[2:], k, s, d)
    return {"strides": tuple(s), "pads": tuple(pads), "dilations": tuple(d)}


def _conv_case(at: dict[str, Any], xs: list[np.ndarray], n_out: int) -> Any:
    x, w = xs[:2]
    b = xs[2] if len(xs) > 2 else np.zeros(w.shape[0], x.dtype)
    attrs = {**_window(at, x, list(w.shape[2:])), "groups": at.get("group", 1)}
    return f"conv{x.ndim - 2}d", [x, w, b], attrs


def _convt_case(at: dict[str, Any], xs: list[np.ndarray], n_out: int) -> Any:
    x, w = xs[:2]
    nd, g = x.ndim - 2, at.get("group", 1)
    b = xs[2] if len(xs) > 2 else np.zeros(w.shape[1] * g, x.dtype)
    s, d = at.get("strides", [1] * nd), at.get("dilations", [1] * nd)
    op, pads = list(at.get("output_padding", [0] * nd)), list(at.get("pads", [0] * 2 * nd))
    out = at.get("output_shape")
    if out is None and at.get("auto_pad", "NOTSET") != "NOTSET":
        out = [n * si for n, si in zip(x.shape[2:], s, strict=True)]
    if out is not None:
        total = [si * (n - 1) + o + (k - 1) * di + 1 - want for n, si, o, k, di, want in
                 zip(x.shape[2:], s, op, w.shape[2:], d, out, strict=True)]
        upper = at.get("auto_pad") == "SAME_UPPER"
        lo = [t // 2 if upper else t - t // 2 for t in total]
        pads = lo + [t - b for t, b in zip(total, lo, strict=True)]
        op = [o - min(e, 0) for o, e in zip(op, pads[nd:], strict=True)]  # negative end pad = output padding
        pads = pads[:nd] + [max(e, 0) for e in pads[nd:]]
    return (f"conv_transpose{nd}d", [x, w, b],
            {"strides": tuple(s), "pads": tuple(pads), "dilations": tuple(d), "groups": g,
             "output_padding": tuple(op)})


def _pool_case(name: str) -> Callable[..., Any]:
    def case(at: dict[str, Any], xs: list[np.ndarray], n_out: int) -> Any:
        attrs = {**_window(at, xs[0], at["kernel_shape"]), "kernel": tuple(at["kernel_shape"]),
                 "ceil_mode": bool(at.get("ceil_mode", 0))}
        if name == "max_pool":
            attrs.update(storage_order=at.get("storage_order", 0), with_indices=n_out == 2)
        else:
            attrs["count_include_pad"] = bool(at.get("count_include_pad", 0))
        return f"{name}{xs[0].ndim - 2}d", xs[:1], attrs
    return case


def _resize_case(at: dict[str, Any], xs: list[np.ndarray], n_out: int) -> Any:
    x, roi, scales, sizes = (xs + [None] * 4)[:4]
    r, axes = x.ndim, list(at.get("axes", range(x.ndim)))
    full_roi = [0.0] * r + [1.0] * r
    for i, ax in enumerate(axes):
        if roi is not None and roi.size:
            full_roi[ax], full_roi[ax + r] = float(roi[i]), float(roi[i + len(axes)])
    out, sc = list(x.shape), [1.0] * r
    if sizes is not None and sizes.size:
        for ax, n in zip(axes, sizes, strict=True):
            out[ax], sc[ax] = int(n), int(n) / x.shape[ax]
        policy = at.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            scale = pick(sc[ax] for ax in axes)
            for ax in axes:
                out[ax], sc[ax] = int(scale * x.shape[ax] + 0.5), scale
    else:
        for ax, s in zip(axes, scales, strict=True):
            sc[ax], out[ax] = float(s), int(float(s) * x.shape[ax])
    keep = ("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
            "exclude_outside", "extrapolation_value", "antialias")
    attrs = {k: (bool(v) if k in ("exclude_outside", "antialias") else v) for k, v in at.items() if k in keep}
    if at.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        attrs["roi"] = tuple(full_roi)
    return "resize", [x], {**attrs, "sizes": tuple(out), "scales": tuple(sc)}


def _quant_case(name: str) -> Callable[..., Any]:
    def case(at: dict[str, Any], xs: list[np.ndarray], n_out: int) -> Any:
        x, scale = xs[:2]
        zp_type = helper.tensor_dtype_to_np_dtype(at.get("output_dtype", onnx.TensorProto.UINT8))
        zp = xs[2] if len(xs) > 2 else np.zeros(scale.shape, x.dtype if name[0] == "d" else zp_type)
        if "block_size" in at:  # the frontend expands blocks so that scales broadcast
            ax = at.get("axis", 1)
            scale, zp = (np.repeat(v, at["block_size"], axis=ax).take(range(x.shape[ax]), axis=ax)
                         for v in (scale, zp))
        return name, [x, scale, zp], {"axis": at.get("axis", 1)}
    return case


BACKEND: dict[str, Callable[..., Any]] = {
    "Conv": _conv_case, "ConvTranspose": _convt_case,
    "MaxPool": _pool_case("max_pool"), "AveragePool": _pool_case("avg_pool"),
    "BatchNormalization": lambda at, xs, n: ("batch_norm", xs, {"epsilon": at.get("epsilon", 1e-5)}),
    "InstanceNormalization": lambda at, xs, n: ("instance_norm", xs, {"epsilon": at.get("epsilon", 1e-5)}),
    "GroupNormalization": lambda at, xs, n: ("group_norm", xs, {"epsilon": at.get("epsilon", 1e-5),
                                                                "num_groups": at["num_groups"]}),
    "LayerNormalization": lambda at, xs, n: ("layer_norm", xs, {"epsilon": at.get("epsilon", 1e-5),
                                                                "axis": at.get("axis", -1)}),
    "Resize": _resize_case,
    "QuantizeLinear": _quant_case("quantize_linear"), "DequantizeLinear": _quant_case("dequantize_linear"),
}


def _as_ir_array(x: object) -> np.ndarray | None:
    """The test data as an array of an IR dtype, or None (float8, int4, ...)."""
    arr = onnx.numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else np.asarray(x)
    try:
        dtype_of(arr)
    except TypeError:
        return None
    return arr


@functools.cache
def _backend_cases() -> dict[str, Any]:
    from onnx.backend.test.case.node import collect_testcases
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators overflow casts on purpose
        cases = collect_testcases()
    return {c.name: c for c in cases if c.kind == "node" and "expanded" not in c.name
            and len(c.model.graph.node) == 1 and c.model.graph.node[0].op_type in BACKEND}


_BACKEND_NAMES = sorted(_backend_cases())


@pytest.mark.parametrize("name", _BACKEND_NAMES)
def test_onnx_backend_node_case(name: str) -> None:
    case = _backend_cases()[name]
    node = case.model.graph.node[0]
    at = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    at = {k: v.decode() if isinstance(v, bytes) else v for k, v in at.items()}
    if at.get("training_mode"):
        pytest.skip("training-mode BatchNormalization is not an inference op")
    for inputs, outputs in case.data_sets:
        arrays = [_as_ir_array(v) for v in list(inputs) + list(outputs)]
        if any(v is None for v in arrays):
            pytest.skip("float8/int4/int2 data: not IR dtypes")
        named = dict(zip([n for n in node.input if n], arrays, strict=False))
        xs = [named.get(n) for n in node.input]  # None where ONNX leaves an input out
        xs = xs if node.op_type == "Resize" else [x for x in xs if x is not None]
        outputs = arrays[len(inputs):]
        op, args, attrs = BACKEND[node.op_type](at, xs, len(node.output))
        got = run(op, *args, **attrs)
        n_cmp = 1 if node.op_type == "LayerNormalization" else len(outputs)
        for y, want in zip(got[:n_cmp], outputs[:n_cmp], strict=True):
            assert y.dtype == want.dtype and y.shape == want.shape, (y.dtype, y.shape, want.dtype, want.shape)
            np.testing.assert_allclose(y, want, rtol=case.rtol, atol=case.atol)


def test_backend_cases_were_found() -> None:
    assert len(_BACKEND_NAMES) > 100
