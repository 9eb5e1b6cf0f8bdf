"""Quantization ops: quantize_linear and dequantize_linear (ONNX QuantizeLinear and
DequantizeLinear with integer quantized types).

    quantize_linear(x, scale, zp)   = saturate(round_half_even(x / scale) + zp)  : zp's dtype
    dequantize_linear(q, scale, zp) = (q - zp) * scale                           : scale's dtype

Both take exactly three inputs: the frontend supplies a zero zero point of the right
dtype when the model has none. `scale` and `zp` share one shape: a scalar (or one
element) per tensor, a 1-d vector per slice along `axis`, or a tensor of x's rank that
broadcasts to it (blocked quantization, blocks already expanded by the frontend).
`saturate` only matters for float8 outputs in ONNX; integer outputs always saturate.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops.registry import ShapeError, broadcast_shapes, norm_axis, register_op
from vcompile.ir.types import FLOAT_DTYPES, INT_DTYPES, TensorType


def _check_params(op: str, x: TensorType, scale: TensorType, zp: TensorType, a: Attrs) -> None:
    if scale.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"{op}: scale must be float, got {scale}")
    if zp.dtype not in INT_DTYPES:
        raise ShapeError(f"{op}: zero point must be an integer tensor, got {zp}")
    if scale.shape != zp.shape:
        raise ShapeError(f"{op}: scale {scale} and zero point {zp} must have one shape")
    s = scale.shape
    if scale.rank == 0 or s == (1,):
        return
    if scale.rank == 1:
        ax = norm_axis(a.int("axis"), x.rank, op)
        if s[0] != x.shape[ax]:
            raise ShapeError(f"{op}: per-axis scale {scale} must have dim {ax} of {x} "
                             f"({x.shape[ax]}) elements")
        return
    if scale.rank != x.rank or broadcast_shapes(x.shape, s) != x.shape:
        raise ShapeError(f"{op}: scale {scale} must be a scalar, a vector along axis "
                         f"{a['axis']} or a tensor broadcastable to {x}")


def _along_axis(v: np.ndarray, x: np.ndarray, a: Attrs) -> np.ndarray:
    """Reshape a scale or zero point so that it broadcasts against x."""
    if v.size == 1:
        return v.reshape(())
    if v.ndim == 1:
        shape = [1] * x.ndim
        shape[a.int("axis") % x.ndim] = v.size
        return v.reshape(shape)
    return v


def _quantize_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, scale, zp = ts
    if x.dtype not in FLOAT_DTYPES and x.dtype != "i32":
        raise ShapeError(f"quantize_linear: input must be float or i32, got {x}")
    _check_params("quantize_linear", x, scale, zp, a)
    if zp.dtype in ("i64", "u64"):
        raise ShapeError(f"quantize_linear: cannot quantize to {zp.dtype}; use at most 32 bits")
    return (x.with_dtype(zp.dtype),)


def _quantize_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, scale, zp = xs
    # NOTE: divide (not multiply by 1/scale) so ties round exactly as ONNX's x / y_scale.
    q = np.asarray(np.rint(x / _along_axis(scale, x, a)), np.float64)  # 0-d stays an array
    q += _along_axis(zp, x, a)
    info = np.iinfo(zp.dtype)
    q[np.isnan(q)] = info.min  # NaN saturates low, as onnxruntime (and our kernels) do
    return (np.clip(q, info.min, info.max).astype(zp.dtype),)


def _dequantize_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, scale, zp = ts
    if x.dtype not in INT_DTYPES:
        raise ShapeError(f"dequantize_linear: input must be an integer tensor, got {x}")
    _check_params("dequantize_linear", x, scale, zp, a)
    if zp.dtype != x.dtype:
        raise ShapeError(f"dequantize_linear: zero point {zp} must have the input's dtype {x.dtype}")
    return (x.with_dtype(scale.dtype),)


def _dequantize_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, scale, zp = xs
    dt = np.promote_types(scale.dtype, np.float32)
    diff = x.astype(np.int64) - _along_axis(zp, x, a).astype(np.int64)
    y = diff.astype(dt) * _along_axis(scale, x, a).astype(dt)
    return (y.astype(scale.dtype, copy=False),)


register_op("quantize_linear", 3, _quantize_infer, _quantize_eval,
            attrs={"axis": ("int", 1), "saturate": ("bool", True)},
            doc="ONNX QuantizeLinear to an integer type: the zero point's dtype")
register_op("dequantize_linear", 3, _dequantize_infer, _dequantize_eval,
            attrs={"axis": ("int", 1)},
            doc="ONNX DequantizeLinear: (x - zero_point) * scale, in the scale's dtype")
