"""Index and selection ops: argmax/argmin, topk, gather_elements, scatter_elements,
scatter_nd, one_hot, reverse_sequence, max_unpool, grid_sample, roi_align.

Each follows its ONNX operator. Negative indices count from the end of their axis.
NaN: argmax/argmin scan in order and move only on a strict improvement (`>=`/`<=` with
select_last_index), as onnxruntime does, so a NaN first element wins and a later NaN
never does. topk orders equal values by lower index first; its NaN order is unspecified.
grid_sample in cubic mode with border padding clamps each tap, and roi_align's max mode
takes the max of the weighted corners, both as onnxruntime (onnx.reference differs on the
first).
Output shapes depend only on input shapes and attrs (k, depth and output_shape are
attrs): ops with data-dependent shapes (NonZero, Unique, Compress on a run-time mask)
are not in the IR; the ONNX frontend folds them when their inputs are known at import.
"""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops.registry import Eval, Infer, ShapeError, norm_axis, register_op
from vcompile.ir.types import FLOAT_DTYPES, TensorType

_INDEX = ("i32", "i64")
REDUCTIONS = ("none", "add", "mul", "max", "min")
_UFUNC = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _check_index(op: str, t: TensorType) -> None:
    if t.dtype not in _INDEX:
        raise ShapeError(f"{op}: indices must be i32 or i64, got {t.dtype}")


# ---- argmax, argmin ------------------------------------------------------------------

def _arg_infer(op: str) -> Infer:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        x = ts[0]
        ax = norm_axis(a.int("axis"), x.rank, op)
        shape = x.shape[:ax] + ((1,) if a.bool("keepdims") else ()) + x.shape[ax + 1:]
        return (TensorType("i64", shape),)
    return infer


def arg_select(x: np.ndarray, axis: int, largest: bool, last: bool) -> np.ndarray:
    """Index of the max (min) along `axis`, keepdims; a NaN counts only when first."""
    ax = axis % x.ndim
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        best = (np.nanmax if largest else np.nanmin)(x, axis=ax, keepdims=True)
    hit = x == best
    n = x.shape[ax]
    if last:
        idx = n - 1 - np.argmax(np.flip(hit, ax), axis=ax, keepdims=True)
    else:
        idx = np.argmax(hit, axis=ax, keepdims=True)
    if x.dtype.kind == "f" or x.dtype.name == "bfloat16":
        idx = np.where(np.isnan(np.take(x, [0], axis=ax)), 0, idx)
    return idx.astype(np.int64)


def _arg_eval(largest: bool) -> Eval:
    def ev(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
        x, ax = xs[0], a.int("axis") % max(xs[0].ndim, 1)
        if x.shape[ax] == 0:
            raise ShapeError("argmax/argmin: the reduced axis is empty")
        idx = arg_select(x, ax, largest, a.bool("select_last_index"))
        return (idx if a.bool("keepdims") else np.squeeze(idx, ax),)
    return ev


for _op, _largest in (("argmax", True), ("argmin", False)):
    register_op(_op, 1, _arg_infer(_op), _arg_eval(_largest),
                attrs={"axis": ("int", 0), "keepdims": ("bool", True),
                       "select_last_index": ("bool", False)},
                category="reduce", doc=f"ONNX Arg{_op[3:].title()}: i64 index along axis")


# ---- topk ------------------------------------------------------------------------------

def _topk_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, k = ts[0], a.int("k")
    ax = norm_axis(a.int("axis"), x.rank, "topk")
    n = x.shape[ax]
    if k < 0 or isinstance(n, int) and k > n:
        raise ShapeError(f"topk: k={k} is out of range for axis {ax} of {x}")
    shape = x.shape[:ax] + (k,) + x.shape[ax + 1:]
    return (x.with_shape(shape), TensorType("i64", shape))


def topk_indices(x: np.ndarray, k: int, axis: int, largest: bool) -> np.ndarray:
    """The k indices along axis in ONNX order: by value, equal values by lower index."""
    if largest:  # a stable ascending sort of the flipped axis, read backwards
        n = x.shape[axis]
        order = n - 1 - np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    return np.take(order, np.arange(k), axis=axis).astype(np.int64)


def _topk_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x = xs[0]
    ax = a.int("axis") % x.ndim
    idx = topk_indices(x, a.int("k"), ax, a.bool("largest"))
    return (np.take_along_axis(x, idx, ax), idx)


register_op("topk", 1, _topk_infer, _topk_eval,
            attrs={"k": ("int",), "axis": ("int", -1), "largest": ("bool", True),
                   "sorted": ("bool", True)},
            num_outputs=lambda a, n: 2, category="reduce",
            doc="ONNX TopK (k static): values and i64 indices, always sorted")


# ---- gather_elements, scatter_elements, scatter_nd -------------------------------------

def _gather_elements_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    data, idx = ts
    _check_index("gather_elements", idx)
    norm_axis(a.int("axis"), data.rank, "gather_elements")
    if idx.rank != data.rank:
        raise ShapeError(f"gather_elements: indices {idx} must have the rank of data {data}")
    return (data.with_shape(idx.shape),)


def _wrap(idx: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    return np.where(idx < 0, idx + n, idx)


def _gather_elements_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    data, idx = xs
    ax = a.int("axis") % data.ndim
    return (np.take_along_axis(data, _wrap(idx, data.shape[ax]).astype(np.int64), ax),)


register_op("gather_elements", 2, _gather_elements_infer, _gather_elements_eval,
            attrs={"axis": ("int", 0)}, kind="injective",
            doc="ONNX GatherElements: out[i][j] = data[idx[i][j]][j] (axis 0)")


def _scatter(ufunc_name: str, out: np.ndarray, where: tuple[np.ndarray, ...],
             upd: np.ndarray) -> np.ndarray:
    if ufunc_name == "none":
        out[where] = upd  # duplicate indices: the last update wins (ONNX: undefined)
    else:
        _UFUNC[ufunc_name].at(out, where, upd)
    return out


def _check_reduction(op: str, a: Attrs) -> None:
    if a.str("reduction") not in REDUCTIONS:
        raise ShapeError(f"{op}: reduction {a.str('reduction')!r} is not one of "
                         f"{', '.join(REDUCTIONS)}")


def _scatter_elements_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    data, idx, upd = ts
    _check_index("scatter_elements", idx)
    _check_reduction("scatter_elements", a)
    norm_axis(a.int("axis"), data.rank, "scatter_elements")
    if idx.shape != upd.shape or idx.rank != data.rank or upd.dtype != data.dtype:
        raise ShapeError(f"scatter_elements: indices {idx} and updates {upd} must have one "
                         f"shape, the rank of data {data}, and updates its dtype")
    return (data,)


def _scatter_elements_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    data, idx, upd = xs
    ax = a.int("axis") % data.ndim
    where: list[np.ndarray] = list(np.indices(idx.shape, sparse=True))
    where[ax] = _wrap(idx, data.shape[ax]).astype(np.int64)
    return (_scatter(a.str("reduction"), data.copy(), tuple(where), upd),)


register_op("scatter_elements", 3, _scatter_elements_infer, _scatter_elements_eval,
            attrs={"axis": ("int", 0), "reduction": ("str", "none")},
            doc="ONNX ScatterElements: data with data[idx[i][j]][j] = updates[i][j] (axis 0)")


def _scatter_nd_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    data, idx, upd = ts
    _check_index("scatter_nd", idx)
    _check_reduction("scatter_nd", a)
    k = idx.shape[-1] if idx.rank else None
    if not isinstance(k, int) or k > data.rank or upd.dtype != data.dtype or \
            upd.shape != idx.shape[:-1] + data.shape[k:]:
        raise ShapeError(f"scatter_nd: indices {idx} and updates {upd} do not fit data {data}")
    return (data,)


def _scatter_nd_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    data, idx, upd = xs
    k = idx.shape[-1]
    ind = _wrap(idx, np.array(data.shape[:k])).reshape(-1, k).astype(np.int64)
    upd = upd.reshape((ind.shape[0],) + data.shape[k:])
    return (_scatter(a.str("reduction"), data.copy(), tuple(ind.T), upd),)


register_op("scatter_nd", 3, _scatter_nd_infer, _scatter_nd_eval,
            attrs={"reduction": ("str", "none")},
            doc="ONNX ScatterND: data with data[idx[i]] = updates[i]")


# ---- one_hot, reverse_sequence, max_unpool ---------------------------------------------

def _one_hot_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    idx, values = ts
    _check_index("one_hot", idx)
    if values.shape != (2,) or a.int("depth") < 1:
        raise ShapeError(f"one_hot: values must be [off, on] (got {values}) and depth >= 1")
    ax = norm_axis(a.int("axis"), idx.rank + 1, "one_hot")
    return (values.with_shape(idx.shape[:ax] + (a.int("depth"),) + idx.shape[ax:]),)


def _one_hot_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    idx, values = xs
    depth = a.int("depth")
    ax = a.int("axis") % (idx.ndim + 1)
    classes = np.arange(depth).reshape((depth,) + (1,) * (idx.ndim - ax))
    hit = np.expand_dims(_wrap(idx, depth), ax) == classes  # out of range: all off
    return (np.where(hit, values[1], values[0]).astype(values.dtype),)


register_op("one_hot", 2, _one_hot_infer, _one_hot_eval,
            attrs={"depth": ("int",), "axis": ("int", -1)}, kind="injective",
            doc="ONNX OneHot: values [off, on], depth classes inserted at axis")


def _reverse_sequence_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, lens = ts
    _check_index("reverse_sequence", lens)
    b, t = a.int("batch_axis"), a.int("time_axis")
    if x.rank < 2 or {b, t} != {0, 1} or lens.shape != (x.shape[b],):
        raise ShapeError(f"reverse_sequence: needs batch/time axes 0 and 1 and "
                         f"sequence_lens of the batch size, got {x} and {lens}")
    return (x,)


def _reverse_sequence_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, lens = xs
    t = a.int("time_axis")  # the batch axis is the other of 0 and 1
    steps = np.arange(x.shape[t])[:, None] if t == 0 else np.arange(x.shape[t])[None, :]
    n = lens[None, :] if t == 0 else lens[:, None]
    src = np.where(steps < n, n - 1 - steps, steps)  # [T, B] or [B, T]
    src = src.reshape(src.shape + (1,) * (x.ndim - 2))
    return (np.take_along_axis(x, np.broadcast_to(src, x.shape), t),)


register_op("reverse_sequence", 2, _reverse_sequence_infer, _reverse_sequence_eval,
            attrs={"batch_axis": ("int", 1), "time_axis": ("int", 0)}, kind="injective",
            doc="ONNX ReverseSequence: reverse the first sequence_lens[b] steps of batch b")


def _max_unpool_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, idx = ts
    _check_index("max_unpool", idx)
    out = a.ints("output_shape")
    if idx.shape != x.shape or len(out) != x.rank or tuple(out[:2]) != x.shape[:2]:
        raise ShapeError(f"max_unpool: indices {idx} and output_shape {list(out)} do not fit {x}")
    return (x.with_shape(tuple(out)),)


def _max_unpool_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, idx = xs
    out = np.zeros(int(np.prod(a.ints("output_shape"))), x.dtype)
    out[idx.reshape(-1)] = x.reshape(-1)  # indices are flat over the whole output (MaxPool's)
    return (out.reshape(a.ints("output_shape")),)


register_op("max_unpool", 2, _max_unpool_infer, _max_unpool_eval,
            attrs={"output_shape": ("ints",)},
            doc="ONNX MaxUnpool: x scattered to MaxPool's flat indices, zeros elsewhere")


# ---- grid_sample -----------------------------------------------------------------------

GRID_MODES = ("linear", "nearest", "cubic")
GRID_PADDING = ("zeros", "border", "reflection")


def _grid_sample_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, grid = ts
    r = x.rank - 2
    if a.str("mode") not in GRID_MODES or a.str("padding_mode") not in GRID_PADDING:
        raise ShapeError(f"grid_sample: mode {a.str('mode')!r} / padding_mode "
                         f"{a.str('padding_mode')!r} unknown")
    if r < 1 or grid.rank != x.rank or grid.shape[-1] != r or grid.shape[0] != x.shape[0] \
            or x.dtype not in FLOAT_DTYPES or grid.dtype != x.dtype:
        raise ShapeError(f"grid_sample: grid {grid} does not fit data {x}")
    return (x.with_shape(x.shape[:2] + grid.shape[1:-1]),)


def _reflect(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    if span <= 0:
        return np.full_like(v, lo)
    below, d = v < lo, np.where(v < lo, lo - v, v - hi)
    n, r = np.trunc(d / span), d - np.trunc(d / span) * span
    even = n % 2 == 0
    low = np.where(even, lo + r, hi - r)
    high = np.where(even, hi - r, lo + r)
    return np.where(below, low, np.where(v > hi, high, v))


def _cubic(t: np.ndarray) -> list[np.ndarray]:
    al = -0.75
    def far(s: np.ndarray) -> np.ndarray:
        return ((al * s - 5 * al) * s + 8 * al) * s - 4 * al
    def near(s: np.ndarray) -> np.ndarray:
        return ((al + 2) * s - (al + 3)) * s * s + 1
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _grid_sample_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, grid = xs
    mode, pad, corners = a.str("mode"), a.str("padding_mode"), a.bool("align_corners")
    sizes = x.shape[2:]
    coords = np.moveaxis(grid.astype(np.float64)[..., ::-1], -1, 0)  # [r, N, *out]
    taps = []  # per spatial dim: [(index, weight), ...]
    for c, n in zip(coords, sizes, strict=True):
        lo, hi = (0.0, n - 1.0) if corners else (-0.5, n - 0.5)
        c = (c + 1) / 2 * (n - 1) if corners else ((c + 1) * n - 1) / 2
        if mode == "nearest":
            c = np.rint(c)
        out = (c < lo) | (c > hi)
        if pad == "border" and mode != "cubic":  # cubic clamps each tap (onnxruntime, torch)
            c = np.where(out, np.clip(c, 0, n - 1), c)
        elif pad == "reflection":
            c = np.where(out, _reflect(c, lo, hi), c)
        f0 = np.floor(c)
        if mode == "nearest":
            dim_taps = [(np.trunc(c), np.ones_like(c))]
        elif mode == "linear":
            dim_taps = [(f0, 1 - (c - f0)), (f0 + 1, c - f0)]
        else:
            dim_taps = [(f0 + k - 1, w) for k, w in enumerate(_cubic(c - f0))]
        taps.append([(_fetch_index(i, n, lo, hi, pad), w) for i, w in dim_taps])
    batch = np.arange(x.shape[0]).reshape((-1,) + (1,) * (grid.ndim - 2))
    y = np.zeros(grid.shape[:-1] + (x.shape[1],), np.float64)  # [N, *out, C]
    for combo in itertools.product(*taps):
        w = np.prod([t[1] for t in combo], axis=0)
        ok = np.all([t[0][1] for t in combo], axis=0)
        v = x[(batch, slice(None)) + tuple(t[0][0] for t in combo)]  # [N, *out, C]
        y += np.where(ok, w, 0)[..., None] * v
    return (np.moveaxis(y, -1, 1).astype(x.dtype),)


def _fetch_index(i: np.ndarray, n: int, lo: float, hi: float,
                 pad: str) -> tuple[np.ndarray, np.ndarray]:
    """(clamped integer index, whether the tap counts) of sample position `i`."""
    if pad == "zeros":
        ok = (i >= 0) & (i < n)
    else:
        ok = np.ones(i.shape, bool)
        if pad == "reflection":
            i = np.trunc(_reflect(i, lo, hi))
    return np.clip(i, 0, n - 1).astype(np.int64), ok


register_op("grid_sample", 2, _grid_sample_infer, _grid_sample_eval,
            attrs={"mode": ("str", "linear"), "padding_mode": ("str", "zeros"),
                   "align_corners": ("bool", False)},
            doc="ONNX GridSample: sample x at grid's normalized [-1, 1] coordinates")


# ---- roi_align -------------------------------------------------------------------------

def _roi_align_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, rois, batch = ts
    _check_index("roi_align", batch)
    if a.str("mode") not in ("avg", "max") or a.str("coordinate_transformation_mode") not in (
            "half_pixel", "output_half_pixel"):
        raise ShapeError(f"roi_align: mode {a.str('mode')!r} / coordinate_transformation_mode "
                         f"{a.str('coordinate_transformation_mode')!r} unknown")
    if x.rank != 4 or rois.rank != 2 or rois.shape[1] != 4 or batch.shape != rois.shape[:1] \
            or rois.dtype != x.dtype:
        raise ShapeError(f"roi_align: rois {rois} and batch_indices {batch} do not fit {x}")
    return (x.with_shape((rois.shape[0], x.shape[1], a.int("output_height"),
                          a.int("output_width"))),)


def _roi_taps(start: float, size: float, bins: int, grid: int,
              n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sample taps along one axis, as onnxruntime: ([low, high] indices, their weights),
    each [bins * grid]; a sample outside [-1, n] weighs 0."""
    b = size / bins
    s = (start + np.arange(bins)[:, None] * b + (np.arange(grid) + 0.5) * b / grid).reshape(-1)
    ok = (s >= -1.0) & (s <= n)
    s = np.maximum(s, 0)
    lo = np.trunc(s).astype(np.int64)
    edge = lo >= n - 1
    lo = np.where(edge, n - 1, lo)
    hi = np.where(edge, n - 1, lo + 1)
    frac = np.where(edge, 0.0, s - lo)
    return [lo, hi], [np.where(ok, 1 - frac, 0.0), np.where(ok, frac, 0.0)]


def _roi_align_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, rois, batch = xs
    ph, pw, ratio = a.int("output_height"), a.int("output_width"), a.int("sampling_ratio")
    half = a.str("coordinate_transformation_mode") == "half_pixel"
    h, w = x.shape[2:]
    out = np.zeros((rois.shape[0], x.shape[1], ph, pw), np.float64)
    for r, (roi, bi) in enumerate(zip(rois.astype(np.float64), batch, strict=True)):
        x0, y0, x1, y1 = roi * a.float("spatial_scale") - (0.5 if half else 0.0)
        rh, rw = (y1 - y0, x1 - x0) if half else (max(y1 - y0, 1.0), max(x1 - x0, 1.0))
        gh = ratio if ratio > 0 else int(np.ceil(rh / ph))
        gw = ratio if ratio > 0 else int(np.ceil(rw / pw))
        (yi, wy), (xi, wx) = _roi_taps(y0, rh, ph, gh, h), _roi_taps(x0, rw, pw, gw, w)
        img = x[int(bi)].astype(np.float64)
        terms = [wy[i][:, None] * wx[j][None, :] * img[:, yi[i][:, None], xi[j][None, :]]
                 for i in (0, 1) for j in (0, 1)]  # [C, ph * gh, pw * gw] each
        if a.str("mode") == "avg":
            v = sum(terms).reshape(-1, ph, gh, pw, gw).sum((2, 4)) / max(gh * gw, 1)
        else:  # onnxruntime's max: of the weighted corners, not of the interpolated value
            v = np.max(terms, axis=0).reshape(-1, ph, gh, pw, gw).max((2, 4))
        out[r] = v
    return (out.astype(x.dtype),)


register_op("roi_align", 3, _roi_align_infer, _roi_align_eval,
            attrs={"mode": ("str", "avg"), "output_height": ("int", 1), "output_width": ("int", 1),
                   "sampling_ratio": ("int", 0), "spatial_scale": ("float", 1.0),
                   "coordinate_transformation_mode": ("str", "half_pixel")},
            doc="ONNX RoiAlign: x [N,C,H,W], rois [R,4] (x1,y1,x2,y2), batch_indices [R]")
