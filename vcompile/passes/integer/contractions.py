"""Integer forms of the contractions and pools for `lower-integer`: each function takes the
float node under a quantize_linear and returns Acc, the integer value it becomes and the
real scale of one unit of it (`lower_integer` then requantizes Acc into the output).

    conv2d(dq x, dq w, b)           => qconv2d(x, w, round(b / (s_x s_w))) {x_zp}     at s_x s_w[c]
    linear(dq x, dq w, b)           => qlinear(x, w, round(b / (s_x s_w))) {x_zp}     at s_x s_w[n]
    matmul(dq a, dq w) (w: i8 2-d)  => qlinear(a, w)                                   at s_a s_w[n]
    matmul(dq a, dq b)              => qmatmul(a, b) {a_zp, b_zp}                      at s_a s_b
    gemm(dq a, dq w, c) {trans_b?}  => qlinear(a, w or its transpose, round(c / ...))  at s_a s_w[n]
    avg_pool2d(dq x)                => qconv2d(x, ones [C,1,kh,kw]) {groups=C, x_zp}  at s_x / (kh kw)
      without count_include_pad     => mul(that, round(2^16 / taps inside))           at s_x 2^-16
    reduce_mean(dq x) {axes}        => reduce_sum(cast<i32>(x) - x_zp) {axes}         at s_x / count
    reduce_sum(dq x) {axes}         => reduce_sum(cast<i32>(x) - x_zp) {axes}         at s_x

Weights are symmetric (zero point 0) i8, per output channel (axis 0 of OIHW conv weights,
axis 1 of [K, N] linear weights) or per tensor; a float constant weight (what
fold-constants makes of a dequantized one) is quantized per channel here. Biases are
float constants or ONNX-style dequantize_linear(i32 const, s_x s_w, 0). Anything else
declines (a float island).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vcompile.ir.graph import Node, Value
from vcompile.ir.ops.windows import PoolWindow
from vcompile.passes.infra.pattern import Match, RewriteBuilder
from vcompile.passes.infra.registry import note
from vcompile.passes.integer.qparams import QParams, dequantized, i32_const

I32_MAX = 2 ** 31 - 1
RECIP_BITS = 16


@dataclass(frozen=True)
class Acc:
    """An integer value standing for (value - zp) * scale; scale a scalar or a vector along `axis`."""
    value: Value
    scale: np.ndarray | float
    axis: int = 1
    zp: int = 0


def activation(m: Match, v: Value) -> QParams | None:
    """A per-tensor 8-bit dequantized activation."""
    dq = dequantized(m, v)
    return dq if dq is not None and dq.per_tensor and dq.q.dtype in ("i8", "u8") else None


def weight(m: Match, bb: RewriteBuilder, v: Value, axis: int) -> QParams | None:
    """A symmetric i8 weight, per tensor or per channel along `axis`. A float constant (a
    dequantized weight that fold-constants folded) is quantized here, per channel
    symmetric, which gives back the i8 values exactly when it was folded from them."""
    arr = m.const_of(v)
    if arr is not None and arr.dtype.kind == "f" and arr.ndim >= 2 and np.isfinite(arr).all():
        other = tuple(i for i in range(arr.ndim) if i != axis)
        top = np.abs(arr.astype(np.float64)).max(axis=other)
        scale = np.where(top > 0, top / 127, 1.0)
        q = np.rint(arr / np.expand_dims(scale, other)).clip(-127, 127).astype(np.int8)
        note("quantized float weight")
        return QParams(bb.const(q, hint="wq"), scale, np.zeros(scale.shape, np.int64), axis)
    dq = dequantized(m, v, weight=True)
    if dq is None or dq.q.dtype != "i8" or (dq.zp != 0).any():
        return None
    return dq if dq.per_tensor or dq.axis == axis else None


def bias_i32(m: Match, b: Value | None, scale: np.ndarray) -> np.ndarray | None:
    """The bias as i32 at `scale` (per channel), or None when it is not a constant."""
    if b is None:
        return None
    arr = m.const_of(b)
    if arr is None:
        dq = dequantized(m, b)
        arr = m.const_of(dq.q) if dq is not None else None
        if arr is None or dq is None or (dq.zp != 0).any():
            return None
        arr = (arr.astype(np.float64) * dq.scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(scale > 0, np.rint(arr.astype(np.float64) / scale), 0.0)
    if np.abs(q).max(initial=0) > I32_MAX:
        return None
    return np.broadcast_to(q, arr.shape).astype(np.int32)


def _channel_scale(x: QParams, w: QParams, n: int) -> np.ndarray:
    return np.broadcast_to(x.s * w.scale.reshape(-1), (n,)).astype(np.float64)


def lower_conv2d(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    x, w = activation(m, n.inputs[0]), weight(m, bb, n.inputs[1], 0)
    if x is None or w is None:
        return None
    scale = _channel_scale(x, w, n.inputs[1].shape[0])
    b = bias_i32(m, n.inputs[2] if len(n.inputs) == 3 else None, scale)
    if len(n.inputs) == 3 and b is None:
        return None
    ins = (x.q, w.q) if b is None else (x.q, w.q, i32_const(bb, b, "b"))
    acc = bb.emit("qconv2d", *ins, strides=n.attrs["strides"], pads=n.attrs["pads"],
                  dilations=n.attrs["dilations"], groups=n.attrs["groups"], x_zp=x.z)
    return Acc(acc, scale, axis=1)


def _qlinear(m: Match, bb: RewriteBuilder, xv: Value, wv: Value, bv: Value | None) -> Acc | None:
    x, w = activation(m, xv), weight(m, bb, wv, 1)
    if x is None or w is None or wv.type.rank != 2:
        return None
    scale = _channel_scale(x, w, wv.shape[1])
    b = bias_i32(m, bv, scale)
    if bv is not None and b is None:
        return None
    ins = (x.q, w.q) if b is None else (x.q, w.q, i32_const(bb, b, "b"))
    return Acc(bb.emit("qlinear", *ins, x_zp=x.z), scale, axis=-1)


def lower_gemm(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    """Gemm as recognize leaves it when it cannot make a linear: alpha = beta = 1, A not
    transposed, C a vector; a transposed B gets a transpose (of a constant: foldable)."""
    a = n.attrs
    b = n.inputs[2] if len(n.inputs) == 3 else None
    if a["alpha"] != 1.0 or a["beta"] != 1.0 or a["trans_a"] or (b is not None and b.type.rank != 1):
        return None
    if not a["trans_b"]:
        return _qlinear(m, bb, n.inputs[0], n.inputs[1], b)
    x, w = activation(m, n.inputs[0]), weight(m, bb, n.inputs[1], 0)
    if x is None or w is None:
        return None
    scale = _channel_scale(x, w, n.inputs[1].shape[0])
    bias = bias_i32(m, b, scale)
    if b is not None and bias is None:
        return None
    ins: tuple[Value, ...] = (x.q, bb.emit("transpose", w.q, perm=(1, 0)))
    ins += () if bias is None else (i32_const(bb, bias, "b"),)
    return Acc(bb.emit("qlinear", *ins, x_zp=x.z), scale, axis=-1)


def lower_linear(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    return _qlinear(m, bb, n.inputs[0], n.inputs[1], n.inputs[2] if len(n.inputs) == 3 else None)


def lower_matmul(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    a, b = n.inputs
    if b.type.rank == 2 and a.type.rank >= 1 and m.const_of(_dq_source(m, b)) is not None:
        return _qlinear(m, bb, a, b, None)
    qa, qb = activation(m, a), activation(m, b)
    if qa is None or qb is None or a.type.rank < 2 or b.type.rank < 2:
        return None
    return Acc(bb.emit("qmatmul", qa.q, qb.q, a_zp=qa.z, b_zp=qb.z), qa.s * qb.s, axis=-1)


def _dq_source(m: Match, v: Value) -> Value:
    n = m.ed.producer.get(v)
    return n.inputs[0] if n is not None and n.op == "dequantize_linear" else v


def _window_counts(n: Node) -> np.ndarray:
    """[1, 1, Ho, Wo]: how many taps of each window fall inside the unpadded input."""
    sp = [int(d) for d in n.inputs[0].shape[2:]]
    counts = PoolWindow(n.op, sp, n.attrs).count([0] * len(sp), sp)
    return counts.reshape(1, 1, *counts.shape)


def lower_avg_pool2d(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    x = activation(m, n.inputs[0])
    a = n.attrs
    c = n.inputs[0].shape[1]
    if x is None or a["ceil_mode"] or not isinstance(c, int):
        return None
    kh, kw = a.ints("kernel")
    ones = bb.const(np.ones((c, 1, kh, kw), np.int8), hint="ones")
    acc = bb.emit("qconv2d", x.q, ones, strides=a["strides"], pads=a["pads"],
                  dilations=a["dilations"], groups=c, x_zp=x.z)
    if a.bool("count_include_pad") or not any(a.ints("pads")):
        return Acc(acc, x.s / (kh * kw), axis=1)
    # NOTE: without count_include_pad the divisor shrinks at the borders: multiply by a
    # per-position reciprocal in Q16 (relative error <= 2^-17 of the divisor)
    if kh * kw * 256 * 2 ** RECIP_BITS > I32_MAX:
        return None
    recip = np.rint(2.0 ** RECIP_BITS / np.maximum(_window_counts(n), 1)).astype(np.int32)
    acc = bb.emit("mul", acc, bb.const(recip, hint="recip"))
    return Acc(acc, x.s * 2.0 ** -RECIP_BITS, axis=1)


def lower_reduce_mean(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    x = activation(m, n.inputs[0])
    shape = n.inputs[0].shape
    axes = [ax % len(shape) for ax in n.attrs.ints("axes")] or list(range(len(shape)))
    dims = [shape[ax] for ax in axes]
    if x is None or not all(isinstance(d, int) for d in dims):
        return None
    count = math.prod(dims)
    if count * 256 > I32_MAX:  # the i32 sum could overflow
        return None
    wide = bb.emit("cast", x.q, to="i32")
    if x.z:
        wide = bb.emit("sub", wide, i32_const(bb, x.z, "zp"))
    acc = bb.emit("reduce_sum", wide, axes=n.attrs["axes"], keepdims=n.attrs["keepdims"])
    return Acc(acc, x.s / count if n.op == "reduce_mean" else x.s, axis=1)


CONTRACTIONS = {"conv2d": lower_conv2d, "linear": lower_linear, "matmul": lower_matmul,
                "gemm": lower_gemm,
                "avg_pool2d": lower_avg_pool2d, "reduce_mean": lower_reduce_mean,
                "reduce_sum": lower_reduce_mean}
