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
from vcompile.ir.ops import flops, nn
from vcompile.ir.ops.registry import Infer, ShapeError, register_op
from vcompile.ir.ops.windows import PoolWindow, flat_strides, spatial, taps, window_attrs
from vcompile.ir.types import FLOAT_DTYPES, TensorType


def _pool_infer(op: str, nd: int, floats_only: bool) -> Infer:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        x = ts[0]
        if floats_only and x.dtype not in FLOAT_DTYPES:
            raise ShapeError(f"{op}: needs a float input, got {x}")
        if x.dtype == "bool":
            raise ShapeError(f"{op}: cannot pool a bool tensor")
        w = PoolWindow(op, spatial(op, x, nd)[1:], a)
        y = x.with_shape(x.shape[:2] + w.out)
        if a.get("with_indices"):
            if a.int("storage_order") not in (0, 1):
                raise ShapeError(f"{op}: storage_order must be 0 (row major) or 1 (column major)")
            return (y, y.with_dtype("i64"))
        return (y,)
    return infer


def _lowest(dt: np.dtype) -> float | int:
    return -np.inf if dt.kind == "f" else int(np.iinfo(dt).min)


def _max_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x = xs[0]
    w = PoolWindow("max_pool", x.shape[2:], a)
    xp = w.pad(x, _lowest(x.dtype))
    if a["with_indices"]:
        return _max_with_indices(x, xp, w, a.int("storage_order"))
    y: np.ndarray | None = None
    for sl in taps(w.k, w.d, w.s, w.out):
        y = xp[sl].copy() if y is None else np.maximum(y, xp[sl], out=y)
    assert y is not None
    return (y,)


def _max_with_indices(x: np.ndarray, xp: np.ndarray, w: PoolWindow,
                      storage_order: int) -> tuple[np.ndarray, ...]:
    # NOTE: mirrors ONNX's reference: the first in-bounds tap holding the window's maximum
    # wins; its index is flattened over (N*C, spatial...), spatial in the given order.
    nd = len(w.k)
    st = flat_strides(w.in_sp, column_major=storage_order == 1)
    axes = [w.coords(i) for i in range(nd)]
    best = np.zeros(x.shape[:2] + w.out, dtype=x.dtype)
    idx = np.full(best.shape, -1, dtype=np.int64)
    have = np.zeros(best.shape, dtype=bool)
    for pos, sl in zip(np.ndindex(*w.k), taps(w.k, w.d, w.s, w.out), strict=True):
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
    w = PoolWindow("avg_pool", x.shape[2:], a)
    xp = w.pad(x.astype(nn.compute_dtype(x.dtype), copy=False), 0)
    total: np.ndarray | None = None
    for sl in taps(w.k, w.d, w.s, w.out):
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
        common: dict[str, tuple[str] | tuple[str, Any]] = {**window_attrs(nd), "kernel": ("ints",),
                                              "ceil_mode": ("bool", False)}
        name = f"max_pool{nd}d"
        register_op(name, 1, _pool_infer(name, nd, floats_only=False), _max_eval, kind="anchor",
                    category="pool", flops=flops.pool,
                    attrs={**common, "storage_order": ("int", 0), "with_indices": ("bool", False)},
                    num_outputs=lambda a, n: 2 if a["with_indices"] else 1,
                    doc=f"{nd}-d MaxPool; with_indices adds ONNX's i64 Indices output")
        name = f"avg_pool{nd}d"
        register_op(name, 1, _pool_infer(name, nd, floats_only=True), _avg_eval, kind="anchor",
                    category="pool", flops=flops.pool,
                    attrs={**common, "count_include_pad": ("bool", False)},
                    doc=f"{nd}-d AveragePool")


_register_pools()
