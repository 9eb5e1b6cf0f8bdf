"""Quantized ONNX: Q/DQ pairs => quantize_linear/dequantize_linear, and the integer ops of
the QOperator format => the integer-only IR ops of `ir/ops/integer.py`.

    QuantizeLinear / DequantizeLinear    => quantize_linear / dequantize_linear {axis}
      (a missing zero point becomes zeros of the right dtype, u8 by default; a constant u8/i8
       weight with zero points becomes the exact i8 `w - zp` with zero zero points when it
       fits, and its dequantize_linear is kept, not folded: the QDQ form `lower-integer` reads)
    ConvInteger(x, w, xz, wz)            => qconv2d(x, w - wz) {x_zp}                     : i32
    MatMulInteger(a, B const 2-D)        => qlinear(a, B - bz) {x_zp}                    : i32
    MatMulInteger(a, b)                  => qmatmul(a, b) {a_zp, b_zp}                   : i32
    QLinearConv(x, sx, xz, w, sw, wz, sy, yz, b)
                                         => requantize(qconv2d(x, w - wz, b), dyadic(sx*sw/sy)) {yz}
    QLinearMatMul / com.microsoft.QGemm  => requantize(qlinear|qmatmul(...), dyadic(sa*sb/sy)) {yz}
      (QGemm without y_scale: dequantize_linear(acc, sa*sb, 0), a float output)
    com.microsoft.QLinearAdd, QLinearMul, QLinearSoftmax, pooling, tables: see onnx_quant_ms

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
from vcompile.frontends.onnx_nn import window_attrs
from vcompile.frontends.onnx_ops import Node, converter, onnx_dtype, zeros
from vcompile.ir.ops.integer import dyadic

MS = "com.microsoft."


def _const(ctx: Ctx, n: Node, i: int, what: str) -> np.ndarray:
    v = n.input(i)
    arr = ctx.known(v)
    if v is None or arr is None:
        raise ctx.error(f"{what} (input {i}) must be a constant (an initializer) so that it "
                        "folds into integer multipliers; make it an initializer")
    return np.asarray(arr)


def zero_point(ctx: Ctx, n: Node, i: int, what: str) -> int:
    """A per-tensor zero point as an int (0 when the optional input is omitted)."""
    if n.input(i) is None:
        return 0
    z = _const(ctx, n, i, what)
    if z.size != 1:
        raise ctx.error(f"{what} must be one value per tensor, got shape {list(z.shape)}; "
                        "only weights may be quantized per channel")
    return int(z.reshape(-1)[0])


def output_dtype(ctx: Ctx, n: Node, zp_index: int, default: str) -> str:
    z = n.input(zp_index)
    return ctx.dtype(z) if z is not None else default


def _weight_i8(ctx: Ctx, w: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    """w - zp as int8 (zp per tensor or per slice along `axis`), or an error if inexact."""
    d = w.astype(np.int64) - _broadcast_zp(zp, w.ndim, axis)
    if d.min(initial=0) < -128 or d.max(initial=0) > 127:
        zps = sorted(set(zp.reshape(-1).tolist()))[:4]
        raise ctx.error(f"{ctx.dtype(w)} weight minus its zero point(s) {zps} spans "
                        f"{d.min()}..{d.max()}, which does not fit int8; quantize the weights "
                        "symmetrically (quantize_static extra_options WeightSymmetric=True)")
    return d.astype(np.int8)


def emit_requantize(ctx: Ctx, acc: V, real: np.ndarray, zp: int, out_dtype: str, axis: int) -> V:
    real = np.asarray(real, np.float64).reshape(-1)
    mult, shift = dyadic(real if real.size > 1 else real[0])
    if real.size == 1:
        mult, shift = mult.reshape(()), shift.reshape(())
    return ctx.emit("requantize", acc, mult, shift, axis=axis, zero_point=zp, out_dtype=out_dtype)


def tensor_scale(ctx: Ctx, n: Node, i: int, what: str) -> float:
    """A per-tensor (activation) scale."""
    s = _const(ctx, n, i, what)
    if s.size != 1:
        raise ctx.error(f"{what} must be one value per tensor, got shape {list(s.shape)}")
    return float(s.reshape(-1)[0])


def _weight_scale(ctx: Ctx, n: Node, i: int) -> np.ndarray:
    return _const(ctx, n, i, "the weight scale").astype(np.float64).reshape(-1)


# ---- quantization ---------------------------------------------------------------------------

_QDTYPES = frozenset({"i8", "u8", "i16", "u16", "i32"})


def _blocked(ctx: Ctx, v: V, x: V, axis: int, block: int) -> V:
    """Repeat each block's scale/zero point `block` times along `axis` (cropped to x)."""
    shape, vshape = ctx.shape(x), ctx.shape(v)
    r = len(shape)
    ax = axis % r
    up = ctx.emit("unsqueeze", v, axes=(ax + 1,))
    full = list(vshape[:ax + 1]) + [block] + list(vshape[ax + 1:])
    rep = ctx.emit("expand", up, shape=tuple(full))
    merged = list(vshape[:ax]) + [int(vshape[ax]) * block] + list(vshape[ax + 1:])
    rep = ctx.emit("reshape", rep, shape=tuple(merged))
    if merged[ax] != shape[ax]:
        rep = ctx.emit("slice", rep, starts=(0,), ends=(int(shape[ax]),), axes=(ax,), steps=(1,))
    return rep


def _qparams(ctx: Ctx, n: Node, zp_dtype: str) -> tuple[V, V, V, int]:
    x, scale, zp = n.inputs[0], n.inputs[1], n.input(2)
    assert x is not None and scale is not None
    if zp is None:
        zp = zeros(zp_dtype, tuple(int(d) for d in ctx.shape(scale)))
    axis = int(n.attrs.get("axis", 1))
    block = int(n.attrs.get("block_size", 0))
    if block:
        scale, zp = _blocked(ctx, scale, x, axis, block), _blocked(ctx, zp, x, axis, block)
    elif ctx.shape(scale) != ctx.shape(zp) and math.prod(ctx.shape(scale)) == 1:
        zp = ctx.emit("reshape", zp, shape=tuple(int(d) for d in ctx.shape(scale)))  # f32[1], i32[]
    return x, scale, zp, axis


@converter("QuantizeLinear")
def _quantize(ctx: Ctx, n: Node) -> list[V]:
    zp = n.input(2)
    if zp is not None:
        dt = ctx.dtype(zp)
    elif "output_dtype" in n.attrs and int(n.attrs["output_dtype"]):
        dt = onnx_dtype(int(n.attrs["output_dtype"]))
    else:
        dt = "u8"
    x, scale, zpv, axis = _qparams(ctx, n, dt)
    return [ctx.emit("quantize_linear", x, scale, zpv, axis=axis,
                     saturate=bool(n.attrs.get("saturate", 1)))]


@converter("DequantizeLinear")
def _dequantize(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    x, scale, zpv, axis = _qparams(ctx, n, ctx.dtype(x))
    w = ctx.known(x)
    if w is not None and ctx.dtype(x) in ("i8", "u8") and ctx.known(zpv) is not None:
        x, zpv = _symmetric(w, np.asarray(ctx.known(zpv)), axis)
    # NOTE: not folded: a dequantized constant weight stays dequantize_linear(const int8),
    # the QDQ form that `lower-integer` turns into integer ops.
    y = ctx.emit("dequantize_linear", x, scale, zpv, axis=axis, fold=ctx.dtype(x) not in _QDTYPES)
    if "output_dtype" in n.attrs and int(n.attrs["output_dtype"]):
        y = ctx.cast(y, onnx_dtype(int(n.attrs["output_dtype"])))
    return [y]


def _symmetric(w: np.ndarray, zp: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """A constant weight (u8 or i8) with zero points as i8 `w - zp` with zero zero points when
    that is exact (u8 with zero point 128: symmetric); else unchanged."""
    d = w.astype(np.int64) - _broadcast_zp(zp, w.ndim, axis)
    if (w.dtype == np.int8 and not zp.any()) or d.min(initial=0) < -128 or d.max(initial=0) > 127:
        return w, zp
    return d.astype(np.int8), np.zeros(zp.shape, np.int8)


def _broadcast_zp(zp: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    z = zp.astype(np.int64)
    if z.ndim == 1 and z.size > 1:
        shape = [1] * ndim
        shape[axis % ndim] = z.size
        return z.reshape(shape)
    return z if z.ndim == ndim else z.reshape(-1)[0]


# ---- convolution -----------------------------------------------------------------------

def _qconv(ctx: Ctx, n: Node, x: V, w: np.ndarray, b: V | None, x_zp: int) -> V:
    if w.ndim != 4:
        raise ctx.error(f"only 2-D integer convolutions are supported, got a weight of rank {w.ndim}")
    win = window_attrs(ctx, n, x, [int(k) for k in n.attrs.get("kernel_shape", w.shape[2:])])
    args = [x, w] if b is None else [x, w, b]
    return ctx.emit("qconv2d", *args, groups=int(n.attrs.get("group", 1)), x_zp=x_zp, **win)


def _weight(ctx: Ctx, n: Node, i: int, zp_i: int, axis: int) -> np.ndarray:
    w = _const(ctx, n, i, "the weight")
    zp = _const(ctx, n, zp_i, "the weight zero point") if n.input(zp_i) is not None else np.zeros(1)
    return _weight_i8(ctx, w, zp, axis)


def _fits_int8(ctx: Ctx, n: Node, xzp_i: int, w_i: int, wzp_i: int, axis: int) -> bool:
    """Whether the integer kernels take this node: a constant input zero point, and a
    constant weight whose difference from its zero point fits int8."""
    if n.input(xzp_i) is not None and ctx.known(n.input(xzp_i)) is None:
        return False  # dynamic quantization: the zero point is computed at run time
    w = ctx.known(n.input(w_i))
    zp = ctx.known(n.input(wzp_i)) if n.input(wzp_i) is not None else np.zeros(1, np.int64)
    if w is None or zp is None:
        return w is None  # a run-time weight: qmatmul takes it (its zero point is checked there)
    d = np.asarray(w).astype(np.int64) - _broadcast_zp(np.asarray(zp), np.ndim(w), axis)
    return d.size == 0 or (int(d.min()) >= -128 and int(d.max()) <= 127)


def _minus_zp_f32(ctx: Ctx, v: V, zp: V | None) -> V:
    f = ctx.cast(v, "f32")
    return f if zp is None else ctx.emit("sub", f, ctx.cast(zp, "f32"))


def _to_i32(ctx: Ctx, y: V) -> V:
    return ctx.cast(ctx.emit("round", y), "i32")


@converter("ConvInteger")
def _conv_integer(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    if _fits_int8(ctx, n, 2, 1, 3, 0):
        return [_qconv(ctx, n, x, _weight(ctx, n, 1, 3, 0), None,
                       zero_point(ctx, n, 2, "the input zero point"))]
    # A zero point computed at run time (dynamic quantization) or asymmetric 8-bit weights
    # that do not fit int8 after their zero point: the same integer sum, in float32. It is
    # exact while every partial sum stays under 2^24 in magnitude (a 3x3x64 window of u8
    # values would need inputs and weights near 255 everywhere to leave it).
    w = n.inputs[1]
    assert w is not None
    wf = _minus_zp_f32(ctx, w, None if n.input(3) is None else _per_channel(ctx, n.input(3), w))
    kernel = [int(k) for k in n.attrs.get("kernel_shape", ctx.shape(w)[2:])]
    y = ctx.emit(f"conv{len(kernel)}d", _minus_zp_f32(ctx, x, n.input(2)), wf,
                 zeros("f32", (int(ctx.shape(w)[0]),)), groups=int(n.attrs.get("group", 1)),
                 **window_attrs(ctx, n, x, kernel))
    return [_to_i32(ctx, y)]


def _per_channel(ctx: Ctx, zp: V, w: V) -> V:
    """A weight zero point shaped to broadcast against the weight (per output channel)."""
    if int(np.prod(ctx.shape(zp))) <= 1:
        return zp
    return ctx.emit("reshape", zp, shape=(-1,) + (1,) * (len(ctx.shape(w)) - 1))


@converter("QLinearConv")
def _qlinear_conv(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    sx, sy = tensor_scale(ctx, n, 1, "the input scale"), tensor_scale(ctx, n, 6, "the output scale")
    sw = _weight_scale(ctx, n, 4)
    x_zp = zero_point(ctx, n, 2, "the input zero point")
    acc = _qconv(ctx, n, x, _weight(ctx, n, 3, 5, 0), n.input(8), x_zp)
    return [emit_requantize(ctx, acc, sx * sw / sy, zero_point(ctx, n, 7, "the output zero point"),
                            output_dtype(ctx, n, 7, ctx.dtype(x)), 1)]


# ---- matrix products -------------------------------------------------------------------

def _contract(ctx: Ctx, n: Node, a: V, a_zp: int, bi: int, bzi: int) -> V:
    """(a - a_zp) @ (b - b_zp) in i32: qlinear for a constant 2-D b, else qmatmul."""
    b = ctx.known(n.input(bi))
    if b is not None and np.asarray(b).ndim == 2:
        return ctx.emit("qlinear", a, _weight(ctx, n, bi, bzi, 1), x_zp=a_zp)
    return ctx.emit("qmatmul", a, n.input(bi), a_zp=a_zp,  # type: ignore[arg-type]
                    b_zp=zero_point(ctx, n, bzi, "the zero point of a run-time B"))


@converter("MatMulInteger")
def _matmul_integer(ctx: Ctx, n: Node) -> list[V]:
    a = n.inputs[0]
    assert a is not None
    if _fits_int8(ctx, n, 2, 1, 3, 1):
        return [_contract(ctx, n, a, zero_point(ctx, n, 2, "the A zero point"), 1, 3)]
    b = n.inputs[1]  # as in ConvInteger: in float32, exact while partial sums stay under 2^24
    assert b is not None
    bzp = n.input(3)
    if bzp is not None and int(np.prod(ctx.shape(bzp))) > 1:  # per column of B
        bzp = ctx.emit("reshape", bzp, shape=(1, -1))
    return [_to_i32(ctx, ctx.emit("matmul", _minus_zp_f32(ctx, a, n.input(2)),
                                  _minus_zp_f32(ctx, b, bzp)))]


@converter("QLinearMatMul")
def _qlinear_matmul(ctx: Ctx, n: Node) -> list[V]:
    a = n.inputs[0]
    assert a is not None
    sa, sy = tensor_scale(ctx, n, 1, "the A scale"), tensor_scale(ctx, n, 6, "the output scale")
    sb = _weight_scale(ctx, n, 4)
    acc = _contract(ctx, n, a, zero_point(ctx, n, 2, "the A zero point"), 3, 5)
    return [emit_requantize(ctx, acc, sa * sb / sy, zero_point(ctx, n, 7, "the output zero point"),
                            output_dtype(ctx, n, 7, ctx.dtype(a)), -1)]


@converter(MS + "QGemm")
def _qgemm(ctx: Ctx, n: Node) -> list[V]:
    a = n.inputs[0]
    assert a is not None
    if n.attrs.get("transA", 0) or float(n.attrs.get("alpha", 1.0)) != 1.0:
        raise ctx.error("only transA=0 and alpha=1 are supported")
    sa, sb = tensor_scale(ctx, n, 1, "the A scale"), _weight_scale(ctx, n, 4)
    b = _weight(ctx, n, 3, 5, 0 if n.attrs.get("transB", 0) else 1)
    w = np.ascontiguousarray(b.T) if n.attrs.get("transB", 0) else b
    c = n.input(6)
    args = [a, w] if c is None else [a, w, c]
    acc = ctx.emit("qlinear", *args, x_zp=zero_point(ctx, n, 2, "the A zero point"))
    if n.input(7) is None:  # no y_scale: a float output, the integer region's exit
        scale = (sa * sb).astype(np.float32)
        return [ctx.emit("dequantize_linear", acc, scale, np.zeros(scale.shape, np.int32), axis=-1)]
    sy = tensor_scale(ctx, n, 7, "the output scale")
    return [emit_requantize(ctx, acc, sa * sb / sy, zero_point(ctx, n, 8, "the output zero point"),
                            output_dtype(ctx, n, 8, ctx.dtype(a)), -1)]
