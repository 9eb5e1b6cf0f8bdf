"""Weight arithmetic shared by the folding passes (numpy only, no graph).

All folding is computed in float64 and rounded once to the weight's dtype, so a
folded model differs from the original only by that rounding and reassociation.
Layouts: conv weights are (O, C/groups, k...); conv_transpose weights are
(C, O/groups, k...); linear weights are (K, N) as in `x @ w`.
"""
from __future__ import annotations

import re

import numpy as np

from vcompile.ir.graph import Node
from vcompile.ir.types import Dim

CONV = tuple(f"conv{n}d" for n in (1, 2, 3))
CONV_T = tuple(f"conv_transpose{n}d" for n in (1, 2, 3))


def f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def bn_affine(gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray,
              eps: float) -> tuple[np.ndarray, np.ndarray]:
    """BN(x) = x * s + t per channel, in float64."""
    s = f64(gamma) / np.sqrt(f64(var) + eps)
    return s, f64(beta) - f64(mean) * s


def per_channel(c: np.ndarray, rank: int, axis: int, channels: Dim) -> np.ndarray | None:
    """The float64 vector of `channels` values that `c` holds along `axis` when broadcast
    against a rank-`rank` tensor, or None if `c` varies along any other axis or the axis
    is a symbolic dim (its size is known only at run time)."""
    if c.ndim > rank or not isinstance(channels, int):
        return None
    shape = (1,) * (rank - c.ndim) + c.shape
    axis %= rank
    if any(d != 1 for i, d in enumerate(shape) if i != axis) or shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(f64(c).reshape(-1), (channels,)).copy()


def scale_out(n: Node, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Weights of conv/conv_transpose/linear node `n` with output channel o scaled by s[o]."""
    if n.op in CONV:
        return f64(w) * s.reshape((-1,) + (1,) * (w.ndim - 1))
    if n.op in CONV_T:
        g = n.attrs.int("groups")
        wg = f64(w).reshape((g, w.shape[0] // g) + w.shape[1:])
        return (wg * s.reshape((g, 1, -1) + (1,) * (w.ndim - 2))).reshape(w.shape)
    return f64(w) * s[None, :]  # linear (K, N)


def conv_in_fold(w: np.ndarray, groups: int, s: np.ndarray | None,
                 t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """For conv(x * s + t) with zero padding (or t None): the new weight and the bias
    increment, per output channel."""
    o, cg = w.shape[0], w.shape[1]
    wf = f64(w)
    # channel (within the full input) each weight column reads: group(o) * cg + i
    idx = (np.arange(o) // (o // groups))[:, None] * cg + np.arange(cg)[None, :]
    extra = np.zeros(o)
    if t is not None:
        extra = (wf * t[idx].reshape(o, cg, *(1,) * (w.ndim - 2))).reshape(o, -1).sum(1)
    if s is not None:
        wf = wf * s[idx].reshape(o, cg, *(1,) * (w.ndim - 2))
    return wf, extra


def zero_padded(n: Node) -> bool:
    return not any(n.attrs.ints("pads"))


def is_conv(op: str) -> bool:
    return re.fullmatch(r"conv[123]d", op) is not None
