"""Integer-only ops: what `lower-integer` turns a quantized region into.

Every eval here is a bit-exact description of integer arithmetic (int64 intermediates,
arithmetic shifts, floor division); a compiled kernel must produce the same bits. Scales
never appear at run time: the lowering turns them into integer multipliers and shifts.

    rshift_round(v, s) = (v + 2^(s-1)) >> s  for s > 0, v for s = 0    (round half up)

Contractions (int8/uint8 operands, int32 results, zero points subtracted exactly):
    qconv2d(x, w, b?) {strides, pads, dilations, groups, x_zp}
        = conv2d(x - x_zp, w) + b        x: i8|u8 [N,C,H,W] (padding holds x_zp), w: i8, b: i32
    qlinear(x, w, b?) {x_zp}    = (x - x_zp) @ w + b                 w: i8 [K,N], b: i32 [N]
    qmatmul(a, b) {a_zp, b_zp}  = (a - a_zp) @ (b - b_zp)            batch dims broadcast

Rescaling (the dyadic requantization between scales):
    requantize(x, multiplier, shift) {axis, zero_point, out_dtype, clip}
        = clip(rshift_round(x * multiplier, shift) + zero_point, lo, hi)
      multiplier and shift are i32 scalars or vectors along `axis`; (lo, hi) = `clip` or the
      range of `out_dtype`. A ReLU after a conv is `clip=(zero_point, hi)`.
    qadd(a, b) {a_mult, b_mult, shift, a_zp, b_zp, zero_point, out_dtype, clip}
        = clip(rshift_round((a - a_zp) * a_mult + (b - b_zp) * b_mult, shift) + zero_point)
    qmul(a, b) {mult, shift, a_zp, b_zp, zero_point, out_dtype, clip}
        = clip(rshift_round((a - a_zp) * (b - b_zp) * mult, shift) + zero_point)

Nonlinearities in fixed point with F = `frac_bits` fraction bits (I-ViT's Shiftmax,
ShiftGELU and integer LayerNorm, with exp computed as 2^-u: shifts for the integer part of
u, a quadratic for the fraction, see `exp2_neg`):
    shiftmax(x) {axis, mult, shift, frac_bits, out_bits, out_dtype}
        d = max(x - max(x), -(2^31 - 1));  u = -rshift_round(d * mult, shift)   (u ~ -d*S*log2(e)*2^F)
        e = exp2_neg(u);  y = rshift_round(e * (2^30 // sum(e)), 30 - out_bits)   (scale 2^-out_bits)
    igelu(x) {x_zp, mult, shift, frac_bits}            -> i32, scale S * 2^-F
        xd = x - x_zp;  z = rshift_round(xd * mult, shift)       (z ~ 1.702*xd*S*log2(e)*2^F)
        e = exp2_neg(|z|);  sn = (e << F) // (e + 2^F);  y = xd * (z >= 0 ? 2^F - sn : sn)
    ilayernorm(x, gamma, beta?) {axis, naxes, x_zp, eps, frac_bits}   -> i32
        over the C normalized elements: xd = x - x_zp;  D = C*xd - sum(xd);
        r = max(isqrt(sum(D^2) // C + eps), 1);  y = ((D << F) // r) * gamma + beta
      (r ~ C*std, so (D << F) // r ~ (x - mean) / std in Q(F); eps is C^2 * epsilon / S^2.)
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops import flops
from vcompile.ir.ops.linalg import matmul_shape
from vcompile.ir.ops.nn import conv_eval, conv_infer
from vcompile.ir.ops.ranges import int_range
from vcompile.ir.ops.registry import ShapeError, broadcast_shapes, norm_axis, register_op
from vcompile.ir.ops.windows import ints, layer_span, pad_spatial, window_attrs
from vcompile.ir.types import DTYPES, TensorType

BYTE_DTYPES = frozenset({"i8", "u8"})
NARROW_DTYPES = frozenset({"i8", "u8", "i16", "u16"})
ACC_DTYPES = NARROW_DTYPES | {"i32"}
OUT_DTYPES = ("i8", "u8", "i16", "i32")

# 2^-t for t in [0, 1) as A + B*t + C*t^2 in Q(F): the minimax quadratic through 2^-0 = 1 (a
# softmax row's maximum gets exactly 2^F) and 2^-1 = 1/2 (continuous across integer parts);
# its largest error is 1.9e-3.
EXP2_POLY = (1.0, -0.67215, 0.17215)


# ---- integer helpers (shared by the evals, the lowering and the tests) -------------------

def rshift_round(v: np.ndarray, s: np.ndarray | int) -> np.ndarray:
    """(v + 2^(s-1)) >> s elementwise on int64, v where s == 0: round half up."""
    v = np.asarray(v, np.int64)
    s = np.asarray(s, np.int64)
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    return np.right_shift(v + half, s)


def dyadic(real: float | np.ndarray, bits: int = 31, max_shift: int = 62) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, shift) int32 arrays with multiplier * 2^-shift ~ real, the multiplier in
    [2^(bits-1), 2^bits) where the shift allows (zero for a zero real; reals must be >= 0)."""
    r = np.atleast_1d(np.asarray(real, np.float64))
    if (r < 0).any() or not np.isfinite(r).all():
        raise ValueError(f"dyadic: multipliers must be finite and >= 0, got {r.min()}")
    mant, exp = np.frexp(r)  # r = mant * 2^exp, mant in [0.5, 1)
    shift = np.clip(bits - exp, 0, max_shift)
    mult = np.rint(r * np.exp2(shift.astype(np.float64)))
    # NOTE: rounding can carry the mantissa to 2^bits; halve it and drop one shift.
    carry = mult >= 2.0 ** bits
    mult = np.where(carry, np.rint(mult / 2), mult)
    shift = np.where(carry, shift - 1, shift)
    if (mult >= 2.0 ** 31).any():
        raise ValueError(f"dyadic: {r.max()} is too large for a 31-bit multiplier")
    return mult.astype(np.int32), shift.astype(np.int32)


def exp2_poly(frac_bits: int) -> tuple[int, int, int]:
    """EXP2_POLY in Q(frac_bits) integers."""
    one = 1 << frac_bits
    return tuple(int(round(c * one)) for c in EXP2_POLY)  # type: ignore[return-value]


def exp2_neg(u: np.ndarray, frac_bits: int) -> np.ndarray:
    """2^-(u / 2^F) in Q(F) for int64 u >= 0: the integer part of u by a right shift, the
    fraction f by the quadratic A + ((B*f) >> F) + ((C*((f*f) >> F)) >> F)."""
    f_bits = frac_bits
    a, b, c = exp2_poly(f_bits)
    u = np.asarray(u, np.int64)
    q = np.minimum(u >> f_bits, 62)
    f = u & ((1 << f_bits) - 1)
    p = a + ((b * f) >> f_bits) + ((c * ((f * f) >> f_bits)) >> f_bits)
    return p >> q


def isqrt(v: np.ndarray) -> np.ndarray:
    """floor(sqrt(v)) for int64 v >= 0, exactly."""
    v = np.asarray(v, np.int64)
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    # NOTE: float64 is off by at most one here; step to the exact floor, comparing by
    # division (r * r overflows int64 next to 2^63).
    for _ in range(2):
        r = np.where((r > 0) & (r > v // np.maximum(r, 1)), r - 1, r)
        r = np.where(r + 1 <= v // (r + 1), r + 1, r)
    return r


def _saturate(v: np.ndarray, a: Attrs) -> np.ndarray:
    lo, hi = int_range(a.str("out_dtype"), ints(a, "clip"))
    return np.clip(v, lo, hi).astype(DTYPES[a.str("out_dtype")])


def _check_dtype(op: str, t: TensorType, allowed: frozenset[str], what: str) -> None:
    if t.dtype not in allowed:
        raise ShapeError(f"{op}: {what} must be {' or '.join(sorted(allowed))}, got {t}")


def _check_out(op: str, a: Attrs) -> str:
    dt = a.str("out_dtype")
    if dt not in OUT_DTYPES:
        raise ShapeError(f"{op}: out_dtype must be one of {', '.join(OUT_DTYPES)}, got {dt!r}")
    c = ints(a, "clip")
    if c and (len(c) != 2 or c[0] > c[1]):
        raise ShapeError(f"{op}: clip must be (lo, hi) with lo <= hi, got {list(c)}")
    return dt


def _check_shift(op: str, *shifts: int) -> None:
    for s in shifts:
        if not 0 <= int(s) <= 62:
            raise ShapeError(f"{op}: shift must be in [0, 62], got {s}")


_OUT_ATTRS = {"zero_point": ("int", 0), "out_dtype": ("str", "i8"), "clip": ("ints", ())}


# ---- contractions ---------------------------------------------------------------------

def _check_bias(op: str, b: TensorType, n: object) -> None:
    if b.dtype != "i32" or b.shape != (n,):
        raise ShapeError(f"{op}: bias must be i32[{n}], got {b}")


def _qconv_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, w = ts[0], ts[1]
    _check_dtype("qconv2d", x, BYTE_DTYPES, "input")
    _check_dtype("qconv2d", w, frozenset({"i8"}), "weight")
    if len(ts) == 3:
        _check_bias("qconv2d", ts[2], w.shape[0])
    fx, fw = x.with_dtype("f32"), w.with_dtype("f32")
    (out,) = conv_infer("qconv2d", 2)([fx, fw, TensorType("f32", (w.shape[0],))], a)
    return (out.with_dtype("i32"),)


def _exact_f64(*xs: np.ndarray) -> list[np.ndarray]:
    # NOTE: int8 products summed over fewer than 2^37 terms are exact in float64, so BLAS
    # computes the integer contraction exactly (int64 matmul in numpy has no BLAS).
    return [v.astype(np.float64) for v in xs]


def _to_i32(y: np.ndarray) -> np.ndarray:
    return np.rint(y).astype(np.int64).astype(np.int32)


def _qconv_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, w = xs[0], xs[1]
    zp = a.int("x_zp")
    xf, wf = _exact_f64(x.astype(np.int64) - zp, w)
    conv_attrs = Attrs({**a, "pads": (0, 0, 0, 0)})
    p = ints(a, "pads")
    xf = pad_spatial(xf, p[:2], p[2:], 0)  # padding holds x_zp, i.e. 0 after the shift
    (y,) = conv_eval([xf, wf, np.zeros(w.shape[0])], conv_attrs)
    y = _to_i32(y)
    if len(xs) == 3:
        y = (y.astype(np.int64) + xs[2].reshape(1, -1, 1, 1)).astype(np.int32)
    return (y,)


register_op("qconv2d", (2, 3), _qconv_infer, _qconv_eval, kind="anchor", flops=flops.conv,
            attrs={**window_attrs(2), "groups": ("int", 1), "x_zp": ("int", 0)},
            doc="int8 2-d convolution: conv2d(x - x_zp, w) + b, accumulated in i32")


def _qlinear_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, w = ts[0], ts[1]
    _check_dtype("qlinear", x, BYTE_DTYPES, "input")
    _check_dtype("qlinear", w, frozenset({"i8"}), "weight")
    if x.rank < 1 or w.rank != 2 or x.shape[-1] != w.shape[0]:
        raise ShapeError(f"qlinear: x [..., K] and w [K, N] expected, got {x} and {w}")
    if len(ts) == 3:
        _check_bias("qlinear", ts[2], w.shape[1])
    return (TensorType("i32", x.shape[:-1] + (w.shape[1],)),)


def _qlinear_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, w = _exact_f64(xs[0].astype(np.int64) - a.int("x_zp"), xs[1])
    y = _to_i32(x @ w)
    if len(xs) == 3:
        y = (y.astype(np.int64) + xs[2]).astype(np.int32)
    return (y,)


register_op("qlinear", (2, 3), _qlinear_infer, _qlinear_eval, kind="anchor", flops=flops.linear,
            attrs={"x_zp": ("int", 0)},
            doc="int8 linear: (x - x_zp) @ w + b over the last axis, accumulated in i32")


def _qmatmul_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    for t, what in zip(ts, ("a", "b"), strict=True):
        _check_dtype("qmatmul", t, BYTE_DTYPES, what)
    if ts[0].rank < 2 or ts[1].rank < 2:
        raise ShapeError(f"qmatmul: operands must have rank >= 2, got {ts[0]} and {ts[1]}")
    return (TensorType("i32", matmul_shape(ts[0].shape, ts[1].shape)),)


def _qmatmul_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    p, q = _exact_f64(xs[0].astype(np.int64) - a.int("a_zp"),
                      xs[1].astype(np.int64) - a.int("b_zp"))
    return (_to_i32(np.matmul(p, q)),)


register_op("qmatmul", 2, _qmatmul_infer, _qmatmul_eval, kind="anchor", flops=flops.matmul,
            attrs={"a_zp": ("int", 0), "b_zp": ("int", 0)},
            doc="int8 batched matmul: (a - a_zp) @ (b - b_zp), accumulated in i32")


# ---- rescaling -------------------------------------------------------------------------

def _requantize_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x, m, s = ts
    _check_dtype("requantize", x, ACC_DTYPES, "input")
    dt = _check_out("requantize", a)
    for t, what in ((m, "multiplier"), (s, "shift")):
        if t.dtype != "i32":
            raise ShapeError(f"requantize: {what} must be i32, got {t}")
    if m.shape != s.shape:
        raise ShapeError(f"requantize: multiplier {m} and shift {s} must have one shape")
    if m.rank == 1 and m.shape[0] != 1:
        ax = norm_axis(a.int("axis"), x.rank, "requantize")
        if m.shape[0] != x.shape[ax]:
            raise ShapeError(f"requantize: per-axis multiplier {m} must have dim {ax} of {x} "
                             f"({x.shape[ax]}) elements")
    elif m.rank > 1:
        raise ShapeError(f"requantize: multiplier must be a scalar or a vector, got {m}")
    return (x.with_dtype(dt),)


def _along(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    if v.size == 1:
        return v.reshape(()).astype(np.int64)
    shape = [1] * ndim
    shape[axis % ndim] = v.size
    return v.reshape(shape).astype(np.int64)


def _requantize_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, m, s = xs
    ax = a.int("axis")
    if ((s < 0) | (s > 62)).any():
        raise ValueError(f"requantize: shifts must be in [0, 62], got {s.min()}..{s.max()}")
    v = rshift_round(x.astype(np.int64) * _along(m, x.ndim, ax), _along(s, x.ndim, ax))
    return (_saturate(v + a.int("zero_point"), a),)


register_op("requantize", 3, _requantize_infer, _requantize_eval, kind="elementwise",
            attrs={"axis": ("int", 1), **_OUT_ATTRS},
            doc="dyadic rescale: clip(rshift_round(x * multiplier, shift) + zero_point)")


def _binary_infer(op: str):
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        allowed = NARROW_DTYPES if op == "qadd" else BYTE_DTYPES
        for t, what in zip(ts, ("a", "b"), strict=True):
            _check_dtype(op, t, allowed, what)
        dt = _check_out(op, a)
        _check_shift(op, a.int("shift"))
        return (TensorType(dt, broadcast_shapes(ts[0].shape, ts[1].shape)),)
    return infer


def _qadd_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    p = (xs[0].astype(np.int64) - a.int("a_zp")) * a.int("a_mult")
    q = (xs[1].astype(np.int64) - a.int("b_zp")) * a.int("b_mult")
    return (_saturate(rshift_round(p + q, a.int("shift")) + a.int("zero_point"), a),)


def _qmul_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    p = (xs[0].astype(np.int64) - a.int("a_zp")) * (xs[1].astype(np.int64) - a.int("b_zp"))
    v = rshift_round(p * a.int("mult"), a.int("shift"))
    return (_saturate(v + a.int("zero_point"), a),)


_ZPS = {"a_zp": ("int", 0), "b_zp": ("int", 0)}
register_op("qadd", 2, _binary_infer("qadd"), _qadd_eval, kind="elementwise",
            attrs={"a_mult": ("int",), "b_mult": ("int",), "shift": ("int",), **_ZPS, **_OUT_ATTRS},
            doc="integer add at a common scale: rshift_round((a-za)*ma + (b-zb)*mb, shift) + zp")
register_op("qmul", 2, _binary_infer("qmul"), _qmul_eval, kind="elementwise",
            attrs={"mult": ("int",), "shift": ("int",), **_ZPS, **_OUT_ATTRS},
            doc="integer multiply: rshift_round((a-za)*(b-zb)*mult, shift) + zp")


# ---- nonlinearities ---------------------------------------------------------------------

def _fx_checks(op: str, x: TensorType, a: Attrs, allowed: frozenset[str]) -> None:
    _check_dtype(op, x, allowed, "input")
    f = a.int("frac_bits")
    if not 4 <= f <= 16:
        raise ShapeError(f"{op}: frac_bits must be in [4, 16], got {f}")
    if "mult" in a and not 0 <= a.int("mult") < 2 ** 31:
        raise ShapeError(f"{op}: mult must be in [0, 2^31), got {a['mult']}")
    if "shift" in a:
        _check_shift(op, a.int("shift"))


def _shiftmax_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x = ts[0]
    _fx_checks("shiftmax", x, a, ACC_DTYPES)
    norm_axis(a.int("axis"), x.rank, "shiftmax")
    bits, dt = a.int("out_bits"), a.str("out_dtype")
    if dt not in ("u8", "i8", "i16") or not 1 <= bits <= 15:
        raise ShapeError(f"shiftmax: out_dtype must be u8, i8 or i16 and out_bits in [1, 15], "
                         f"got {dt} and {bits}")
    return (x.with_dtype(dt),)


def _shiftmax_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x = xs[0].astype(np.int64)
    ax, f, bits = a.int("axis"), a.int("frac_bits"), a.int("out_bits")
    d = np.maximum(x - x.max(axis=ax, keepdims=True), -(2 ** 31 - 1))
    u = -rshift_round(d * a.int("mult"), a.int("shift"))
    e = exp2_neg(u, f)
    factor = (1 << 30) // e.sum(axis=ax, keepdims=True)
    y = rshift_round(e * factor, 30 - bits)
    return (_saturate(y, Attrs({"out_dtype": a["out_dtype"], "clip": ()})),)


register_op("shiftmax", 1, _shiftmax_infer, _shiftmax_eval, kind="reduce", flops=flops.per_out(5),
            attrs={"axis": ("int", -1), "mult": ("int",), "shift": ("int",),
                   "frac_bits": ("int", 14), "out_bits": ("int", 8), "out_dtype": ("str", "u8")},
            doc="integer softmax (I-ViT Shiftmax): probabilities with scale 2^-out_bits")


def _igelu_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    _fx_checks("igelu", ts[0], a, NARROW_DTYPES)
    return (ts[0].with_dtype("i32"),)


def _igelu_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    f = a.int("frac_bits")
    xd = xs[0].astype(np.int64) - a.int("x_zp")
    z = rshift_round(xd * a.int("mult"), a.int("shift"))
    e = exp2_neg(np.abs(z), f)
    sn = (e << f) // (e + (1 << f))
    sig = np.where(z >= 0, (1 << f) - sn, sn)
    return ((xd * sig).astype(np.int32),)


register_op("igelu", 1, _igelu_infer, _igelu_eval, kind="elementwise",
            attrs={"x_zp": ("int", 0), "mult": ("int",), "shift": ("int",), "frac_bits": ("int", 14)},
            doc="integer GELU x * sigmoid(1.702 x) (I-ViT ShiftGELU): i32 at scale S * 2^-frac_bits")


def _ilayernorm_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    x = ts[0]
    _fx_checks("ilayernorm", x, a, NARROW_DTYPES)
    ax, stop = layer_span(x, a)
    span = x.shape[ax:stop]
    if not all(isinstance(d, int) for d in span):
        raise ShapeError(f"ilayernorm: the normalized dims of {x} must be static")
    if a.int("eps") < 0:
        raise ShapeError(f"ilayernorm: eps must be >= 0, got {a['eps']}")
    for t in ts[1:]:
        if t.dtype != "i32" or t.rank > len(span) or broadcast_shapes(span, t.shape) != span:
            raise ShapeError(f"ilayernorm: gamma/beta {t} must be i32 broadcasting to the "
                             f"normalized dims [{','.join(map(str, span))}] of {x}")
    return (x.with_dtype("i32"),)


def _ilayernorm_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x = xs[0].astype(np.int64) - a.int("x_zp")
    ax, stop = layer_span(x, a)
    axes = tuple(range(ax, stop))
    tail = (1,) * (x.ndim - stop)
    c = math.prod(x.shape[ax:stop])
    f = a.int("frac_bits")
    d = c * x - x.sum(axis=axes, keepdims=True)
    r = np.maximum(isqrt((d * d).sum(axis=axes, keepdims=True) // c + a.int("eps")), 1)
    y = ((d << f) // r) * xs[1].astype(np.int64).reshape(xs[1].shape + tail)
    if len(xs) == 3:
        y = y + xs[2].astype(np.int64).reshape(xs[2].shape + tail)
    return (np.clip(y, -2 ** 31, 2 ** 31 - 1).astype(np.int32),)


register_op("ilayernorm", (2, 3), _ilayernorm_infer, _ilayernorm_eval, kind="reduce",
            flops=flops.per_out(7),
            attrs={"axis": ("int", -1), "naxes": ("int", 0), "x_zp": ("int", 0), "eps": ("int", 0),
                   "frac_bits": ("int", 12)},
            doc="integer LayerNorm: integer mean and variance, isqrt, (x - mean)/std in Q(frac_bits) "
                "times gamma plus beta, i32")

INTEGER_OPS = frozenset({"qconv2d", "qlinear", "qmatmul", "requantize", "qadd", "qmul",
                         "shiftmax", "igelu", "ilayernorm"})
