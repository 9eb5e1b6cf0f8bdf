"""Pooling: max_pool{1,2,3}d and avg_pool{1,2,3}d with ONNX MaxPool/AveragePool semantics.

`pads` are explicit (begins, then ends); the frontend resolves ONNX auto_pad. In
ceil mode the last window may run past the end padding; a window that would start
in the end padding is dropped. Max pooling treats padding as -inf; average pooling
divides by the number of real input elements, or with `count_include_pad` by the
number of elements inside the explicit pads (never the ceil-mode overhang).
`max_pool` with `with_indices` has a second i64 output: ONNX MaxPool's Indices.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops import nn
from vcompile.ir.ops.registry import Infer, ShapeError, register_op
from vcompile.ir.types import FLOAT_DTYPES, TensorType


class _Window:
    """The resolved geometry of one pooling call, per spatial axis."""

    def __init__(self, op: str, in_sp: Sequence[int], a: Attrs) -> None:
        nd = len(in_sp)
        self.k = nn.ints(a, "kernel")
        if len(self.k) != nd or min(self.k, default=1) < 1:
            raise ShapeError(f"{op}: need {nd} kernel sizes >= 1, got {list(self.k)}")
        self.s, self.pb, self.pe, self.d = nn.window_params(op, nd, a)
        self.in_sp = tuple(in_sp)
        self.out = tuple(nn.window_out(op, in_sp[i], self.k[i], self.s[i], self.pb[i], self.pe[i],
                                    self.d[i], bool(a["ceil_mode"])) for i in range(nd))

    def pad(self, x: np.ndarray, value: float | int) -> np.ndarray:
        """x padded at the end far enough for every window, ceil-mode overhang included."""
        over = [max(0, (o - 1) * s + (k - 1) * d + 1 - (n + b + e)) for o, s, k, d, n, b, e in
                zip(self.out, self.s, self.k, self.d, self.in_sp, self.pb, self.pe, strict=True)]
        return nn.pad_spatial(x, self.pb, [e + v for e, v in zip(self.pe, over, strict=True)], value)

    def coords(self, axis: int) -> np.ndarray:
        """[out, k] input coordinate of each tap of each window along one axis."""
        o = np.arange(self.out[axis])[:, None] * self.s[axis] - self.pb[axis]
        return o + np.arange(self.k[axis])[None, :] * self.d[axis]

    def count(self, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
        """Per window, how many taps fall in [lo, hi) on every axis (an outer product)."""
        total = np.ones((), dtype=np.int64)
        for i in range(len(self.k)):
            c = self.coords(i)
            n = ((c >= lo[i]) & (c < hi[i])).sum(axis=1)
            total = np.multiply.outer(total, n)
        return total


def _pool_infer(op: str, nd: int, floats_only: bool) -> Infer:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        x = ts[0]
        if floats_only and x.dtype not in FLOAT_DTYPES:
            raise ShapeError(f"{op}: needs a float input, got {x}")
        if x.dtype == "bool":
            raise ShapeError(f"{op}: cannot pool a bool tensor")
        w = _Window(op, nn.spatial(op, x, nd)[1:], a)
        y = x.with_shape(x.shape[:2] + w.out)
        if a.get("with_indices"):
            if int(a["storage_order"]) not in (0, 1):  # type: ignore[arg-type]
                raise ShapeError(f"{op}: storage_order must be 0 (row major) or 1 (column major)")
            return (y, y.with_dtype("i64"))
        return (y,)
    return infer


def _lowest(dt: np.dtype) -> float | int:
    return -np.inf if dt.kind == "f" else int(np.iinfo(dt).min)


def _max_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x = xs[0]
    w = _Window("max_pool", x.shape[2:], a)
    xp = w.pad(x, _lowest(x.dtype))
    if a["with_indices"]:
        return _max_with_indices(x, xp, w, int(a["storage_order"]))  # type: ignore[arg-type]
    y: np.ndarray | None = None
    for sl in nn.taps(w.k, w.d, w.s, w.out):
        y = xp[sl].copy() if y is None else np.maximum(y, xp[sl], out=y)
    assert y is not None
    return (y,)


def _flat_strides(shape: Sequence[int], column_major: bool) -> list[int]:
    dims = list(shape)[::-1] if column_major else list(shape)
    st = [int(np.prod(dims[i + 1:], dtype=np.int64)) for i in range(len(dims))]
    return st[::-1] if column_major else st


def _max_with_indices(x: np.ndarray, xp: np.ndarray, w: _Window,
                      storage_order: int) -> tuple[np.ndarray, ...]:
    # NOTE: mirrors ONNX's reference: the first in-bounds tap holding the window's maximum
    # wins; its index is flattened over (N*C, spatial...), spatial in the given order.
    nd = len(w.k)
    st = _flat_strides(w.in_sp, column_major=storage_order == 1)
    axes = [w.coords(i) for i in range(nd)]
    best = np.zeros(x.shape[:2] + w.out, dtype=x.dtype)
    idx = np.full(best.shape, -1, dtype=np.int64)
    have = np.zeros(best.shape, dtype=bool)
    for pos, sl in zip(np.ndindex(*w.k), nn.taps(w.k, w.d, w.s, w.out), strict=True):
        flat = np.zeros((), dtype=np.int64)
        ok = np.ones((), dtype=bool)
        for i in range(nd):
            c = axes[i][:, pos[i]]
            flat = np.add.outer(flat, c * st[i])
            ok = np.logical_and.outer(ok, (c >= 0) & (c < w.in_sp[i]))
        v = xp[sl]
        better = ok & (~have | (v > best))
        best = np.where(better, v, best)
        idx = np.where(better, flat, idx)
        have |= better
    plane = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(x.shape[:2] + (1,) * nd)
    idx = np.where(have, idx + plane * int(np.prod(w.in_sp, dtype=np.int64)), -1)
    return (best, idx)


def _avg_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x = xs[0]
    w = _Window("avg_pool", x.shape[2:], a)
    xp = w.pad(x.astype(nn.compute_dtype(x.dtype), copy=False), 0)
    total: np.ndarray | None = None
    for sl in nn.taps(w.k, w.d, w.s, w.out):
        total = xp[sl].copy() if total is None else np.add(total, xp[sl], out=total)
    assert total is not None
    if a["count_include_pad"]:
        n = w.count([-b for b in w.pb], [s + e for s, e in zip(w.in_sp, w.pe, strict=True)])
    else:
        n = w.count([0] * len(w.k), w.in_sp)
    # NOTE: a window made only of padding has no elements; it averages to 0, not NaN.
    y = total / np.maximum(n, 1).astype(total.dtype)
    return (y.astype(x.dtype, copy=False),)


def _register_pools() -> None:
    for nd in (1, 2, 3):
        common: dict[str, tuple[str, Any]] = {**nn.window_attrs(nd), "kernel": ("ints",),
                                              "ceil_mode": ("bool", False)}
        name = f"max_pool{nd}d"
        register_op(name, 1, _pool_infer(name, nd, floats_only=False), _max_eval, kind="anchor",
                    attrs={**common, "storage_order": ("int", 0), "with_indices": ("bool", False)},
                    num_outputs=lambda a, n: 2 if a["with_indices"] else 1,
                    doc=f"{nd}-d MaxPool; with_indices adds ONNX's i64 Indices output")
        name = f"avg_pool{nd}d"
        register_op(name, 1, _pool_infer(name, nd, floats_only=True), _avg_eval, kind="anchor",
                    attrs={**common, "count_include_pad": ("bool", False)},
                    doc=f"{nd}-d AveragePool")


_register_pools()
