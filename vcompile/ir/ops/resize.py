"""resize: ONNX Resize (opset 19+) as a separable, per-axis interpolation.

The frontend folds the ONNX roi/scales/sizes inputs and the axes and
keep_aspect_ratio_policy attributes into static attrs: `sizes` is the full output
shape and `scales` one factor per dim (out/in when the model gave sizes; the
policy's single scale when it used keep_aspect_ratio_policy). `roi` (starts, then
ends, over all dims) is read only by tf_crop_and_resize.

Each resized axis gets a 1-d weight matrix [out, in] built from the coordinate
transform and the mode's kernel (nearest, linear, cubic, with antialias), which is
then contracted with that axis; nearest gathers instead. Axes are resized in order,
in float64 for integer inputs (then rounded and saturated) and float32 otherwise,
which follows onnx.reference's Resize.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops.registry import ShapeError, register_op
from vcompile.ir.types import Dim, TensorType

_MODES = ("nearest", "linear", "cubic")
_TRANSFORMS = ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
               "half_pixel_symmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coords(a: Attrs, y: np.ndarray, n_in: int, scale: float,
                  roi: tuple[float, float]) -> np.ndarray:
    """Input coordinate of each output index `y` (float64) under the coordinate transform."""
    mode, n_out = a["coordinate_transformation_mode"], len(y)
    width = scale * n_in  # NOTE: the float output length, as onnx.reference uses it
    if mode == "align_corners":
        return np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)
    if mode == "asymmetric":
        return y / scale
    if mode == "tf_half_pixel_for_nn":  # Resize-11 only (tf2onnx's nearest at opset 11-12)
        return (y + 0.5) / scale
    if mode == "tf_crop_and_resize":
        lo, hi = roi
        if width == 1:
            return np.full(n_out, (hi - lo) * (n_in - 1) / 2 + lo * (n_in - 1))
        return y * (hi - lo) * (n_in - 1) / (width - 1) + lo * (n_in - 1)
    if mode == "pytorch_half_pixel":
        return np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / width)
        return offset + (y + 0.5) / scale - 0.5
    return (y + 0.5) / scale - 0.5  # half_pixel


def _cubic(t: np.ndarray, c: float) -> np.ndarray:
    """Keys' cubic convolution kernel with parameter c at distances t."""
    t = np.abs(t)
    near = ((c + 2) * t - (c + 3)) * t * t + 1
    far = ((c * t - 5 * c) * t + 8 * c) * t - 4 * c
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _kernel(a: Attrs, ratio: np.ndarray, scale: float) -> np.ndarray:
    """[out, taps] weights for taps at offsets start..start+taps-1 from floor(x), where
    ratio in (0, 1] is x's distance past that floor (1 on exact integers)."""
    mode, r = a["mode"], ratio[:, None]
    if mode == "nearest":
        nm = a["nearest_mode"]
        right = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5,
                 "floor": r == 1, "ceil": np.ones_like(r, dtype=bool)}[str(nm)]
        return np.concatenate([~right, right], axis=1).astype(np.float64)
    if mode == "linear":
        if not a["antialias"]:
            return np.concatenate([1 - r, r], axis=1)
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        w = np.clip(1 - np.abs((np.arange(start, 2 - start) - r) * s), 0, 1)
        return w / w.sum(axis=1, keepdims=True)
    c = a.float("cubic_coeff_a")
    s = min(scale, 1.0) if a["antialias"] else 1.0
    start = int(np.floor(-2 / s) + 1)
    w = _cubic(s * (np.arange(start, 2 - start) - r), c)
    return w / w.sum(axis=1, keepdims=True) if a["antialias"] else w


def axis_weights(a: Attrs, n_in: int, n_out: int, scale: float,
                 roi: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), each [out, taps]: output i = sum_j weights[i,j] * x[indices[i,j]]."""
    x = source_coords(a, np.arange(n_out, dtype=np.float64), n_in, scale, roi)
    fl = np.floor(x).astype(np.int64)
    ratio = np.where(x == fl, 1.0, x - fl)
    w = _kernel(a, ratio, scale)
    n = w.shape[1]  # always even
    # NOTE: the same neighbour choice as onnx.reference: with the edge-padded position
    # xp = x + n/2, the window starts one past floor(xp) - n/2, or at it on exact integers.
    xp = x + n // 2
    p = np.floor(xp).astype(np.int64)
    start = p + np.where(xp == p, -(n // 2), 1 - n // 2) - n // 2
    idx = start[:, None] + np.arange(n)[None, :]
    if a["exclude_outside"]:
        w = np.where((idx < 0) | (idx >= n_in), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, n_in - 1), w


def _resize_axis(x: np.ndarray, axis: int, n_out: int, scale: float,
                 roi: tuple[float, float], a: Attrs) -> np.ndarray:
    idx, w = axis_weights(a, x.shape[axis], n_out, scale, roi)
    if a["mode"] == "nearest" and not a["exclude_outside"]:
        y = np.take(x, idx[np.arange(n_out), np.argmax(w, axis=1)], axis=axis)
    else:
        mat = np.zeros((n_out, x.shape[axis]), dtype=np.float64)
        np.add.at(mat, (np.repeat(np.arange(n_out), w.shape[1]), idx.ravel()), w.ravel())
        y = np.moveaxis(np.tensordot(x, mat.T.astype(x.dtype), axes=([axis], [0])), -1, axis)
    if a["coordinate_transformation_mode"] == "tf_crop_and_resize":
        src = source_coords(a, np.arange(n_out, dtype=np.float64), x.shape[axis], scale, roi)
        outside = (src < 0) | (src > x.shape[axis] - 1)
        shape = [1] * x.ndim
        shape[axis] = n_out
        y = np.where(outside.reshape(shape), np.asarray(a["extrapolation_value"], y.dtype), y)
    return y


def _resize_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x = xs[0]
    sizes = a.ints("sizes")  # the interpreter has bound any symbols
    scales = a.floats("scales")
    roi = a.floats("roi") or (0.0,) * x.ndim + (1.0,) * x.ndim
    work = np.float64 if x.dtype.kind != "f" else np.promote_types(x.dtype, np.float32)
    y = x.astype(work, copy=False)
    for ax in range(x.ndim):
        lo, hi = roi[ax], roi[ax + x.ndim]
        if math.isclose(scales[ax], 1.0) and sizes[ax] == x.shape[ax] and (
                math.isclose(lo, 0.0) and math.isclose(hi, 1.0)):
            continue  # identity on this axis, as onnx.reference skips it
        y = _resize_axis(y, ax, sizes[ax], scales[ax], (lo, hi), a)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        return (np.clip(np.round(y), info.min, info.max).astype(x.dtype),)
    return (y.astype(x.dtype, copy=False),)


def _resize_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, sizes, scales = ts[0], a.dims("sizes"), a.floats("scales")
    if len(sizes) != x.rank or len(scales) != x.rank:
        raise ShapeError(f"resize: need {x.rank} sizes and scales for {x}, got "
                         f"sizes={list(sizes)}, scales={list(scales)}")
    for key, ok in (("mode", _MODES), ("coordinate_transformation_mode", _TRANSFORMS),
                    ("nearest_mode", _NEAREST)):
        if a[key] not in ok:
            raise ShapeError(f"resize: unknown {key} {a[key]!r}; use one of {', '.join(ok)}")
    if a["antialias"] and a["mode"] == "nearest":
        raise ShapeError("resize: antialias applies to linear and cubic modes, not nearest")
    crop = a["coordinate_transformation_mode"] == "tf_crop_and_resize"
    if crop and len(a.floats("roi")) != 2 * x.rank:
        raise ShapeError(f"resize: tf_crop_and_resize needs a roi of {2 * x.rank} values "
                         f"(starts then ends), got {list(a.floats('roi'))}")
    if x.dtype == "bool" or min(scales) <= 0:
        raise ShapeError(f"resize: cannot resize {x} with scales {list(scales)}")
    out: list[Dim] = []
    for d, s in zip(x.shape, sizes, strict=True):
        if isinstance(d, str) and s != d:
            raise ShapeError(f"resize: symbolic dim {d} of {x} must keep its size, got {s}")
        out.append(s)
    return (x.with_shape(tuple(out)),)


register_op("resize", 1, _resize_infer, _resize_eval,
            attrs={"sizes": ("dims",), "scales": ("floats",), "mode": ("str", "nearest"),
                   "coordinate_transformation_mode": ("str", "half_pixel"),
                   "nearest_mode": ("str", "round_prefer_floor"),
                   "cubic_coeff_a": ("float", -0.75), "exclude_outside": ("bool", False),
                   "extrapolation_value": ("float", 0.0), "roi": ("floats", ()),
                   "antialias": ("bool", False)},
            doc="ONNX Resize with static output sizes and per-dim scales")
