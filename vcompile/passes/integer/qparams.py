"""What `lower-integer` reads off the QDQ form: the quantization parameters of a
dequantize_linear input and of a quantize_linear output, the dyadic rescale between two
scales. (The integer region itself is `vcompile.ir.dtypes.integer_region`.)

    dq = dequantized(m, v)   # QParams(q, scale, zp, axis) when v = dequantize_linear(q, s, zp)
    y = rescale(bb, acc, acc_zp, acc_scale, out)   # requantize (or qadd) into out's params
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcompile.ir.graph import Node, Value
from vcompile.ir.ops import OPS
from vcompile.ir.ops.integer import dyadic
from vcompile.ir.ops.ranges import int_range
from vcompile.passes.infra.pattern import Match, RewriteBuilder

OUT_DTYPES = {"i8": np.int8, "u8": np.uint8, "i16": np.int16}


@dataclass(frozen=True)
class QParams:
    """An integer value `q` standing for (q - zp) * scale (scale along `axis` if a vector)."""
    q: Value
    scale: np.ndarray  # f64, 0-d or [C]
    zp: np.ndarray  # i64, the scale's shape
    axis: int

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1

    @property
    def s(self) -> float:
        return float(self.scale.reshape(-1)[0])

    @property
    def z(self) -> int:
        return int(self.zp.reshape(-1)[0])


@dataclass(frozen=True)
class QOut:
    """The quantize_linear a lowering must produce: scale, zero point, dtype and a clip
    (lo, hi) in that dtype for a fused relu/clip (empty: the dtype's range)."""
    s: float
    z: int
    dtype: str
    clip: tuple[int, ...] = ()

    def qrange(self) -> tuple[int, int]:
        return int_range(self.dtype)


def _params(m: Match, n: Node) -> tuple[np.ndarray, np.ndarray] | None:
    scale, zp = m.const_of(n.inputs[1]), m.const_of(n.inputs[2])
    if scale is None or zp is None or scale.ndim > 1 or not np.isfinite(scale).all():
        return None
    return scale.astype(np.float64).reshape(scale.shape), zp.astype(np.int64)


def dequantized(m: Match, v: Value, *, weight: bool = False) -> QParams | None:
    """v's QParams if v = dequantize_linear(q, const scale, const zp), else None.
    Activations need positive scales; weights (`weight=True`) may have zero ones."""
    n = m.ed.producer.get(v)
    if n is None or n.op != "dequantize_linear":
        return None
    got = _params(m, n)
    if got is None:
        return None
    scale, zp = got
    if (scale < 0).any() or (not weight and (scale == 0).any()):
        return None
    axis = n.attrs.int("axis") % max(n.inputs[0].type.rank, 1)
    return QParams(n.inputs[0], scale, zp, axis)


def const_value(m: Match, v: Value, depth: int = 4) -> np.ndarray | None:
    """v's array if v is a constant or computed from constants only by a few ops (ONNX QDQ
    models quantize LayerNorm's gamma and beta too: dequantize(quantize(const)))."""
    arr = m.const_of(v)
    n = m.ed.producer.get(v)
    if arr is not None or n is None or depth == 0 or len(n.outputs) != 1:
        return arr
    ins = [const_value(m, x, depth - 1) for x in n.inputs]
    if any(a is None for a in ins):
        return None
    return OPS[n.op].eval(ins, n.attrs)[0]  # type: ignore[arg-type]


def quantized_out(m: Match, n: Node) -> QOut | None:
    """The per-tensor output parameters of quantize_linear node `n` (i8, u8 or i16)."""
    got = _params(m, n)
    dt = n.outputs[0].dtype
    if got is None or dt not in OUT_DTYPES or got[0].size != 1 or float(got[0].reshape(-1)[0]) <= 0:
        return None
    return QOut(float(got[0].reshape(-1)[0]), int(got[1].reshape(-1)[0]), dt)


def i32_const(bb: RewriteBuilder, v: np.ndarray | int, hint: str) -> Value:
    return bb.const(np.asarray(v, np.int32), hint=hint)


def _axis_shift(reals: np.ndarray) -> tuple[int, list[int]]:
    """One shift for several reals (signed), each multiplier below 2^31 in magnitude."""
    top = float(np.abs(reals).max())
    shift = 62 if top == 0 else int(np.clip(31 - np.frexp(top)[1], 0, 62))
    mults = np.rint(reals * 2.0 ** shift)
    while shift > 0 and np.abs(mults).max() >= 2 ** 31:
        shift -= 1
        mults = np.rint(reals * 2.0 ** shift)
    if np.abs(mults).max() >= 2 ** 31:
        raise ValueError(f"rescale by {top} does not fit a 31-bit multiplier")
    return shift, [int(x) for x in mults]


def affine(bb: RewriteBuilder, a: Value, a_zp: int, ra: float, b: Value, b_zp: int, rb: float,
           out: QOut) -> Value:
    """qadd: rshift_round((a - a_zp)*ma + (b - b_zp)*mb, shift) + out.z, ma/2^shift ~ ra."""
    shift, (ma, mb) = _axis_shift(np.array([ra, rb]))
    return bb.emit("qadd", a, b, a_mult=ma, b_mult=mb, shift=shift, a_zp=a_zp, b_zp=b_zp,
                   zero_point=out.z, out_dtype=out.dtype, clip=out.clip)


def rescale(bb: RewriteBuilder, acc: Value, acc_zp: int, acc_scale: np.ndarray | float,
            out: QOut, axis: int = 1) -> Value:
    """acc, standing for (acc - acc_zp) * acc_scale, requantized to `out` (ValueError when a
    multiplier does not fit). A nonzero acc_zp needs a narrow acc: qadd with b_mult = 0
    subtracts it (requantize has no input zero point)."""
    real = np.asarray(acc_scale, np.float64) / out.s
    if acc_zp != 0:
        return affine(bb, acc, acc_zp, float(real.reshape(-1)[0]), acc, acc_zp, 0.0, out)
    mult, shift = dyadic(real)
    if real.size == 1:
        mult, shift = mult.reshape(()), shift.reshape(())
    return bb.emit("requantize", acc, i32_const(bb, mult, "mult"), i32_const(bb, shift, "shift"),
                   axis=axis, zero_point=out.z, out_dtype=out.dtype, clip=out.clip)
