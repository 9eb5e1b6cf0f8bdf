"""Integer forms of the elementwise ops for `lower-integer`, written straight into the
output's parameters (QOut) rather than through an accumulator:

    add/sub(dq a, dq b)     => qadd(a, b) {a_mult ~ s_a/s_y, b_mult ~ +-s_b/s_y, shift}
    mul(dq a, dq b)         => qmul(a, b) {dyadic(s_a s_b / s_y)}
    op(dq a, float const c) => the same with c quantized per tensor (i16 for add/sub, i8 for mul)
    mul/div(dq x, scalar c) => qadd(x, x) {a_mult ~ s_x c / s_y (or 1/c), b_mult = 0}: exact
    hard_sigmoid(dq x)      => qadd(x, 1) {alpha s_x/s_y, beta/s_y} clipped to [Q(0), Q(1)]
    hard_swish(dq x)        => qmul(x, hard_sigmoid(x) as u8 at 1/255)
    sigmoid(dq x)           => shiftmax over the pair [x, x_zp] (softmax([t, 0])[0] = sigmoid(t))
                               as i16 at 2^-15, then requantized (an Acc)

Clipping a result to [Q(lo), Q(hi)] is exact because Q is monotone.
"""
from __future__ import annotations

import math

import numpy as np

from vcompile.ir.graph import Node, Value
from vcompile.ir.ops.integer import dyadic
from vcompile.passes.infra.pattern import Match, RewriteBuilder
from vcompile.passes.integer.contractions import Acc
from vcompile.passes.integer.qparams import QOut, QParams, affine, dequantized

NARROW = ("i8", "u8", "i16", "u16")
LOG2E = math.log2(math.e)


def _operand(m: Match, bb: RewriteBuilder, v: Value, dtype: str) -> QParams | None:
    """A per-tensor dequantized operand, or a float constant quantized symmetrically."""
    dq = dequantized(m, v)
    if dq is not None:
        return dq if dq.per_tensor and dq.q.dtype in NARROW else None
    arr = m.const_of(v)
    if arr is None or arr.dtype.kind != "f" or not np.isfinite(arr).all():
        return None
    top = {"i8": 127, "i16": 32767}[dtype]
    s = float(np.abs(arr).max(initial=0)) / top or 1.0
    q = bb.const(np.rint(arr.astype(np.float64) / s).astype(np.int8 if dtype == "i8" else np.int16),
                 hint="c")
    return QParams(q, np.array(s), np.array(0), 0)


def lower_add(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Value | None:
    a, b = (_operand(m, bb, v, "i16") for v in n.inputs)
    both_const = all(m.const_of(v) is not None for v in n.inputs)
    if a is None or b is None or both_const:
        return None
    sign = -1.0 if n.op == "sub" else 1.0
    return affine(bb, a.q, a.z, a.s / out.s, b.q, b.z, sign * b.s / out.s, out)


def _by_scalar(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Value | None:
    """x * c or x / c with a scalar constant c: one exact rescale (a signed multiplier)."""
    c = m.const_of(n.inputs[1])
    x = dequantized(m, n.inputs[0])
    if c is None or c.size != 1 or x is None or not x.per_tensor or x.q.dtype not in NARROW:
        return None
    k = float(c.reshape(-1)[0])
    if k == 0 or not np.isfinite(k):
        return None
    real = x.s * (1 / k if n.op == "div" else k) / out.s
    return affine(bb, x.q, x.z, real, x.q, x.z, 0.0, out)


def lower_div(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Value | None:
    return _by_scalar(m, bb, n, out)


def lower_mul(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Value | None:
    scalar = _by_scalar(m, bb, n, out)
    if scalar is not None:
        return scalar
    a, b = (_operand(m, bb, v, "i8") for v in n.inputs)
    if a is None or b is None or a.q.dtype not in ("i8", "u8") or b.q.dtype not in ("i8", "u8"):
        return None
    mult, shift = dyadic(a.s * b.s / out.s)
    return bb.emit("qmul", a.q, b.q, mult=int(mult[0]), shift=int(shift[0]), a_zp=a.z, b_zp=b.z,
                   zero_point=out.z, out_dtype=out.dtype, clip=out.clip)


def _unit_clip(out: QOut) -> QOut:
    """out clipped further to [Q(0), Q(1)]."""
    lo, hi = out.clip or out.qrange()
    clip = (max(lo, out.z), min(hi, out.z + int(np.rint(1.0 / out.s))))
    return QOut(out.s, out.z, out.dtype, clip)


def _hard_sigmoid(bb: RewriteBuilder, x: QParams, alpha: float, beta: float, out: QOut) -> Value:
    one = bb.const(np.array(1, np.int8), hint="one")
    return affine(bb, x.q, x.z, alpha * x.s / out.s, one, 0, beta / out.s, _unit_clip(out))


def lower_hard_sigmoid(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Value | None:
    x = dequantized(m, n.inputs[0])
    if x is None or not x.per_tensor or x.q.dtype not in NARROW:
        return None
    return _hard_sigmoid(bb, x, n.attrs.float("alpha"), n.attrs.float("beta"), out)


def lower_hard_swish(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Value | None:
    x = dequantized(m, n.inputs[0])
    if x is None or not x.per_tensor or x.q.dtype not in ("i8", "u8"):
        return None
    gate = QOut(1.0 / 255, 0, "u8")
    h = _hard_sigmoid(bb, x, 1.0 / 6, 0.5, gate)
    mult, shift = dyadic(x.s * gate.s / out.s)
    return bb.emit("qmul", x.q, h, mult=int(mult[0]), shift=int(shift[0]), a_zp=x.z, b_zp=0,
                   zero_point=out.z, out_dtype=out.dtype, clip=out.clip)


def lower_sigmoid(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    x = dequantized(m, n.inputs[0])
    if x is None or not x.per_tensor or x.q.dtype not in NARROW:
        return None
    mult, shift = dyadic(x.s * LOG2E * 2 ** 14)
    rank = n.inputs[0].type.rank
    col = bb.emit("unsqueeze", x.q, axes=(rank,))
    zp = bb.const(np.full((1,) * (rank + 1), x.z, x.q.type.np_dtype), hint="zp")
    pair = bb.emit("concat", col, bb.emit("expand", zp, shape=col.shape), axis=rank)
    p = bb.emit("shiftmax", pair, axis=rank, mult=int(mult[0]), shift=int(shift[0]),
                frac_bits=14, out_bits=15, out_dtype="i16")
    first = bb.emit("slice", p, starts=(0,), ends=(1,), axes=(rank,), steps=(1,))
    return Acc(bb.emit("squeeze", first, axes=(rank,)), 2.0 ** -15, axis=-1)


DIRECT = {"add": lower_add, "sub": lower_add, "mul": lower_mul, "div": lower_div,
          "hard_sigmoid": lower_hard_sigmoid, "hard_swish": lower_hard_swish}
