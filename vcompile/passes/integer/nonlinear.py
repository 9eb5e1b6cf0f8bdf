"""Integer forms of attention and the nonlinearities for `lower-integer` (I-ViT's Shiftmax,
ShiftGELU and integer LayerNorm; see vcompile/ir/ops/integer.py for the ops' arithmetic).
Each returns the Acc (integer value and the real scale of one unit) that `lower_integer`
requantizes into the output's parameters:

    attention(dq q, dq k, dq v, bias?) {scale}
        => qmatmul(shiftmax(qmatmul(q, transpose(k)) [+ round(bias / (scale s_q s_k))]), v)
                                                                        at 2^-8 s_v
           shiftmax {mult, shift} = dyadic(scale s_q s_k log2(e) 2^F), the bias in units
           of scale s_q s_k (the scale applies before the bias)
    softmax(dq x)    => shiftmax(x) {dyadic(s_x log2(e) 2^F)}           u8 at 2^-8 (i16 at 2^-15)
    gelu(dq x)       => igelu(x) {x_zp, dyadic(1.702 log2(e) s_x 2^F)}  at s_x 2^-F
    silu(dq x)       => igelu(x) {x_zp, dyadic(log2(e) s_x 2^F)}        at s_x 2^-F
    layer_norm(dq x, gamma, beta) {epsilon}
        => ilayernorm(x, round(gamma 2^G), round(beta 2^(F+G))) {eps = round(C^2 epsilon / s_x^2)}
                                                                        at 2^-(F+G)
    group_norm(dq x, gamma, beta) {num_groups=1}  => the same over [C, H, W], gamma as [C, 1, 1]
G is the largest with |gamma| 2^G < 2^14 and the i32 result in range: about sqrt(C) 2^F
is the largest normalized value. An 8-bit x first becomes i16 x 2^k (a requantize, exact):
for small C the integer r ~ C std is otherwise too coarse (an error of 1/r in the output).
"""
from __future__ import annotations

import math

import numpy as np

from vcompile.ir.graph import Node
from vcompile.ir.ops.integer import dyadic
from vcompile.ir.ops.windows import layer_span
from vcompile.passes.infra.pattern import Match, RewriteBuilder
from vcompile.passes.integer.contractions import Acc, activation
from vcompile.passes.integer.qparams import QOut, QParams, const_value, dequantized

LOG2E = math.log2(math.e)
SOFTMAX_BITS = 14  # fraction bits of the exponent inside shiftmax
GELU_BITS = 14
LN_BITS = 12
PROB_BITS = 8  # attention probabilities: u8 at 2^-8


def _mult_shift(real: float) -> tuple[int, int] | None:
    m, s = dyadic(real)
    return (int(m[0]), int(s[0])) if 0 < real < 2 ** 30 else None


def lower_attention(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    q, k, v = (activation(m, x) for x in n.inputs[:3])
    if q is None or k is None or v is None:
        return None
    # NOTE: the attention scale multiplies the logits before the bias is added, so one
    # unit of q @ kT stands for scale * s_q * s_k in the softmax input, the bias's unit too.
    s_logit = n.attrs.float("scale") * q.s * k.s
    ms = _mult_shift(s_logit * LOG2E * 2 ** SOFTMAX_BITS)
    if ms is None:
        return None
    bias = None
    if len(n.inputs) == 4:
        arr = const_value(m, n.inputs[3])
        if arr is None or np.isnan(arr).any() or (arr == np.inf).any():
            return None
        # NOTE: clipped to +-2^30 so that logits + bias stays in i32; a -inf (or -1e4) mask
        # stays a mask: shiftmax gives it probability 0
        with np.errstate(invalid="ignore"):
            units = np.nan_to_num(arr.astype(np.float64) / s_logit, neginf=-2.0 ** 30)
        bias = np.clip(np.rint(units), -2 ** 30, 2 ** 30).astype(np.int32)
    rank = n.inputs[1].type.rank
    kt = bb.emit("transpose", k.q, perm=tuple(range(rank - 2)) + (rank - 1, rank - 2))
    logits = bb.emit("qmatmul", q.q, kt, a_zp=q.z, b_zp=k.z)
    if bias is not None:
        logits = bb.emit("add", logits, bb.const(bias, hint="bias"))
    p = bb.emit("shiftmax", logits, axis=-1, mult=ms[0], shift=ms[1], frac_bits=SOFTMAX_BITS,
                out_bits=PROB_BITS, out_dtype="u8")
    acc = bb.emit("qmatmul", p, v.q, a_zp=0, b_zp=v.z)
    return Acc(acc, v.s * 2.0 ** -PROB_BITS, axis=-1)


def lower_softmax(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Acc | None:
    x = dequantized(m, n.inputs[0])
    if x is None or not x.per_tensor or x.q.dtype not in ("i8", "u8", "i16", "i32"):
        return None
    ms = _mult_shift(x.s * LOG2E * 2 ** SOFTMAX_BITS)
    if ms is None:
        return None
    exact = out.dtype == "u8" and out.z == 0 and out.s == 2.0 ** -PROB_BITS
    bits, dt = (PROB_BITS, "u8") if exact else (15, "i16")
    p = bb.emit("shiftmax", x.q, axis=n.attrs["axis"], mult=ms[0], shift=ms[1],
                frac_bits=SOFTMAX_BITS, out_bits=bits, out_dtype=dt)
    return Acc(p, 2.0 ** -bits, axis=-1)


def _igelu(m: Match, bb: RewriteBuilder, n: Node, slope: float) -> Acc | None:
    x = dequantized(m, n.inputs[0])
    if x is None or not x.per_tensor or x.q.dtype not in ("i8", "u8", "i16", "u16"):
        return None
    ms = _mult_shift(slope * LOG2E * x.s * 2 ** GELU_BITS)
    if ms is None:
        return None
    y = bb.emit("igelu", x.q, x_zp=x.z, mult=ms[0], shift=ms[1], frac_bits=GELU_BITS)
    return Acc(y, x.s * 2.0 ** -GELU_BITS, axis=-1)


def lower_gelu(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    return _igelu(m, bb, n, 1.702)


def lower_silu(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    return _igelu(m, bb, n, 1.0)


def _gamma_bits(gamma: np.ndarray, beta: np.ndarray, c: int) -> int:
    """The largest G with |gamma| 2^G < 2^14 and |norm| |gamma| 2^(F+G) + |beta| 2^(F+G) < 2^31."""
    g_top = float(np.abs(gamma).max(initial=0)) or 1.0
    b_top = float(np.abs(beta).max(initial=0))
    worst = math.sqrt(c) * g_top + b_top  # |(x - mean) / std| <= sqrt(C)
    g = math.floor(math.log2(2 ** 14 / g_top))
    g = min(g, math.floor(math.log2(2 ** 30.5 / (worst * 2 ** LN_BITS))))
    return g if 2 ** g * g_top < 2 ** 14 else g - 1


def _ilayernorm(bb: RewriteBuilder, x: QParams, gamma: np.ndarray, beta: np.ndarray | None,
                span: tuple[int, int, int], epsilon: float) -> Acc | None:
    """ilayernorm over `span` = (axis, naxes, C) with float gamma/beta laid out for it."""
    ax, naxes, c = span
    wide = _widen(bb, x, c)
    if wide is None:
        return None
    x = wide
    b = np.zeros(1) if beta is None else beta.astype(np.float64)
    gb = _gamma_bits(gamma.astype(np.float64), b, c)
    ins = [x.q, bb.const(np.rint(gamma.astype(np.float64) * 2.0 ** gb).astype(np.int32), hint="gamma")]
    if beta is not None:
        ins.append(bb.const(np.rint(b * 2.0 ** (LN_BITS + gb)).astype(np.int32), hint="beta"))
    eps = int(round(c * c * epsilon / x.s ** 2))
    y = bb.emit("ilayernorm", *ins, axis=ax, naxes=naxes, x_zp=x.z, eps=min(eps, 2 ** 62),
                frac_bits=LN_BITS)
    return Acc(y, 2.0 ** -(LN_BITS + gb), axis=-1)


def _widen(bb: RewriteBuilder, x: QParams, c: int) -> QParams | None:
    """An 8-bit x times 2^k as i16 (exact), so that ilayernorm's isqrt of the variance has
    2^k times the resolution (r ~ C std is otherwise a small integer for small C); None
    when even the input itself could overflow sum(D^2) in int64."""
    def fits(top: int) -> bool:  # NOTE: |D| <= C top, sum(D^2) <= C^3 top^2
        return c ** 3 * top ** 2 < 2 ** 63
    if x.q.dtype not in ("i8", "u8"):
        return x if fits(65536) else None
    k = 7 if x.q.dtype == "u8" else 8  # 255 * 2^7 and -128 * 2^8 still fit i16
    while k > 0 and not fits(256 << k):
        k -= 1
    if not fits(256 << k):
        return None
    if k == 0:
        return x
    q = bb.emit("requantize", x.q, bb.const(np.int32(2 ** 30), hint="mult"),
                bb.const(np.int32(30 - k), hint="shift"), out_dtype="i16")
    return QParams(q, x.scale / 2 ** k, x.zp * 2 ** k, x.axis)


def _norm_input(m: Match, n: Node) -> QParams | None:
    x = dequantized(m, n.inputs[0])
    if x is None or not x.per_tensor or x.q.dtype not in ("i8", "u8", "i16", "u16"):
        return None
    return x if all(const_value(m, v) is not None for v in n.inputs[1:]) else None


def lower_layer_norm(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    x = _norm_input(m, n)
    if x is None:
        return None
    ax, stop = layer_span(n.inputs[0].type, n.attrs)
    naxes = n.attrs.int("naxes")
    dims = n.inputs[0].shape[ax:stop]
    if not all(isinstance(d, int) for d in dims):
        return None
    beta = const_value(m, n.inputs[2]) if len(n.inputs) == 3 else None
    return _ilayernorm(bb, x, const_value(m, n.inputs[1]), beta, (ax, naxes, math.prod(dims)),  # type: ignore[arg-type]
                       n.attrs.float("epsilon"))


def lower_group_norm(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    """GroupNorm with one group is a LayerNorm over [C, spatial...] with per-channel affine."""
    x = _norm_input(m, n)
    shape = n.inputs[0].shape
    if x is None or n.attrs.int("num_groups") != 1 or not all(isinstance(d, int) for d in shape[1:]):
        return None
    lay = (-1,) + (1,) * (len(shape) - 2)
    gamma, beta = (const_value(m, v).reshape(lay) for v in n.inputs[1:])  # type: ignore[union-attr]
    return _ilayernorm(bb, x, gamma, beta, (1, 0, math.prod(shape[1:])),
                       n.attrs.float("epsilon"))


def lower_identity(m: Match, bb: RewriteBuilder, n: Node) -> Acc | None:
    """dequantize_linear itself: Q(DQ(x)) and a relu/clip on a DQ rescale x."""
    x = dequantized(m, n.outputs[0])
    if x is None or not x.per_tensor or x.q.dtype not in ("i8", "u8", "i16", "u16", "i32"):
        return None
    return Acc(x.q, x.s, axis=-1, zp=x.z)
