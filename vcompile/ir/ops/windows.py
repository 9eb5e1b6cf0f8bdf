"""Sliding-window and normalized-span index math shared by the op evals (`nn`, `pool`,
`integer`), the lowerings and the emitters, so every consumer computes one geometry.

    ints(a, key)                 an int-tuple attribute
    spatial(op, t, nd)           the static channel and spatial dims of an N,C,... type
    window_attrs(nd)             the strides/pads/dilations attr specs of a windowed op
    window_params(op, nd, a)     (strides, pad begins, pad ends, dilations), checked
    window_out(...)              output length of one axis (floor or ceil mode)
    taps(k, d, s, out)           per kernel position, the strided slice it reads
    pad_spatial(x, b, e, v)      constant padding of the spatial dims
    PoolWindow(op, in_sp, a)     a pooling call's geometry: padding, tap coordinates, counts
    flat_strides(shape, cm)      row/column-major element strides (MaxPool Indices)
    layer_span(x, a)             the [start, stop) axes a layer_norm/ilayernorm normalizes

`pads` follow ONNX: all begins, then all ends.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops.registry import ShapeError, norm_axis
from vcompile.ir.types import TensorType


def ints(a: Attrs, key: str) -> tuple[int, ...]:
    """An int-tuple attribute."""
    return a.ints(key)


def window_attrs(nd: int) -> dict[str, tuple[str, Any]]:
    return {"strides": ("ints", (1,) * nd), "pads": ("ints", (0,) * (2 * nd)),
            "dilations": ("ints", (1,) * nd)}


def window_params(op: str, nd: int, a: Attrs) -> tuple[tuple[int, ...], ...]:
    """(strides, pad begins, pad ends, dilations), checked for length and sign."""
    s, p, d = ints(a, "strides"), ints(a, "pads"), ints(a, "dilations")
    if len(s) != nd or len(d) != nd or len(p) != 2 * nd:
        raise ShapeError(f"{op}: need {nd} strides, {nd} dilations and {2 * nd} pads; got "
                         f"strides={list(s)}, dilations={list(d)}, pads={list(p)}")
    if min(s + d) < 1 or min(p) < 0:
        raise ShapeError(f"{op}: strides and dilations must be >= 1 and pads >= 0; got "
                         f"strides={list(s)}, dilations={list(d)}, pads={list(p)}")
    return s, p[:nd], p[nd:], d


def spatial(op: str, t: TensorType, nd: int, what: str = "input") -> tuple[int, ...]:
    """The channel and spatial dims of an N,C,spatial... type, which must be static."""
    if t.rank != nd + 2:
        raise ShapeError(f"{op}: {what} must have rank {nd + 2} (N, C and {nd} spatial), got {t}")
    dims = t.shape[1:]
    if not all(isinstance(d, int) for d in dims):
        raise ShapeError(f"{op}: channel and spatial dims of the {what} must be static, got {t}")
    return tuple(int(d) for d in dims)


def window_out(op: str, size: int, k: int, s: int, pb: int, pe: int, d: int,
               ceil: bool = False) -> int:
    """Output length of a sliding window; in ceil mode a last window that would start
    in the end padding is dropped (ONNX, PyTorch)."""
    span = (k - 1) * d + 1
    room = size + pb + pe - span
    if room < 0:
        raise ShapeError(f"{op}: window of {span} (kernel {k}, dilation {d}) is larger than "
                         f"the padded input of {size + pb + pe}")
    if not ceil:
        return room // s + 1
    out = -(-room // s) + 1
    return out - 1 if (out - 1) * s >= size + pb else out


def taps(k: Sequence[int], d: Sequence[int], s: Sequence[int],
         count: Sequence[int]) -> Iterator[tuple[slice, ...]]:
    """For each kernel position (row-major), the strided slice of the padded input it reads."""
    for pos in np.ndindex(*k):
        yield (slice(None), slice(None)) + tuple(slice(p * di, p * di + (n - 1) * si + 1, si)
                                                 for p, di, si, n in zip(pos, d, s, count, strict=True))


def pad_spatial(x: np.ndarray, begins: Sequence[int], ends: Sequence[int],
                value: float | int = 0) -> np.ndarray:
    if not any(begins) and not any(ends):
        return x
    widths = [(0, 0), (0, 0)] + list(zip(begins, ends, strict=True))
    return np.pad(x, widths, mode="constant", constant_values=value)


# ---- pooling ------------------------------------------------------------------------------

class PoolWindow:
    """The resolved geometry of one pooling call, per spatial axis (the interpreter's and
    the emitter's: `codegen.emit.pool` evaluates it on static dims)."""

    def __init__(self, op: str, in_sp: Sequence[int], a: Attrs) -> None:
        nd = len(in_sp)
        self.k = ints(a, "kernel")
        if len(self.k) != nd or min(self.k, default=1) < 1:
            raise ShapeError(f"{op}: need {nd} kernel sizes >= 1, got {list(self.k)}")
        self.s, self.pb, self.pe, self.d = window_params(op, nd, a)
        self.in_sp = tuple(in_sp)
        self.out = tuple(window_out(op, in_sp[i], self.k[i], self.s[i], self.pb[i], self.pe[i],
                                    self.d[i], a.bool("ceil_mode")) for i in range(nd))

    def pad(self, x: np.ndarray, value: float | int) -> np.ndarray:
        """x padded at the end far enough for every window, ceil-mode overhang included."""
        over = [max(0, (o - 1) * s + (k - 1) * d + 1 - (n + b + e)) for o, s, k, d, n, b, e in
                zip(self.out, self.s, self.k, self.d, self.in_sp, self.pb, self.pe, strict=True)]
        return pad_spatial(x, self.pb, [e + v for e, v in zip(self.pe, over, strict=True)], value)

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


def flat_strides(shape: Sequence[int], column_major: bool) -> list[int]:
    """Strides of a dense array of `shape` in elements, row- or column-major (MaxPool Indices)."""
    dims = list(shape)[::-1] if column_major else list(shape)
    st = [int(np.prod(dims[i + 1:], dtype=np.int64)) for i in range(len(dims))]
    return st[::-1] if column_major else st


# ---- normalized spans -----------------------------------------------------------------------

def layer_span(x: TensorType | np.ndarray, a: Attrs) -> tuple[int, int]:
    """The normalized axes [start, stop): [axis, rank) or, with naxes > 0, [axis, axis + naxes)
    (naxes=1 at axis=1 is a channel-first LayerNorm over C of [N, C, H, W])."""
    rank = x.rank if isinstance(x, TensorType) else x.ndim
    ax = norm_axis(a.int("axis"), rank, "layer_norm")
    n = a.int("naxes")
    if n < 0 or ax + n > rank:
        raise ShapeError(f"layer_norm: naxes={n} at axis {ax} reaches past rank {rank}; "
                         f"use 0 (through the last axis) or at most {rank - ax}")
    return ax, (ax + n if n else rank)
