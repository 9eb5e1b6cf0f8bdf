"""Neural-network ops: N-d convolution and transposed convolution, and the
inference-form normalizations (batch_norm, instance_norm, group_norm, layer_norm).

Pooling lives in `pool`, resize in `resize`. Layouts are NC[D]HW for activations,
OI[D]HW for conv weights and I x (O/groups) x k... for conv_transpose weights. `pads`
follow ONNX: all begins, then all ends. Every conv takes a bias (canonical form), so
patterns see one shape. Spatial and channel dims must be static; the batch dim may
be a symbol.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops import flops
from vcompile.ir.ops.registry import Infer, ShapeError, broadcast_shapes, register_op
from vcompile.ir.ops.windows import (
    ints,
    layer_span,
    pad_spatial,
    spatial,
    taps,
    window_attrs,
    window_out,
    window_params,
)
from vcompile.ir.types import FLOAT_DTYPES, Dim, TensorType

# Above this many elements, conv accumulates per kernel position instead of building
# the im2col matrix, trading some speed for bounded memory.
_IM2COL_LIMIT = 1 << 25


# ---- helpers shared with pool.py --------------------------------------------------------

def compute_dtype(dt: np.dtype) -> np.dtype:
    """Statistics and sums run in float32 at least (ONNX stash_type), float64 if given."""
    return np.promote_types(dt, np.float32)


# ---- conv -------------------------------------------------------------------------------

def _conv_check(op: str, nd: int, ts: Sequence[TensorType], a: Attrs) -> tuple[int, int, int]:
    """Checks shared by conv and conv_transpose; returns (in channels, groups, weight rows)."""
    if len({t.dtype for t in ts}) != 1:
        raise ShapeError(f"{op}: x, w and b must share one dtype, got {', '.join(str(t) for t in ts)}")
    c = spatial(op, ts[0], nd)[0]
    if ts[1].rank != nd + 2 or not ts[1].is_static:
        raise ShapeError(f"{op}: weight must be a static rank-{nd + 2} tensor, got {ts[1]}")
    g = a.int("groups")
    if g < 1 or c % g:
        raise ShapeError(f"{op}: groups={g} does not divide the {c} input channels")
    return c, g, int(ts[1].shape[0])


def _check_bias(op: str, b: TensorType, o: int) -> None:
    if b.shape != (o,):
        raise ShapeError(f"{op}: bias must have shape [{o}] (one per output channel), got {b}")


def conv_infer(op: str, nd: int) -> Infer:
    """The type rule of `op` (conv{nd}d); qconv2d and depthwise_conv2d_nhwc reuse it."""
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        c, g, o = _conv_check(op, nd, ts, a)
        w = tuple(int(v) for v in ts[1].shape)
        if w[1] * g != c or o % g:
            raise ShapeError(f"{op}: weight {ts[1]} does not fit {c} input channels in {g} "
                             f"groups (need O % groups == 0 and I * groups == {c})")
        _check_bias(op, ts[2], o)
        s, pb, pe, d = window_params(op, nd, a)
        sp = spatial(op, ts[0], nd)[1:]
        dims: tuple[Dim, ...] = tuple(window_out(op, sp[i], w[i + 2], s[i], pb[i], pe[i], d[i])
                                      for i in range(nd))
        return (ts[0].with_shape((ts[0].shape[0], o) + dims),)
    return infer


def _widen(xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    # NOTE: f16 convolutions accumulate in f32 (BLAS has no f16 and f16 sums drift);
    # f32 and f64 stay as they are.
    return [v.astype(np.float32) if v.dtype == np.float16 else v for v in xs]


def conv_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    """conv{n}d on numpy arrays (the reference qconv2d and depthwise_conv2d_nhwc reuse)."""
    x, w, b = _widen(xs)
    nd = x.ndim - 2
    s, pb, pe, d = ints(a, "strides"), ints(a, "pads")[:nd], ints(a, "pads")[nd:], ints(a, "dilations")
    g, k = a.int("groups"), w.shape[2:]
    out = tuple(window_out("conv", x.shape[i + 2], k[i], s[i], pb[i], pe[i], d[i]) for i in range(nd))
    xp = pad_spatial(x, pb, ends=pe)
    n, c, o = x.shape[0], x.shape[1], w.shape[0]
    if c // g == 1:
        y = _conv_depthwise(xp, w, s, d, out, g)
    elif n * c * int(np.prod(k)) * int(np.prod(out)) <= _IM2COL_LIMIT:
        y = _conv_im2col(xp, w, s, d, out, g)
    else:
        y = _conv_accumulate(xp, w, s, d, out, g)
    y = y.reshape((n, o) + out)
    y += b.reshape((1, o) + (1,) * nd)
    return (y.astype(xs[0].dtype, copy=False),)


def _conv_im2col(xp: np.ndarray, w: np.ndarray, s: Sequence[int], d: Sequence[int],
                 out: Sequence[int], g: int) -> np.ndarray:
    n, c, o, k = xp.shape[0], xp.shape[1], w.shape[0], w.shape[2:]
    cg, kk, p = c // g, int(np.prod(k)), int(np.prod(out))
    cols = np.empty((n, g, cg, kk, p), dtype=xp.dtype)
    for i, sl in enumerate(taps(k, d, s, out)):
        cols[:, :, :, i] = xp[sl].reshape(n, g, cg, p)
    # NOTE: w is (O, I, k...) = (g, O/g, I*k) row-major, matching cols' (I, k) order.
    return np.matmul(w.reshape(g, o // g, cg * kk), cols.reshape(n, g, cg * kk, p))


def _conv_accumulate(xp: np.ndarray, w: np.ndarray, s: Sequence[int], d: Sequence[int],
                     out: Sequence[int], g: int) -> np.ndarray:
    n, c, o = xp.shape[0], xp.shape[1], w.shape[0]
    wk = w.reshape(g, o // g, c // g, -1)
    y = np.zeros((n, g, o // g, int(np.prod(out))), dtype=np.result_type(xp, w))
    for i, sl in enumerate(taps(w.shape[2:], d, s, out)):
        y += np.matmul(wk[..., i], xp[sl].reshape(n, g, c // g, -1))
    return y


def _conv_depthwise(xp: np.ndarray, w: np.ndarray, s: Sequence[int], d: Sequence[int],
                    out: Sequence[int], g: int) -> np.ndarray:
    # One input channel per group: a broadcast multiply-add per kernel position beats
    # thousands of 1-wide matmuls.
    n, o, nd = xp.shape[0], w.shape[0], len(out)
    wk = w.reshape((1, g, o // g) + (1,) * nd + (-1,))
    y = np.zeros((n, g, o // g) + tuple(out), dtype=np.result_type(xp, w))
    for i, sl in enumerate(taps(w.shape[2:], d, s, out)):
        y += xp[sl][:, :, None] * wk[..., i]
    return y


# ---- conv_transpose ---------------------------------------------------------------------

def _convt_sizes(op: str, nd: int, in_sp: Sequence[int], k: Sequence[int],
                 a: Attrs) -> tuple[int, ...]:
    s, pb, pe, d = window_params(op, nd, a)
    op_ = ints(a, "output_padding")
    if len(op_) != nd or min(op_, default=0) < 0:
        raise ShapeError(f"{op}: need {nd} output_padding values >= 0, got {list(op_)}")
    out = tuple((in_sp[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - pb[i] - pe[i] + op_[i]
                for i in range(nd))
    if min(out) < 1:
        raise ShapeError(f"{op}: pads {list(pb + pe)} leave an empty output {list(out)}")
    return out


def _convt_infer(op: str, nd: int) -> Infer:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        c, g, _ = _conv_check(op, nd, ts, a)
        w = tuple(int(v) for v in ts[1].shape)
        if w[0] != c:
            raise ShapeError(f"{op}: weight {ts[1]} must have {c} (input channels) rows")
        _check_bias(op, ts[2], w[1] * g)
        out = _convt_sizes(op, nd, spatial(op, ts[0], nd)[1:], w[2:], a)
        return (ts[0].with_shape((ts[0].shape[0], w[1] * g) + out),)
    return infer


def _convt_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, w, b = _widen(xs)
    nd, g = x.ndim - 2, a.int("groups")
    n, c, in_sp, k = x.shape[0], x.shape[1], x.shape[2:], w.shape[2:]
    s, pb, d = ints(a, "strides"), ints(a, "pads")[:nd], ints(a, "dilations")
    out = _convt_sizes("conv_transpose", nd, in_sp, k, a)
    cg, og, kk = c // g, w.shape[1], int(np.prod(k))
    # cols[n, g, (o, kpos), pixel]: every input pixel's contribution at every kernel tap.
    wm = w.reshape(g, cg, og * kk).transpose(0, 2, 1)
    cols = np.matmul(wm, x.reshape(n, g, cg, -1)).reshape((n, g * og, kk) + in_sp)
    full = tuple(max((in_sp[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1, pb[i] + out[i]) for i in range(nd))
    y = np.zeros((n, g * og) + full, dtype=cols.dtype)
    for i, sl in enumerate(taps(k, d, s, in_sp)):
        y[sl] += cols[:, :, i]
    y = y[(slice(None), slice(None)) + tuple(slice(p, p + o) for p, o in zip(pb, out, strict=True))]
    y = y + b.reshape((1, -1) + (1,) * nd)
    return (y.astype(xs[0].dtype, copy=False),)


def _register_convs() -> None:
    for nd in (1, 2, 3):
        attrs: dict[str, tuple[str, Any]] = {**window_attrs(nd), "groups": ("int", 1)}
        name = f"conv{nd}d"
        register_op(name, 3, conv_infer(name, nd), conv_eval, attrs=attrs, kind="anchor",
                    category="conv", flops=flops.conv,
                    doc=f"{nd}-d convolution: x (N,C,spatial), w (O,C/groups,k...), b (O,)")
        name = f"conv_transpose{nd}d"
        register_op(name, 3, _convt_infer(name, nd), _convt_eval, kind="anchor",
                    category="conv", flops=flops.conv_transpose,
                    attrs={**attrs, "output_padding": ("ints", (0,) * nd)},
                    doc=f"{nd}-d transposed convolution: w (C, O/groups, k...), b (O,)")


_register_convs()


# ---- channels-last depthwise conv --------------------------------------------------------
# What `depthwise-nhwc` turns a depthwise conv2d into when its input arrives channels-last
# (PVT's and SegFormer's MLP: tokens [N, H*W, C] viewed as an image): the conv reads the
# tokens as they are and writes tokens, and the transposes on either side cancel.

def _dw_nhwc_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    """The conv2d rules (dtypes, bias, windows) on the NCHW view of x, output back to NHWC."""
    op = "depthwise_conv2d_nhwc"
    x, w, b = ts
    if x.rank != 4 or not isinstance(x.shape[3], int):
        raise ShapeError(f"{op}: x must be [N, H, W, C] with a static C, got {x}")
    c = x.shape[3]
    if w.rank != 4 or not w.is_static or tuple(w.shape[:2]) != (c, 1):
        raise ShapeError(f"{op}: weight must be [{c}, 1, KH, KW] (one filter per channel), got {w}")
    nchw = x.with_shape((x.shape[0], c, x.shape[1], x.shape[2]))
    (y,) = conv_infer(op, 2)((nchw, w, b), a.replace(groups=c))
    n, _, oh, ow = y.shape
    return (y.with_shape((n, oh, ow, c)),)


def _dw_nhwc_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, w, b = xs
    y, = conv_eval([np.ascontiguousarray(x.transpose(0, 3, 1, 2)), w, b],
                    a.replace(groups=int(x.shape[3])))
    return (np.ascontiguousarray(y.transpose(0, 2, 3, 1)),)


register_op("depthwise_conv2d_nhwc", 3, _dw_nhwc_infer, _dw_nhwc_eval, attrs=window_attrs(2),
            kind="anchor", category="conv", flops=flops.conv,
            doc="depthwise 2-d convolution, channels last: x (N,H,W,C), "
                               "w (C,1,kh,kw), b (C,) -> (N,OH,OW,C)")


# ---- normalizations ---------------------------------------------------------------------

def _norm_check(op: str, ts: Sequence[TensorType], params: tuple[Dim, ...]) -> tuple[TensorType, ...]:
    """x must be float and rank >= 2; every other input float with shape `params`."""
    x = ts[0]
    if x.rank < 2:
        raise ShapeError(f"{op}: input must have rank >= 2 (N, C, ...), got {x}")
    for t in ts:
        if t.dtype not in FLOAT_DTYPES:
            raise ShapeError(f"{op}: inputs must be float, got {t}")
    for t in ts[1:]:
        if t.shape != params:
            raise ShapeError(f"{op}: parameters must have shape [{','.join(map(str, params))}], "
                             f"got {t} for input {x}")
    return (x,)


def _channels(x: TensorType) -> tuple[Dim, ...]:
    return x.shape[1:2]


def _per_channel(v: np.ndarray, ndim: int, dt: np.dtype) -> np.ndarray:
    return v.astype(dt, copy=False).reshape((1, -1) + (1,) * (ndim - 2))


def _bn_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, gamma, beta, mean, var = xs
    dt = compute_dtype(x.dtype)
    scale = gamma.astype(dt) / np.sqrt(var.astype(dt) + dt.type(a["epsilon"]))
    y = (x - _per_channel(mean, x.ndim, dt)) * _per_channel(scale, x.ndim, dt)
    return ((y + _per_channel(beta, x.ndim, dt)).astype(x.dtype, copy=False),)


def _standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over `axes`, in at least float32."""
    dt = compute_dtype(x.dtype)
    xc = x.astype(dt, copy=False)
    diff = xc - xc.mean(axis=axes, keepdims=True)
    var = np.mean(diff * diff, axis=axes, keepdims=True)
    return diff / np.sqrt(var + dt.type(eps))


def _instance_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, gamma, beta = xs
    y = _standardize(x, tuple(range(2, x.ndim)), a.float("epsilon"))
    y = y * _per_channel(gamma, x.ndim, y.dtype) + _per_channel(beta, x.ndim, y.dtype)
    return (y.astype(x.dtype, copy=False),)


def _group_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    out = _norm_check("group_norm", ts, _channels(ts[0]))
    c, g = ts[0].shape[1], a.int("num_groups")
    if not isinstance(c, int) or g < 1 or c % g:
        raise ShapeError(f"group_norm: num_groups={g} must divide the channel dim of {ts[0]}")
    return out


def _group_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, gamma, beta = xs
    g = a.int("num_groups")
    y = _standardize(x.reshape(x.shape[0], g, -1), (2,), a.float("epsilon"))
    y = y.reshape(x.shape) * _per_channel(gamma, x.ndim, y.dtype) + _per_channel(beta, x.ndim, y.dtype)
    return (y.astype(x.dtype, copy=False),)


def _layer_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x = ts[0]
    ax, stop = layer_span(x, a)
    for t in ts:
        if t.dtype not in FLOAT_DTYPES:
            raise ShapeError(f"layer_norm: inputs must be float, got {t}")
    for t in ts[1:]:
        ok = t.rank <= stop - ax
        try:
            ok = ok and broadcast_shapes(x.shape[ax:stop], t.shape) == x.shape[ax:stop]
        except ShapeError:
            ok = False
        if not ok:
            raise ShapeError(f"layer_norm: scale/bias {t} must broadcast to the normalized "
                             f"dims [{','.join(map(str, x.shape[ax:stop]))}] of {x}")
    return (x,)


def _layer_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x = xs[0]
    ax, stop = layer_span(x, a)
    tail = (1,) * (x.ndim - stop)  # scale/bias are laid out over [ax, stop) only
    y = _standardize(x, tuple(range(ax, stop)), a.float("epsilon"))
    y = y * xs[1].reshape(xs[1].shape + tail)
    if len(xs) == 3:
        y = y + xs[2].reshape(xs[2].shape + tail)
    return (y.astype(x.dtype, copy=False),)


_EPS: dict[str, tuple[str, Any]] = {"epsilon": ("float", 1e-5)}
register_op("batch_norm", 5, lambda ts, a: _norm_check("batch_norm", ts, _channels(ts[0])),
            _bn_eval, attrs=_EPS, category="norm", flops=flops.per_out(2),
            doc="inference BatchNormalization: x, gamma, beta, mean, var")
register_op("instance_norm", 3, lambda ts, a: _norm_check("instance_norm", ts, _channels(ts[0])),
            _instance_eval, attrs=_EPS, category="norm", flops=flops.per_out(7),
            doc="InstanceNormalization: x, gamma, beta (per channel)")
register_op("group_norm", 3, _group_infer, _group_eval,
            attrs={**_EPS, "num_groups": ("int",)}, category="norm", flops=flops.per_out(7),
            doc="GroupNormalization (opset 21): gamma and beta per channel")
register_op("layer_norm", (2, 3), _layer_infer, _layer_eval,
            attrs={**_EPS, "axis": ("int", -1), "naxes": ("int", 0)}, category="norm",
            flops=flops.per_out(7),
            doc="LayerNormalization over axes [axis, rank), or [axis, axis + naxes) when "
                "naxes > 0; statistics in float32 at least")
