"""ONNX integer ops (QOperator format) => the integer-only IR ops of `ir/ops/integer.py`.

    ConvInteger(x, w, xz, wz)            => qconv2d(x, w - wz) {x_zp}                     : i32
    MatMulInteger(a, B const 2-D)        => qlinear(a, B - bz) {x_zp}                    : i32
    MatMulInteger(a, b)                  => qmatmul(a, b) {a_zp, b_zp}                   : i32
    QLinearConv(x, sx, xz, w, sw, wz, sy, yz, b)
                                         => requantize(qconv2d(x, w - wz, b), dyadic(sx*sw/sy)) {yz}
    QLinearMatMul / com.microsoft.QGemm  => requantize(qlinear|qmatmul(...), dyadic(sa*sb/sy)) {yz}
      (QGemm without y_scale: dequantize_linear(acc, sa*sb, 0), a float output)
    com.microsoft.QLinearAdd / QLinearMul => qadd / qmul with dyadic multipliers
    com.microsoft.QLinearGlobalAveragePool => requantize(qconv2d(x, ones [C,1,H,W]) {groups=C},
                                              dyadic(sx / (sy*H*W)))   (an exact integer sum)
    com.microsoft.QLinearSoftmax         => requantize(shiftmax(x) {i16, 2^-15}, dyadic(2^-15/sy))
    com.microsoft.QLinearSigmoid / QLinearLeakyRelu
                                         => gather(table[256], x as index): a lookup table
                                            computed at import, integer-only at run time

Preconditions (each a one-line `ConversionError`): scales and zero points are constants
(initializers), activation zero points are per tensor, weights are constants whose zero
point can be folded exactly into int8 (u8 weights with zero point 128 become i8; any
weight w - zp that fits int8 does), only 2-D convolutions. Rounding: `requantize` rounds
half up while onnxruntime rounds half to even in float, so a tie may differ by one step.
"""
from __future__ import annotations

import math

import numpy as np

from vcompile.frontends.onnx_ctx import Ctx, V
from vcompile.frontends.onnx_nn import _window
from vcompile.frontends.onnx_ops import Node, converter
from vcompile.ir.ops.integer import dyadic

MS = "com.microsoft."
_LOG2E = 1.4426950408889634
_SOFTMAX_BITS = 15  # shiftmax emits i16 probabilities at 2^-15; one requantize to y's scale


def _const(ctx: Ctx, n: Node, i: int, what: str) -> np.ndarray:
    v = n.input(i)
    arr = ctx.known(v)
    if v is None or arr is None:
        raise ctx.error(f"{what} (input {i}) must be a constant (an initializer) so that it "
                        "folds into integer multipliers; make it an initializer")
    return np.asarray(arr)


def _zp(ctx: Ctx, n: Node, i: int, what: str, x: V | None = None) -> int:
    """A per-tensor zero point as an int (0 when the optional input is omitted)."""
    if n.input(i) is None:
        return 0
    z = _const(ctx, n, i, what)
    if z.size != 1:
        raise ctx.error(f"{what} must be one value per tensor, got shape {list(z.shape)}; "
                        "only weights may be quantized per channel")
    return int(z.reshape(-1)[0])


def _out_dtype(ctx: Ctx, n: Node, zp_index: int, default: str) -> str:
    z = n.input(zp_index)
    return ctx.dtype(z) if z is not None else default


def _weight_i8(ctx: Ctx, w: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    """w - zp as int8 (zp per tensor or per slice along `axis`), or an error if inexact."""
    z = zp.astype(np.int64).reshape(-1)
    if z.size > 1:
        shape = [1] * w.ndim
        shape[axis] = z.size
        z = z.reshape(shape)
    d = w.astype(np.int64) - z
    if d.min(initial=0) < -128 or d.max(initial=0) > 127:
        zps = sorted(set(zp.reshape(-1).tolist()))[:4]
        raise ctx.error(f"weight {ctx.dtype(w)} with zero point(s) {zps} does not fit int8 "
                        "once the zero point is subtracted; quantize the "
                        "weights symmetrically (WeightSymmetric=True)")
    return d.astype(np.int8)


def _requantize(ctx: Ctx, acc: V, real: np.ndarray, zp: int, out_dtype: str, axis: int) -> V:
    real = np.asarray(real, np.float64).reshape(-1)
    mult, shift = dyadic(real if real.size > 1 else real[0])
    if real.size == 1:
        mult, shift = mult.reshape(()), shift.reshape(())
    return ctx.emit("requantize", acc, mult, shift, axis=axis, zero_point=zp, out_dtype=out_dtype)


def _scales(ctx: Ctx, n: Node, *idx: int) -> list[np.ndarray]:
    names = {1: "the input scale", 4: "the weight scale", 6: "the output scale"}
    return [_const(ctx, n, i, names.get(i, "a scale")).astype(np.float64).reshape(-1) for i in idx]


# ---- convolution -----------------------------------------------------------------------

def _qconv(ctx: Ctx, n: Node, x: V, w: np.ndarray, b: V | None, x_zp: int) -> V:
    if w.ndim != 4:
        raise ctx.error(f"only 2-D integer convolutions are supported, got a weight of rank {w.ndim}")
    win = _window(ctx, n, x, [int(k) for k in n.attrs.get("kernel_shape", w.shape[2:])])
    args = [x, w] if b is None else [x, w, b]
    return ctx.emit("qconv2d", *args, groups=int(n.attrs.get("group", 1)), x_zp=x_zp, **win)


def _weight(ctx: Ctx, n: Node, i: int, zp_i: int, axis: int) -> np.ndarray:
    w = _const(ctx, n, i, "the weight")
    zp = _const(ctx, n, zp_i, "the weight zero point") if n.input(zp_i) is not None else np.zeros(1)
    return _weight_i8(ctx, w, zp, axis)


@converter("ConvInteger")
def _conv_integer(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    return [_qconv(ctx, n, x, _weight(ctx, n, 1, 3, 0), None, _zp(ctx, n, 2, "the input zero point"))]


@converter("QLinearConv")
def _qlinear_conv(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    sx, sw, sy = _scales(ctx, n, 1, 4, 6)
    acc = _qconv(ctx, n, x, _weight(ctx, n, 3, 5, 0), n.input(8), _zp(ctx, n, 2, "the input zero point"))
    return [_requantize(ctx, acc, sx * sw / sy, _zp(ctx, n, 7, "the output zero point"),
                        _out_dtype(ctx, n, 7, ctx.dtype(x)), 1)]


# ---- matrix products -------------------------------------------------------------------

def _contract(ctx: Ctx, n: Node, a: V, a_zp: int, bi: int, bzi: int) -> V:
    """(a - a_zp) @ (b - b_zp) in i32: qlinear for a constant 2-D b, else qmatmul."""
    b = ctx.known(n.input(bi))
    if b is not None and np.asarray(b).ndim == 2:
        return ctx.emit("qlinear", a, _weight(ctx, n, bi, bzi, 1), x_zp=a_zp)
    return ctx.emit("qmatmul", a, n.input(bi), a_zp=a_zp,  # type: ignore[arg-type]
                    b_zp=_zp(ctx, n, bzi, "the zero point of a run-time B"))


@converter("MatMulInteger")
def _matmul_integer(ctx: Ctx, n: Node) -> list[V]:
    a = n.inputs[0]
    assert a is not None
    return [_contract(ctx, n, a, _zp(ctx, n, 2, "the A zero point"), 1, 3)]


@converter("QLinearMatMul")
def _qlinear_matmul(ctx: Ctx, n: Node) -> list[V]:
    a = n.inputs[0]
    assert a is not None
    sa, sb, sy = (_const(ctx, n, i, w).astype(np.float64).reshape(-1)
                  for i, w in ((1, "the A scale"), (4, "the B scale"), (6, "the output scale")))
    acc = _contract(ctx, n, a, _zp(ctx, n, 2, "the A zero point"), 3, 5)
    return [_requantize(ctx, acc, sa * sb / sy, _zp(ctx, n, 7, "the output zero point"),
                        _out_dtype(ctx, n, 7, ctx.dtype(a)), -1)]


@converter(MS + "QGemm")
def _qgemm(ctx: Ctx, n: Node) -> list[V]:
    a = n.inputs[0]
    assert a is not None
    if n.attrs.get("transA", 0) or float(n.attrs.get("alpha", 1.0)) != 1.0:
        raise ctx.error("only transA=0 and alpha=1 are supported")
    sa, sb = (_const(ctx, n, i, w).astype(np.float64).reshape(-1)
              for i, w in ((1, "the A scale"), (4, "the B scale")))
    b = _weight(ctx, n, 3, 5, 0 if n.attrs.get("transB", 0) else 1)
    w = np.ascontiguousarray(b.T) if n.attrs.get("transB", 0) else b
    c = n.input(6)
    args = [a, w] if c is None else [a, w, c]
    acc = ctx.emit("qlinear", *args, x_zp=_zp(ctx, n, 2, "the A zero point"))
    if n.input(7) is None:  # no y_scale: a float output, the integer region's exit
        scale = (sa * sb).astype(np.float32)
        return [ctx.emit("dequantize_linear", acc, scale, np.zeros(scale.shape, np.int32), axis=-1)]
    (sy,) = _scales(ctx, n, 7)
    return [_requantize(ctx, acc, sa * sb / sy, _zp(ctx, n, 8, "the output zero point"),
                        _out_dtype(ctx, n, 8, ctx.dtype(a)), -1)]


# ---- elementwise, pooling, softmax (com.microsoft) -------------------------------------

def _binary_params(ctx: Ctx, n: Node) -> tuple[float, float, float, dict[str, int | str]]:
    sa, sb, sy = (float(_const(ctx, n, i, w).reshape(-1)[0])
                  for i, w in ((1, "the A scale"), (4, "the B scale"), (6, "the output scale")))
    zps = {"a_zp": _zp(ctx, n, 2, "the A zero point"), "b_zp": _zp(ctx, n, 5, "the B zero point"),
           "zero_point": _zp(ctx, n, 7, "the output zero point"),
           "out_dtype": _out_dtype(ctx, n, 7, ctx.dtype(n.inputs[0]))}  # type: ignore[arg-type]
    return sa, sb, sy, zps


@converter(MS + "QLinearAdd")
def _qlinear_add(ctx: Ctx, n: Node) -> list[V]:
    sa, sb, sy, zps = _binary_params(ctx, n)
    ra, rb = sa / sy, sb / sy
    # one shift for both: the larger ratio gets a 30-bit multiplier
    shift = min(62, 30 - math.frexp(max(ra, rb))[1])
    return [ctx.emit("qadd", n.inputs[0], n.inputs[3], a_mult=round(ra * 2 ** shift),  # type: ignore[arg-type]
                     b_mult=round(rb * 2 ** shift), shift=shift, **zps)]


@converter(MS + "QLinearMul")
def _qlinear_mul(ctx: Ctx, n: Node) -> list[V]:
    sa, sb, sy, zps = _binary_params(ctx, n)
    m, s = dyadic(sa * sb / sy)
    return [ctx.emit("qmul", n.inputs[0], n.inputs[3], mult=int(m[0]), shift=int(s[0]), **zps)]  # type: ignore[arg-type]


@converter(MS + "QLinearGlobalAveragePool")
def _qlinear_gap(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    if n.attrs.get("channels_last", 0):
        raise ctx.error("channels_last=1 is not supported; export the model in NCHW")
    shape = ctx.shape(x)
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
        raise ctx.error(f"needs a static NCHW input, got {shape}")
    c, h, w = shape[1:]
    (sx,), (sy,) = (_const(ctx, n, i, what).astype(np.float64).reshape(-1)
                    for i, what in ((1, "the input scale"), (3, "the output scale")))
    ones = np.ones((c, 1, h, w), np.int8)  # a depthwise all-ones conv: the exact i32 sum
    acc = ctx.emit("qconv2d", x, ones, groups=c, x_zp=_zp(ctx, n, 2, "the input zero point"))
    return [_requantize(ctx, acc, np.array([sx / (sy * h * w)]), _zp(ctx, n, 4, "the output zero point"),
                        _out_dtype(ctx, n, 4, ctx.dtype(x)), 1)]


@converter(MS + "QLinearSoftmax")
def _qlinear_softmax(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    rank, axis = len(ctx.shape(x)), int(n.attrs.get("axis", -1))
    if int(n.attrs.get("opset", 13)) < 13 and axis % rank != rank - 1:
        raise ctx.error("opset < 13 softmax over several axes is not supported")
    (sx,), (sy,) = (_const(ctx, n, i, what).astype(np.float64).reshape(-1)
                    for i, what in ((1, "the input scale"), (3, "the output scale")))
    f = 14
    m, s = dyadic(sx * _LOG2E * 2 ** f)
    p = ctx.emit("shiftmax", x, axis=axis, mult=int(m[0]), shift=int(s[0]), frac_bits=f,
                 out_bits=_SOFTMAX_BITS, out_dtype="i16")
    return [_requantize(ctx, p, np.array([2.0 ** -_SOFTMAX_BITS / sy]),
                        _zp(ctx, n, 4, "the output zero point"), _out_dtype(ctx, n, 4, ctx.dtype(x)), -1)]
