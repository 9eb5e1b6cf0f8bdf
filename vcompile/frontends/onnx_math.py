"""ONNX converters for math ops (issue 20): trig, sign, NaN/Inf tests, bitwise ops, Size,
activations, L-p norms and pools, the Reduce* variants, LRN, Trilu, scans, Hardmax.

    Asin/.../Atanh, Tan, Sign, IsNaN      => the IR op of that name
    IsInf {detect_*}                       => equal(x, +-inf) (or-ed)
    Bitwise{And,Or,Xor,Not}, Xor, BitShift => bitwise_*, shift_left/right
    Size                                   => a known i64 scalar (static shapes)
    BitCast {to}                           => bitcast
    PRelu(x, slope)                        => where(x < 0, x * slope, x)
    Softplus                               => relu(x) + log1p(exp(-|x|)), no overflow
    Celu {alpha}                           => its body's ops, in f32 for f16/bf16 inputs
    ReduceL1/L2/SumSquare/LogSum/LogSumExp => reduce_sum of abs/square/exp (max-shifted)
    LpNormalization {p, axis}              => x / norm (0 where the norm is 0, as ORT)
    LpPool {p}                             => avg_pool of |x|^p (pads count) * k, ^ 1/p
    LRN {size, alpha, beta, bias}          => x / (bias + alpha/size * window sum of x^2)^beta,
                                              the window sum an avg_pool2d over channels
    Trilu(x, k) {upper}                    => where(static band mask, x, 0)
    CumSum/CumProd(x, axis)                => cumsum/cumprod
    Hardmax {axis}                         => hardmax (opset < 13: over the flattened tail)
    AffineGrid(theta, size)                => matmul(const grid of (x, y[, z], 1), theta^T)

Ops ONNX defines by a function body (Elu, Selu, Celu, Mish, Swish, ...) need no
converter here: `onnx_functions` expands them into ops that have one.
"""
from __future__ import annotations

import math

import numpy as np

from vcompile.frontends.onnx_ctx import Ctx, V
from vcompile.frontends.onnx_ops import STATIC_INPUTS, Node, axes_of, converter, onnx_dtype

_REDUCE_VARIANTS = ("ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")
STATIC_INPUTS.update({op: (1,) for op in (*_REDUCE_VARIANTS, "CumSum", "CumProd", "Trilu")})
# function-body ops whose inputs set their output shape (a window's size, a crop's shape)
STATIC_INPUTS.update({"BlackmanWindow": (0,), "HammingWindow": (0,), "HannWindow": (0,),
                      "CenterCropPad": (1,), "AffineGrid": (1,)})

_SAME = {"Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh",
         "Cosh": "cosh", "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh", "Sign": "sign",
         "IsNaN": "isnan", "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or",
         "BitwiseXor": "bitwise_xor", "BitwiseNot": "bitwise_not", "Xor": "bitwise_xor"}


def _x(n: Node, i: int = 0) -> V:
    x = n.input(i)
    if x is None:
        raise ValueError(f"input {i} is missing")
    return x


@converter(*_SAME)
def _same(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit(_SAME[n.proto.op_type], *ctx.flat(n.inputs))]


@converter("IsInf")
def _isinf(ctx: Ctx, n: Node) -> list[V]:
    x = _x(n)
    dt = ctx.dtype(x)
    hits = [ctx.emit("equal", x, ctx.const(s * np.inf, dt))
            for s, key in ((1, "detect_positive"), (-1, "detect_negative"))
            if n.attrs.get(key, 1)]
    if not hits:
        return [ctx.emit("less", x, x)]  # all False, in the graph's shape
    return [hits[0] if len(hits) == 1 else ctx.emit("logical_or", *hits)]


@converter("BitShift")
def _bit_shift(ctx: Ctx, n: Node) -> list[V]:
    d = n.attrs.get("direction", "")
    if d not in ("LEFT", "RIGHT"):
        raise ctx.error(f"direction must be LEFT or RIGHT, got {d!r}")
    return [ctx.emit("shift_left" if d == "LEFT" else "shift_right", _x(n), _x(n, 1))]


@converter("Size")
def _size(ctx: Ctx, n: Node) -> list[V]:
    dims = ctx.shape(_x(n))
    if not all(isinstance(d, int) for d in dims):
        raise ctx.error(f"needs a static shape, got {list(dims)}; fix it with input_shapes")
    return [np.asarray(math.prod(dims), np.int64)]


@converter("BitCast")
def _bit_cast(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("bitcast", _x(n), to=onnx_dtype(int(n.attrs["to"])))]


@converter("PRelu")
def _prelu(ctx: Ctx, n: Node) -> list[V]:
    x, slope = _x(n), _x(n, 1)
    neg = ctx.emit("less", x, ctx.const(0, ctx.dtype(x)), hint="neg")
    return [ctx.emit("where", neg, ctx.emit("mul", x, slope), x)]


def _log1p(ctx: Ctx, e: V) -> V:
    """log(1 + e) accurate for small e (Kahan: log(u) * e / (u - 1), u = 1 + e)."""
    dt = ctx.dtype(e)
    u = ctx.emit("add", e, ctx.const(1, dt))
    um1 = ctx.emit("sub", u, ctx.const(1, dt))
    exact = ctx.emit("div", ctx.emit("mul", ctx.emit("log", u), e), um1)
    return ctx.emit("where", ctx.emit("equal", um1, ctx.const(0, dt)), e, exact)


@converter("Celu")
def _celu(ctx: Ctx, n: Node) -> list[V]:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1)); half floats compute in f32 (the
    body's steps each rounded to bf16 drift a unit from onnxruntime's f32 result)."""
    x = _x(n)
    dt = ctx.dtype(x)
    xf = ctx.cast(x, "f32") if dt in ("f16", "bf16") else x
    ft = ctx.dtype(xf)
    alpha = ctx.const(float(n.attrs.get("alpha", 1.0)), ft)
    em1 = ctx.emit("sub", ctx.emit("exp", ctx.emit("div", xf, alpha)), ctx.const(1, ft))
    neg = ctx.emit("less", xf, ctx.const(0, ft))
    y = ctx.emit("where", neg, ctx.emit("mul", alpha, em1), xf)
    return [ctx.cast(y, dt)]


@converter("Softplus")
def _softplus(ctx: Ctx, n: Node) -> list[V]:
    x = _x(n)
    e = ctx.emit("exp", ctx.emit("neg", ctx.emit("abs", x)))
    return [ctx.emit("add", ctx.emit("relu", x), _log1p(ctx, e))]


# ---- reductions and norms -------------------------------------------------------------------

def _float(ctx: Ctx, x: V) -> V:
    return x if ctx.dtype(x) in ("f16", "bf16", "f32", "f64") else ctx.cast(x, "f32")


@converter(*_REDUCE_VARIANTS)
def _reduce_variant(ctx: Ctx, n: Node) -> list[V]:
    x, op = _x(n), n.proto.op_type
    dt = ctx.dtype(x)
    rank = len(ctx.shape(x))
    axes = tuple(sorted(a % rank for a in axes_of(ctx, n, 1) or [])) if rank else ()
    keep = bool(n.attrs.get("keepdims", 1))
    noop = not axes and bool(n.attrs.get("noop_with_empty_axes", 0))
    xf = _float(ctx, x) if op in ("ReduceL2", "ReduceLogSum", "ReduceLogSumExp") else x

    def total(v: V, keepdims: bool = keep) -> V:
        return v if noop else ctx.emit("reduce_sum", v, axes=axes, keepdims=keepdims)

    if op == "ReduceL1":
        y = total(ctx.emit("abs", x))
    elif op == "ReduceSumSquare":
        y = total(ctx.emit("mul", x, x))
    elif op == "ReduceL2":
        y = ctx.emit("sqrt", total(ctx.emit("mul", xf, xf)))
    elif op == "ReduceLogSum":
        y = ctx.emit("log", total(xf))
    else:
        y = xf if noop else _log_sum_exp(ctx, xf, axes, keep)
    return [ctx.cast(y, dt)]


def _log_sum_exp(ctx: Ctx, x: V, axes: tuple[int, ...], keep: bool) -> V:
    """log(sum(exp(x - m))) + m with m the max, taken as 0 where it is infinite (an empty
    or all -inf slice gives -inf, not NaN)."""
    dt = ctx.dtype(x)
    m = ctx.emit("reduce_max", x, axes=axes, keepdims=True)
    inf = ctx.emit("equal", ctx.emit("abs", m), ctx.const(np.inf, dt))
    m = ctx.emit("where", inf, ctx.const(0, dt), m)
    s = ctx.emit("reduce_sum", ctx.emit("exp", ctx.emit("sub", x, m)), axes=axes, keepdims=True)
    y = ctx.emit("add", ctx.emit("log", s), m)
    if keep:
        return y
    return ctx.emit("squeeze", y, axes=axes or tuple(range(len(ctx.shape(x)))))


@converter("LpNormalization")
def _lp_normalization(ctx: Ctx, n: Node) -> list[V]:
    x, p = _x(n), int(n.attrs.get("p", 2))
    if p not in (1, 2):
        raise ctx.error(f"p must be 1 or 2, got {p}")
    axes = (int(n.attrs.get("axis", -1)) % len(ctx.shape(x)),)
    v = ctx.emit("abs", x) if p == 1 else ctx.emit("mul", x, x)
    norm = ctx.emit("reduce_sum", v, axes=axes, keepdims=True)
    if p == 2:
        norm = ctx.emit("sqrt", norm)
    dt = ctx.dtype(x)
    zero = ctx.emit("equal", norm, ctx.const(0, dt))  # NOTE: 0 / 0 gives 0 there, as ORT
    return [ctx.emit("div", x, ctx.emit("where", zero, ctx.const(1, dt), norm))]


def _pow_abs(ctx: Ctx, x: V, p: float) -> V:
    if p == 1:
        return ctx.emit("abs", x)
    if p == 2:
        return ctx.emit("mul", x, x)
    return ctx.emit("pow", ctx.emit("abs", x), ctx.const(p, ctx.dtype(x)))


def _root(ctx: Ctx, x: V, p: float) -> V:
    if p == 1:
        return x
    if p == 2:
        return ctx.emit("sqrt", x)
    return ctx.emit("pow", x, ctx.const(1.0 / p, ctx.dtype(x)))


# ---- windows --------------------------------------------------------------------------------

@converter("LpPool")
def _lp_pool(ctx: Ctx, n: Node) -> list[V]:
    """A depthwise conv with a ones kernel sums |x|^p over each window exactly (padding
    adds zeros; ceil_mode's partial windows are more zero padding at the end)."""
    from vcompile.frontends.onnx_nn import window_attrs

    x, p = _x(n), float(n.attrs.get("p", 2))
    kernel = [int(k) for k in n.attrs["kernel_shape"]]
    nd, dims = len(kernel), ctx.shape(x)
    c = dims[1]
    if not isinstance(c, int):
        raise ctx.error(f"needs a static channel dim, got {list(dims)}")
    w = window_attrs(ctx, n, x, kernel)
    pads = list(w["pads"])
    if n.attrs.get("ceil_mode", 0):
        for i in range(nd):
            size, s, dk = dims[2 + i], w["strides"][i], (kernel[i] - 1) * w["dilations"][i] + 1
            if not isinstance(size, int):
                raise ctx.error(f"ceil_mode needs static spatial dims, got {list(dims)}")
            out = -(-(size + pads[i] + pads[nd + i] - dk) // s) + 1
            if (out - 1) * s >= size + pads[i]:
                out -= 1
            pads[nd + i] += max((out - 1) * s + dk - (size + pads[i] + pads[nd + i]), 0)
    dt = ctx.dtype(x)
    ones = ctx.const(np.ones((c, 1, *kernel)), dt)
    y = ctx.emit(f"conv{nd}d", _pow_abs(ctx, x, p), ones, ctx.const(np.zeros(c), dt), groups=c,
                 strides=w["strides"], dilations=w["dilations"], pads=tuple(pads))
    return [_root(ctx, y, p)]


@converter("LRN")
def _lrn(ctx: Ctx, n: Node) -> list[V]:
    """The channel window's mean of x^2 is an average pool over a unit axis inserted
    before C (padding counts: ONNX divides by `size` everywhere)."""
    x, size = _x(n), int(n.attrs["size"])
    alpha, beta = float(n.attrs.get("alpha", 1e-4)), float(n.attrs.get("beta", 0.75))
    bias, rank, dt = float(n.attrs.get("bias", 1.0)), len(ctx.shape(x)), ctx.dtype(x)
    if not 3 <= rank <= 4:
        raise ctx.error(f"supports rank 3 and 4 inputs, got rank {rank}")
    nd = rank - 1
    sq = ctx.emit("unsqueeze", ctx.emit("mul", x, x), axes=(1,))
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    pads = (lo,) + (0,) * (nd - 1) + (hi,) + (0,) * (nd - 1)
    avg = ctx.emit(f"avg_pool{nd}d", sq, kernel=(size,) + (1,) * (nd - 1), pads=pads,
                   count_include_pad=True)
    avg = ctx.emit("squeeze", avg, axes=(1,))
    scaled = ctx.emit("add", ctx.emit("mul", avg, ctx.const(alpha, dt)), ctx.const(bias, dt))
    return [ctx.emit("div", x, ctx.emit("pow", scaled, ctx.const(beta, dt)))]


@converter("Trilu")
def _trilu(ctx: Ctx, n: Node) -> list[V]:
    x = _x(n)
    k = int(ctx.known_ints(n.input(1), "k")[0]) if n.input(1) is not None else 0  # type: ignore[index]
    rows, cols = ctx.shape(x)[-2:]
    if not isinstance(rows, int) or not isinstance(cols, int):
        raise ctx.error(f"needs static last two dims, got {list(ctx.shape(x))}")
    diff = np.arange(cols)[None, :] - np.arange(rows)[:, None]
    keep = diff >= k if n.attrs.get("upper", 1) else diff <= k
    zero = ctx.const(0, ctx.dtype(x))
    return [ctx.emit("where", np.asarray(keep), x, zero)]


# ---- scans and hardmax ----------------------------------------------------------------------

@converter("CumSum", "CumProd")
def _cumulative(ctx: Ctx, n: Node) -> list[V]:
    axis = ctx.known_ints(_x(n, 1), "the axis")
    assert axis is not None
    op = "cumsum" if n.proto.op_type == "CumSum" else "cumprod"
    return [ctx.emit(op, _x(n), axis=int(axis[0]), exclusive=bool(n.attrs.get("exclusive", 0)),
                     reverse=bool(n.attrs.get("reverse", 0)))]


@converter("Hardmax")
def _hardmax(ctx: Ctx, n: Node) -> list[V]:
    x = _x(n)
    if ctx.since() >= 13:
        return [ctx.emit("hardmax", x, axis=int(n.attrs.get("axis", -1)))]
    dims = ctx.shape(x)  # opset < 13: over everything from `axis` on, as one flat axis
    axis = int(n.attrs.get("axis", 1)) % max(len(dims), 1)
    if not all(isinstance(d, int) for d in dims[axis:]):
        raise ctx.error(f"needs static dims from axis {axis} on, got {list(dims)}")
    flat = ctx.emit("reshape", x, shape=(*dims[:axis], math.prod(dims[axis:])))  # type: ignore[arg-type]
    return [ctx.emit("reshape", ctx.emit("hardmax", flat, axis=-1), shape=tuple(dims))]


@converter("AffineGrid")
def _affine_grid(ctx: Ctx, n: Node) -> list[V]:
    """Its body needs If; the base grid is a constant once `size` is known."""
    theta, size = _x(n), ctx.known_ints(_x(n, 1), "the size")
    assert size is not None
    spatial = size[2:]
    if len(spatial) not in (2, 3) or not all(isinstance(d, int) for d in size):
        raise ctx.error(f"needs a static size of rank 4 or 5, got {size}")
    align = bool(n.attrs.get("align_corners", 0))
    lines = [np.full(1, -1.0) if align and d == 1 else
             (-1 + 2 * np.arange(d) / (d - 1) if align else -1 + (2 * np.arange(d) + 1) / d)
             for d in spatial]
    mesh = np.meshgrid(*lines, indexing="ij")  # z, y, x: x varies fastest
    base = np.stack([*mesh[::-1], np.ones(spatial)], axis=-1).reshape(-1, len(spatial) + 1)
    dt = ctx.dtype(theta)
    grid = ctx.emit("matmul", ctx.const(base, dt), ctx.emit("transpose", theta, perm=(0, 2, 1)))
    return [ctx.emit("reshape", grid, shape=(size[0], *spatial, len(spatial)))]
