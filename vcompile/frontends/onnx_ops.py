"""ONNX op converters: elementwise math, contractions, reductions, and the converter table.

    CONVERTERS[op_type](ctx, node) -> one V (Value or known array) per ONNX output
    (ops outside the default domain are keyed "domain.op_type": "com.microsoft.QGemm")

ONNX-only inputs that configure an op (shape, axes, pads, repeats, clip bounds...)
must be known at import; they become attrs. Neural-network ops (conv, pooling,
normalization, resize) live in `onnx_nn`, quantization in `onnx_quant` (onnxruntime's
com.microsoft QLinear ops in `onnx_quant_ms`), shape manipulation (Reshape, Slice, Pad,
Shape, Constant...) in `onnx_shape`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from vcompile.frontends.onnx_ctx import Ctx, V
from vcompile.ir.types import DTYPES, dtype_of


@dataclass
class Node:
    proto: onnx.NodeProto
    inputs: list[V | None]  # None for an omitted optional input
    attrs: dict[str, Any]
    used: tuple[bool, ...]  # whether each output is consumed

    def input(self, i: int) -> V | None:
        return self.inputs[i] if i < len(self.inputs) else None


Converter = Callable[[Ctx, Node], Sequence[V | None]]
CONVERTERS: dict[str, Converter] = {}

# Inputs that configure an op rather than carry data: they must be known at import.
_REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd")
STATIC_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3),
    "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "Resize": (1, 2, 3), "Upsample": (1,),
    "ConstantOfShape": (0,), **{op: (1,) for op in _REDUCE_OPS},
    # quantized ops fold their scales, zero points and weights into integer multipliers
    "ConvInteger": (1, 2, 3), "MatMulInteger": (2, 3), "QLinearConv": (1, 2, 3, 4, 5, 6, 7),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7)}


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for t in op_types:
            CONVERTERS[t] = fn
        return fn
    return deco


def onnx_dtype(elem_type: int) -> str:
    return dtype_of(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


# ---- elementwise ----------------------------------------------------------------------------

_UNARY = {"Neg": "neg", "Abs": "abs", "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh",
          "Erf": "erf", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
          "Floor": "floor", "Ceil": "ceil", "Round": "round", "Sin": "sin", "Cos": "cos",
          "HardSwish": "hard_swish", "Not": "logical_not"}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
           "Equal": "equal", "Less": "less", "Greater": "greater", "LessOrEqual": "less_equal",
           "GreaterOrEqual": "greater_equal", "And": "logical_and", "Or": "logical_or"}


@converter(*_UNARY)
def _unary(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit(_UNARY[n.proto.op_type], n.inputs[0])]  # type: ignore[arg-type]


@converter(*_BINARY)
def _binary(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit(_BINARY[n.proto.op_type], *n.inputs)]  # type: ignore[arg-type]


@converter("Mod")
def _mod(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("mod", *n.inputs, fmod=bool(n.attrs.get("fmod", 0)))]  # type: ignore[arg-type]


@converter("Max", "Min")
def _max_min(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit(n.proto.op_type.lower(), *ctx.flat(n.inputs))]


@converter("Where")
def _where(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("where", *n.inputs)]  # type: ignore[arg-type]


@converter("Gelu")
def _gelu(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("gelu", n.inputs[0], approximate=n.attrs.get("approximate", "none"))]  # type: ignore[arg-type]


@converter("HardSigmoid")
def _hard_sigmoid(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("hard_sigmoid", n.inputs[0], alpha=float(n.attrs.get("alpha", 0.2)),  # type: ignore[arg-type]
                     beta=float(n.attrs.get("beta", 0.5)))]


@converter("LeakyRelu")
def _leaky_relu(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    alpha = ctx.const(float(n.attrs.get("alpha", 0.01)), ctx.dtype(x))
    neg = ctx.emit("less", x, ctx.const(0, ctx.dtype(x)), hint="neg")
    return [ctx.emit("where", neg, ctx.emit("mul", x, alpha), x)]


@converter("Clip")
def _clip(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    if ctx.since() < 11:  # Clip-6: the bounds are attrs (default: the float range)
        return [ctx.emit("clip", x, min=float(n.attrs.get("min", -np.inf)),
                         max=float(n.attrs.get("max", np.inf)))]
    lo, hi = n.input(1), n.input(2)
    if ctx.known(lo) is None and lo is not None or ctx.known(hi) is None and hi is not None:
        # bounds computed at run time: max/min with broadcast scalars
        y = x if lo is None else ctx.emit("max", x, lo)
        return [y if hi is None else ctx.emit("min", y, hi)]
    attrs = {}
    if lo is not None:
        attrs["min"] = float(np.asarray(lo).reshape(()).item())
    if hi is not None:
        attrs["max"] = float(np.asarray(hi).reshape(()).item())
    return [ctx.emit("clip", x, **attrs)]


@converter("Cast")
def _cast(ctx: Ctx, n: Node) -> list[V]:
    return [_cast_to(ctx, n.inputs[0], onnx_dtype(int(n.attrs["to"])))]  # type: ignore[arg-type]


@converter("CastLike")
def _cast_like(ctx: Ctx, n: Node) -> list[V]:
    return [_cast_to(ctx, n.inputs[0], ctx.dtype(n.inputs[1]))]  # type: ignore[arg-type]


def _cast_to(ctx: Ctx, x: V, to: str) -> V:
    arr = ctx.known(x)
    if arr is not None and arr.dtype == object and to in ("i64", "i32"):
        return arr  # a shape with symbolic dims stays symbolic
    return ctx.emit("cast", x, to=to)


@converter("Sum", "Mean")
def _sum_mean(ctx: Ctx, n: Node) -> list[V]:
    xs = ctx.flat(n.inputs)
    acc = xs[0]
    for x in xs[1:]:
        acc = ctx.emit("add", acc, x)
    if n.proto.op_type == "Mean" and len(xs) > 1:
        acc = ctx.emit("div", acc, ctx.const(len(xs), ctx.dtype(acc)))
    return [acc]


@converter("Dropout")
def _dropout(ctx: Ctx, n: Node) -> list[V | None]:
    x = n.inputs[0]
    assert x is not None
    training = ctx.known(n.input(2))
    if training is not None and bool(np.asarray(training).reshape(())):
        raise ctx.error("training_mode=True is not supported (inference only)")
    # before opset 12 Dropout is inference unless trained by a runtime (ratio is an attr);
    # its mask is bool from Dropout-10 on, of x's type before
    mask_dtype = "bool" if ctx.since() >= 10 else ctx.dtype(x)
    used = len(n.used) > 1 and n.used[1]
    return [x, ctx.const(np.ones(ctx.shape(x)), mask_dtype) if used else None]


@converter("Range")
def _range(ctx: Ctx, n: Node) -> list[V]:
    start, limit, delta = (ctx.known(x) for x in n.inputs[:3])
    if start is None or limit is None or delta is None or start.dtype == object:
        raise ctx.error("needs start, limit and delta known at import time")
    return [np.arange(start, limit, delta, dtype=start.dtype)]


@converter("Identity")
def _identity(ctx: Ctx, n: Node) -> list[V]:
    return [n.inputs[0]]  # type: ignore[list-item]


def axes_of(ctx: Ctx, n: Node, idx: int) -> list[int] | None:
    """Axes from input `idx` (newer opsets) or the `axes` attr (older ones)."""
    if n.input(idx) is not None:
        return [int(a) for a in ctx.known_ints(n.input(idx), "the axes")]  # type: ignore[union-attr]
    return list(n.attrs["axes"]) if "axes" in n.attrs else None


# ---- contractions, reductions, softmax ------------------------------------------------------

@converter("MatMul")
def _matmul(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("matmul", *n.inputs)]  # type: ignore[arg-type]


@converter("Gemm")
def _gemm(ctx: Ctx, n: Node) -> list[V]:
    a = n.attrs
    return [ctx.emit("gemm", *ctx.flat(n.inputs), alpha=float(a.get("alpha", 1.0)),
                     beta=float(a.get("beta", 1.0)), trans_a=bool(a.get("transA", 0)),
                     trans_b=bool(a.get("transB", 0)))]


@converter("Einsum")
def _einsum(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("einsum", *ctx.flat(n.inputs), equation=n.attrs["equation"])]


_REDUCE = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max",
           "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod"}


@converter(*_REDUCE)
def _reduce(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    axes = axes_of(ctx, n, 1) or []
    if not axes and n.attrs.get("noop_with_empty_axes", 0):
        return [x]
    return [ctx.emit(_REDUCE[n.proto.op_type], x, axes=tuple(axes),
                     keepdims=bool(n.attrs.get("keepdims", 1)))]


@converter("Softmax", "LogSoftmax")
def _softmax(ctx: Ctx, n: Node) -> list[V]:
    op = "softmax" if n.proto.op_type == "Softmax" else "log_softmax"
    x = n.inputs[0]
    assert x is not None
    if ctx.since() >= 13:
        return [ctx.emit(op, x, axis=int(n.attrs.get("axis", -1)))]
    # before opset 13: x seen as 2-D [prod(dims < axis), prod(dims >= axis)], normalized
    # over the second dim (default axis 1)
    shape = ctx.shape(x)
    axis = int(n.attrs.get("axis", 1)) % max(len(shape), 1)
    if axis >= len(shape) - 1:
        return [ctx.emit(op, x, axis=-1)]
    flat = ctx.emit("reshape", x, shape=(*shape[:axis], -1))
    return [ctx.emit("reshape", ctx.emit(op, flat, axis=-1), shape=tuple(shape))]


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    op = "reduce_mean" if n.proto.op_type == "GlobalAveragePool" else "reduce_max"
    return [ctx.emit(op, x, axes=tuple(range(2, len(ctx.shape(x)))), keepdims=True)]


def zeros(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, dtype=DTYPES[dtype])


from vcompile.frontends import (  # noqa: E402,F401  (register converters)
    onnx_index,
    onnx_math,
    onnx_nn,
    onnx_quant,
    onnx_quant_ms,
    onnx_rnn,
    onnx_shape,
)
