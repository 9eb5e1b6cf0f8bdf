"""Injective ops that move data without arithmetic: reshape, transpose, concat,
split, slice, squeeze/unsqueeze, expand, tile, pad, gather.

Shapes, axes and pads are attrs (static); frontends fold the ONNX shape tensors
that compute them. `reshape` may name symbolic dims in its target shape.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops.registry import ShapeError, broadcast_shapes, norm_axis, register_op, same_dtype
from vcompile.ir.types import Dim, TensorType


def _reshape_target(src: tuple[Dim, ...], target: Sequence[Dim]) -> tuple[Dim, ...]:
    if list(target).count(-1) > 1:
        raise ShapeError(f"reshape: at most one -1 in shape {list(target)}")
    if -1 not in target:
        out = tuple(target)
    else:
        num = [d for d in src]
        den = [d for d in target if d != -1]
        for d in list(den):  # cancel symbols that appear on both sides
            if isinstance(d, str) and d in num:
                num.remove(d)
                den.remove(d)
        if any(isinstance(d, str) for d in num + den):
            raise ShapeError(f"reshape: cannot infer -1 from {list(src)} to {list(target)}")
        n, m = math.prod(_ints(num)), math.prod(_ints(den))
        if m == 0 or n % m:
            raise ShapeError(f"reshape: cannot reshape {list(src)} into {list(target)}")
        out = tuple(n // m if d == -1 else d for d in target)
    if all(isinstance(d, int) for d in src + out):
        if math.prod(_ints(src)) != math.prod(_ints(out)):
            raise ShapeError(f"reshape: cannot reshape {list(src)} into {list(target)}")
    return out


def _ints(dims: Sequence[Dim]) -> list[int]:
    """Dims already checked to be ints, typed as such."""
    return [d for d in dims if isinstance(d, int)]


def _reshape_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    # NOTE: the interpreter substitutes bound symbols into "dims" attrs before eval.
    return (xs[0].reshape(a.ints("shape")),)


register_op("reshape", 1,
            lambda ts, a: (ts[0].with_shape(_reshape_target(ts[0].shape, a.dims("shape"))),),
            _reshape_eval, attrs={"shape": ("dims",)}, kind="injective", view=True, selection=True)


def _transpose_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    perm = a.ints("perm")
    if sorted(perm) != list(range(ts[0].rank)):
        raise ShapeError(f"transpose: perm {list(perm)} is not a permutation of rank {ts[0].rank}")
    return (ts[0].with_shape(tuple(ts[0].shape[p] for p in perm)),)


register_op("transpose", 1, _transpose_infer,
            lambda xs, a: (np.transpose(xs[0], a.ints("perm")),), attrs={"perm": ("ints",)},
            kind="injective", selection=True)


def _concat_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    dt = same_dtype(ts, "concat")
    r = ts[0].rank
    ax = norm_axis(a.int("axis"), r, "concat")
    for t in ts:
        if t.rank != r or any(t.shape[i] != ts[0].shape[i] for i in range(r) if i != ax):
            raise ShapeError(f"concat: shapes {', '.join(str(t) for t in ts)} differ off axis {ax}")
    dims = [t.shape[ax] for t in ts]
    total: Dim = sum(_ints(dims)) if all(isinstance(d, int) for d in dims) else _sym_sum(dims)
    return (TensorType(dt, ts[0].shape[:ax] + (total,) + ts[0].shape[ax + 1:]),)


def _sym_sum(dims: Sequence[Dim]) -> Dim:
    nonzero = [d for d in dims if d != 0]
    if len(nonzero) == 1:
        return nonzero[0]
    raise ShapeError(f"concat: cannot add symbolic dims {list(dims)}")


register_op("concat", (1, None), _concat_infer,
            lambda xs, a: (np.concatenate(xs, axis=a.int("axis")),), attrs={"axis": ("int",)},
            kind="injective")


def _split_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    ax = norm_axis(a.int("axis"), ts[0].rank, "split")
    sizes, dim = list(a.ints("sizes")), ts[0].shape[ax]
    if isinstance(dim, int) and sum(sizes) != dim:
        raise ShapeError(f"split: sizes {sizes} do not add up to dim {dim} of axis {ax}")
    return tuple(ts[0].with_shape(ts[0].shape[:ax] + (s,) + ts[0].shape[ax + 1:]) for s in sizes)


def _split_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    cuts = np.cumsum(a.ints("sizes"))[:-1]
    return tuple(np.split(xs[0], cuts, axis=a.int("axis")))


register_op("split", 1, _split_infer, _split_eval,
            attrs={"axis": ("int", 0), "sizes": ("ints",)}, kind="injective", selection=True,
            num_outputs=lambda a, n: len(a.ints("sizes")))


def _slices(shape: tuple[Dim, ...], a: Attrs) -> list[slice]:
    out = [slice(None)] * len(shape)
    for st, en, ax, sp in zip(a.ints("starts"), a.ints("ends"), a.ints("axes"), a.ints("steps"), strict=True):
        if sp == 0:
            raise ShapeError("slice: a step of 0 is not allowed")
        out[norm_axis(ax, len(shape), "slice")] = slice(st, en, sp)
    return out


def _slice_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    t = ts[0]
    if not len(a.ints("starts")) == len(a.ints("ends")) == len(a.ints("axes")) == len(a.ints("steps")):
        raise ShapeError("slice: starts, ends, axes and steps must have one length")
    dims: list[Dim] = []
    for d, s in zip(t.shape, _slices(t.shape, a), strict=True):
        if s == slice(None):
            dims.append(d)
        elif isinstance(d, str):
            if s.start in (0, None) and s.step == 1 and s.stop is not None and s.stop >= 2**31 - 1:
                dims.append(d)
            else:
                raise ShapeError(f"slice: cannot slice symbolic dim {d} with {s}")
        else:
            dims.append(len(range(*s.indices(d))))
    return (t.with_shape(tuple(dims)),)


register_op("slice", 1, _slice_infer,
            lambda xs, a: (xs[0][tuple(_slices(xs[0].shape, a))],),
            attrs={"starts": ("ints",), "ends": ("ints",), "axes": ("ints",), "steps": ("ints",)},
            kind="injective", selection=True)


def _squeeze_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    axes = {norm_axis(x, ts[0].rank, "squeeze") for x in a.ints("axes")}
    for ax in axes:
        if ts[0].shape[ax] != 1:
            raise ShapeError(f"squeeze: dim {ax} of {ts[0]} is not 1")
    return (ts[0].with_shape(tuple(d for i, d in enumerate(ts[0].shape) if i not in axes)),)


register_op("squeeze", 1, _squeeze_infer,
            lambda xs, a: (np.squeeze(xs[0], axis=tuple({ax % xs[0].ndim for ax in a.ints("axes")})),),
            attrs={"axes": ("ints",)},
            kind="injective", view=True, selection=True)


def _unsqueeze_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    r = ts[0].rank + len(a.ints("axes"))
    axes = sorted(norm_axis(x, r, "unsqueeze") for x in a.ints("axes"))
    if len(set(axes)) != len(axes):
        raise ShapeError(f"unsqueeze: repeated axes {list(a.ints('axes'))}")
    dims = list(ts[0].shape)
    for ax in axes:
        dims.insert(ax, 1)
    return (ts[0].with_shape(tuple(dims)),)


def _unsqueeze_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    r = xs[0].ndim + len(a.ints("axes"))
    return (np.expand_dims(xs[0], tuple(sorted(x % r for x in a.ints("axes")))),)


register_op("unsqueeze", 1, _unsqueeze_infer, _unsqueeze_eval, attrs={"axes": ("ints",)},
            kind="injective", view=True, selection=True)

def _expand_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    shape = np.broadcast_shapes(xs[0].shape, a.ints("shape"))
    return (np.broadcast_to(xs[0], shape).copy(),)


register_op("expand", 1,
            lambda ts, a: (ts[0].with_shape(broadcast_shapes(ts[0].shape, a.dims("shape"))),),
            _expand_eval, attrs={"shape": ("dims",)}, kind="injective")


def _tile_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    reps = a.ints("repeats")
    if len(reps) != ts[0].rank:
        raise ShapeError(f"tile: {len(reps)} repeats for rank {ts[0].rank}")
    dims = tuple(d * r if isinstance(d, int) else (d if r == 1 else _no_sym("tile", d))
                 for d, r in zip(ts[0].shape, reps, strict=True))
    return (ts[0].with_shape(dims),)


def _no_sym(op: str, d: Dim) -> Dim:
    raise ShapeError(f"{op}: cannot repeat symbolic dim {d}")


register_op("tile", 1, _tile_infer, lambda xs, a: (np.tile(xs[0], a.ints("repeats")),),
            attrs={"repeats": ("ints",)}, kind="injective")


def _pad_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    t, pads = ts[0], a.ints("pads")
    if len(pads) != 2 * t.rank:
        raise ShapeError(f"pad: {len(pads)} pads for rank {t.rank}; need begin and end per dim")
    if a["mode"] not in ("constant", "reflect", "edge", "wrap"):
        raise ShapeError(f"pad: unknown mode {a['mode']!r}; use constant, reflect, edge or wrap")
    dims: list[Dim] = []
    for i, d in enumerate(t.shape):
        lo, hi = pads[i], pads[i + t.rank]
        dims.append(d + lo + hi if isinstance(d, int) else (d if lo == hi == 0 else _no_sym("pad", d)))
    return (t.with_shape(tuple(dims)),)


def _pad_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, r, pads = xs[0], xs[0].ndim, a.ints("pads")
    crop = tuple(slice(max(-pads[i], 0), x.shape[i] - max(-pads[i + r], 0)) for i in range(r))
    x = x[crop]  # negative pads crop first
    widths = [(max(pads[i], 0), max(pads[i + r], 0)) for i in range(r)]
    modes: dict[str, Literal["constant", "reflect", "edge", "wrap"]] = {
        "constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}
    mode = modes[a.str("mode")]
    if mode == "constant":
        value = np.asarray(a.float("value")).astype(x.dtype)
        return (np.pad(x, widths, mode="constant", constant_values=value),)
    return (np.pad(x, widths, mode=mode),)


register_op("pad", 1, _pad_infer, _pad_eval,
            attrs={"pads": ("ints",), "mode": ("str", "constant"), "value": ("float", 0.0)},
            kind="injective")


def _gather_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    data, idx = ts
    if idx.dtype not in ("i32", "i64"):
        raise ShapeError(f"gather: indices must be i32 or i64, got {idx.dtype}")
    ax = norm_axis(a.int("axis"), data.rank, "gather")
    return (data.with_shape(data.shape[:ax] + idx.shape + data.shape[ax + 1:]),)


def _gather_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    data, idx = xs
    ax = a.int("axis") % data.ndim
    idx = np.where(idx < 0, idx + data.shape[ax], idx)
    return (np.take(data, idx, axis=ax),)


register_op("gather", 2, _gather_infer, _gather_eval, attrs={"axis": ("int", 0)},
            kind="injective")


def _gather_nd_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    data, idx = ts
    b = a.int("batch_dims")
    if idx.dtype not in ("i32", "i64") or idx.rank < 1:
        raise ShapeError(f"gather_nd: indices must be i32/i64 of rank >= 1, got {idx}")
    k = idx.shape[-1]
    if not isinstance(k, int) or b + k > data.rank or idx.shape[:b] != data.shape[:b]:
        raise ShapeError(f"gather_nd: indices {idx} do not fit data {data} with batch_dims={b}")
    return (data.with_shape(idx.shape[:-1] + data.shape[b + k:]),)


def _gather_nd_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    data, idx = xs
    b, k = a.int("batch_dims"), idx.shape[-1]
    idx = np.where(idx < 0, idx + np.array(data.shape[b:b + k]), idx)
    nb = int(np.prod(data.shape[:b], dtype=np.int64))
    flat = data.reshape((nb,) + data.shape[b:])
    ind = idx.reshape(nb, -1, k)
    picked = flat[(np.arange(nb)[:, None],) + tuple(ind[..., j] for j in range(k))]
    return (picked.reshape(idx.shape[:-1] + data.shape[b + k:]),)


register_op("gather_nd", 2, _gather_nd_infer, _gather_nd_eval,
            attrs={"batch_dims": ("int", 0)}, kind="injective",
            doc="ONNX GatherND: index the leading dims of data by tuples in the last axis of indices")
