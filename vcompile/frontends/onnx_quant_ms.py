"""onnxruntime's com.microsoft QOperator ops => the integer-only IR ops.

    QLinearAdd / QLinearMul          => qadd / qmul (dyadic multipliers, one common shift)
    QLinearGlobalAveragePool         => requantize(qconv2d(x, ones [C,1,H,W]) {groups=C, x_zp},
                                                   dyadic(sx / (sy*H*W)))
    QLinearAveragePool               => the same with the pooling window (count_include_pad
                                        or no padding: one divisor for every position)
    QLinearSoftmax                   => requantize(shiftmax(x) {i16 at 2^-15}, dyadic(2^-15/sy))
    QLinearSigmoid / QLinearLeakyRelu => gather(table, cast(x, i32)): a 256-entry table of
                                        quantize(f(dequantize(v))) computed at import
    QLinearConcat                    => concat(qadd(x_i, 0) rescaled to y's scale and zp)

A depthwise all-ones qconv2d is the exact i32 window sum of x - x_zp (padding holds x_zp,
so it adds nothing); it keeps pooling on the int8 contraction kernels. Table lookups index
i8 values by their i32 value: gather wraps negative indices, so table[v mod 256] = f(v).
Scales and zero points must be constants, activation zero points per tensor (see
`onnx_quant`).
"""
from __future__ import annotations

import math

import numpy as np

from vcompile.frontends.onnx_ctx import Ctx, V
from vcompile.frontends.onnx_nn import window_attrs
from vcompile.frontends.onnx_ops import Node, converter
from vcompile.frontends.onnx_quant import MS, emit_requantize, output_dtype, tensor_scale, zero_point
from vcompile.ir.ops.integer import dyadic

_LOG2E = 1.4426950408889634
_SOFTMAX_BITS = 15  # shiftmax emits i16 probabilities at 2^-15; one requantize to y's scale
_RANGES = {"u8": (0, 255), "i8": (-128, 127)}


def _common_shift(*reals: float) -> tuple[list[int], int]:
    """Multipliers with one shift; the largest real gets a 30-bit multiplier."""
    shift = max(0, min(62, 30 - math.frexp(max(reals))[1]))
    return [round(r * 2 ** shift) for r in reals], shift


# ---- elementwise -----------------------------------------------------------------------

def _binary_params(ctx: Ctx, n: Node) -> tuple[float, float, float, dict[str, int | str]]:
    sa, sb, sy = (tensor_scale(ctx, n, i, w) for i, w in ((1, "the A scale"), (4, "the B scale"),
                                                         (6, "the output scale")))
    zps = {"a_zp": zero_point(ctx, n, 2, "the A zero point"),
           "b_zp": zero_point(ctx, n, 5, "the B zero point"),
           "zero_point": zero_point(ctx, n, 7, "the output zero point"),
           "out_dtype": output_dtype(ctx, n, 7, ctx.dtype(n.inputs[0]))}  # type: ignore[arg-type]
    return sa, sb, sy, zps


@converter(MS + "QLinearAdd")
def _qlinear_add(ctx: Ctx, n: Node) -> list[V]:
    sa, sb, sy, zps = _binary_params(ctx, n)
    (ma, mb), shift = _common_shift(sa / sy, sb / sy)
    return [ctx.emit("qadd", n.inputs[0], n.inputs[3], a_mult=ma, b_mult=mb, shift=shift, **zps)]  # type: ignore[arg-type]


@converter(MS + "QLinearMul")
def _qlinear_mul(ctx: Ctx, n: Node) -> list[V]:
    sa, sb, sy, zps = _binary_params(ctx, n)
    m, s = dyadic(sa * sb / sy)
    return [ctx.emit("qmul", n.inputs[0], n.inputs[3], mult=int(m[0]), shift=int(s[0]), **zps)]  # type: ignore[arg-type]


def _rescale(ctx: Ctx, x: V, real: float, x_zp: int, y_zp: int, out_dtype: str) -> V:
    """x at scale s and zero point x_zp re-expressed at scale s/real, zero point y_zp."""
    if real == 1.0 and x_zp == y_zp and ctx.dtype(x) == out_dtype:
        return x
    (m,), shift = _common_shift(real)
    zero = ctx.const(0, ctx.dtype(x))
    return ctx.emit("qadd", x, zero, a_mult=m, b_mult=0, shift=shift, a_zp=x_zp,
                    zero_point=y_zp, out_dtype=out_dtype)


@converter(MS + "QLinearConcat")
def _qlinear_concat(ctx: Ctx, n: Node) -> list[V]:
    sy, y_zp = tensor_scale(ctx, n, 0, "the output scale"), zero_point(ctx, n, 1, "the output zero point")
    dt = output_dtype(ctx, n, 1, ctx.dtype(n.inputs[2]))  # type: ignore[arg-type]
    parts = []
    for i in range(2, len(n.inputs), 3):
        x = n.inputs[i]
        assert x is not None
        sx = tensor_scale(ctx, n, i + 1, f"the scale of input {i}")
        parts.append(_rescale(ctx, x, sx / sy, zero_point(ctx, n, i + 2, f"the zero point of input {i}"),
                              y_zp, dt))
    return [ctx.emit("concat", *parts, axis=int(n.attrs["axis"]))]


# ---- lookup tables ---------------------------------------------------------------------

def _sigmoid(v: np.ndarray, attrs: dict) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _leaky_relu(v: np.ndarray, attrs: dict) -> np.ndarray:
    return np.where(v >= 0, v, v * np.float32(attrs.get("alpha", 0.01)))


_TABLES = {"QLinearSigmoid": _sigmoid, "QLinearLeakyRelu": _leaky_relu}


@converter(*(MS + op for op in _TABLES))
def _lookup(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    dt = ctx.dtype(x)
    if dt not in _RANGES:
        raise ctx.error(f"needs an i8 or u8 input, got {dt}")
    sx, sy = tensor_scale(ctx, n, 1, "the input scale"), tensor_scale(ctx, n, 3, "the output scale")
    x_zp, y_zp = zero_point(ctx, n, 2, "the input zero point"), zero_point(ctx, n, 4, "the output zero point")
    out = output_dtype(ctx, n, 4, dt)
    v = np.arange(256)
    if dt == "i8":
        v = np.where(v < 128, v, v - 256)  # table[v mod 256] = f(v): gather wraps negatives
    real = ((v - x_zp) * np.float32(sx)).astype(np.float32)
    f = _TABLES[n.proto.op_type](real, n.attrs).astype(np.float32)
    lo, hi = _RANGES[out]
    table = ctx.const(np.clip(np.rint(f / np.float32(sy)) + y_zp, lo, hi), out)
    return [ctx.emit("gather", table, ctx.emit("cast", x, to="i32"), axis=0)]


# ---- pooling and softmax ---------------------------------------------------------------

def _window_sum(ctx: Ctx, n: Node, x: V, kernel: list[int], x_zp: int) -> V:
    c = ctx.shape(x)[1]
    if not isinstance(c, int):
        raise ctx.error(f"needs a static channel count, got {ctx.shape(x)}")
    ones = np.ones((c, 1, *kernel), np.int8)
    return ctx.emit("qconv2d", x, ones, groups=c, x_zp=x_zp, **window_attrs(ctx, n, x, kernel))


def _pool_params(ctx: Ctx, n: Node) -> tuple[V, float, int, int, str]:
    x = n.inputs[0]
    assert x is not None
    if n.attrs.get("channels_last", 0):
        raise ctx.error("channels_last=1 is not supported; export the model in NCHW")
    if len(ctx.shape(x)) != 4:
        raise ctx.error(f"only 2-D pooling (NCHW) is supported, got {ctx.shape(x)}")
    real = tensor_scale(ctx, n, 1, "the input scale") / tensor_scale(ctx, n, 3, "the output scale")
    return (x, real, zero_point(ctx, n, 2, "the input zero point"),
            zero_point(ctx, n, 4, "the output zero point"), output_dtype(ctx, n, 4, ctx.dtype(x)))


@converter(MS + "QLinearGlobalAveragePool")
def _qlinear_gap(ctx: Ctx, n: Node) -> list[V]:
    x, real, x_zp, y_zp, dt = _pool_params(ctx, n)
    hw = list(ctx.shape(x)[2:])
    if not all(isinstance(d, int) for d in hw):
        raise ctx.error(f"needs static spatial dims, got {ctx.shape(x)}")
    acc = _window_sum(ctx, n, x, hw, x_zp)
    return [emit_requantize(ctx, acc, np.array([real / math.prod(hw)]), y_zp, dt, 1)]


@converter(MS + "QLinearAveragePool")
def _qlinear_avg_pool(ctx: Ctx, n: Node) -> list[V]:
    x, real, x_zp, y_zp, dt = _pool_params(ctx, n)
    kernel = [int(k) for k in n.attrs["kernel_shape"]]
    if n.attrs.get("ceil_mode", 0):
        raise ctx.error("ceil_mode=1 is not supported (the last window would be partial)")
    win = window_attrs(ctx, n, x, kernel)
    if any(win["pads"]) and not n.attrs.get("count_include_pad", 0):
        raise ctx.error("padding without count_include_pad=1 divides border windows by fewer "
                        "elements, which one integer multiplier cannot express")
    acc = _window_sum(ctx, n, x, kernel, x_zp)
    return [emit_requantize(ctx, acc, np.array([real / math.prod(kernel)]), y_zp, dt, 1)]


@converter(MS + "QLinearSoftmax")
def _qlinear_softmax(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    rank, axis = len(ctx.shape(x)), int(n.attrs.get("axis", -1))
    if int(n.attrs.get("opset", 13)) < 13 and axis % rank != rank - 1:
        raise ctx.error("opset < 13 softmax over several axes is not supported")
    sx, sy = tensor_scale(ctx, n, 1, "the input scale"), tensor_scale(ctx, n, 3, "the output scale")
    f = 14
    m, s = dyadic(sx * _LOG2E * 2 ** f)
    p = ctx.emit("shiftmax", x, axis=axis, mult=int(m[0]), shift=int(s[0]), frac_bits=f,
                 out_bits=_SOFTMAX_BITS, out_dtype="i16")
    return [emit_requantize(ctx, p, np.array([2.0 ** -_SOFTMAX_BITS / sy]),
                            zero_point(ctx, n, 4, "the output zero point"),
                            output_dtype(ctx, n, 4, ctx.dtype(x)), -1)]
