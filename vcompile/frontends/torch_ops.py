"""The PyTorch frontend's conversion context and converter table, and the elementwise
ATen ops (data movement and reductions are in `torch_shape`, the rest in `torch_nn`).

    aten.add.Tensor(x, y, alpha) => add(x, mul(y, alpha));  aten.rsub(x, y) => sub(y, x)
    aten.pow.Tensor_Scalar(x, 2) => mul(x, x);  aten.hardtanh(x, a, b) => clip {min=a, max=b}

A converter gets a `Call` whose `a` holds the node's arguments by schema name with
the defaults filled in, and whose `dtype`/`shape` are the output's (from the FX
node's fake tensor, in IR spelling). Inputs are graph Values or known numpy arrays;
python scalars become constants of the output dtype, which is how torch promotes them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np
import torch

from vcompile.frontends.onnx_ctx import ConversionError, Ctx, V
from vcompile.ir.graph import Value
from vcompile.ir.types import DTYPES, Dim

_DTYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16",
           torch.float64: "f64", torch.int64: "i64", torch.int32: "i32", torch.int16: "i16",
           torch.int8: "i8", torch.uint8: "u8", torch.bool: "bool"}
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Sym:
    """A symbolic size that is not a plain input dim (e.g. s0*196): reshape spells it -1."""
    expr: str


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()


def to_torch(a: np.ndarray) -> torch.Tensor:
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(a))


class TorchCtx(Ctx):
    """The ONNX frontend's folding Builder, speaking of ATen nodes and torch dims."""

    symbols: dict[str, str]

    def error(self, msg: str) -> ConversionError:
        return ConversionError(f"ATen node {self.op_type} at {self.loc!r}: {msg}")

    def ir_dtype(self, dt: torch.dtype) -> str:
        if dt not in _DTYPES:
            raise self.error(f"dtype {dt} has no IR dtype")
        return _DTYPES[dt]

    def dim(self, d: Any) -> Any:
        """An int, a symbol name (an input dim), or Sym for derived sizes."""
        if isinstance(d, torch.SymInt):
            expr = d.node.expr
            if expr.is_number:
                return int(expr)
            return self.symbols.get(str(expr), Sym(str(expr)))
        if isinstance(d, (torch.SymFloat, torch.SymBool)):
            return Sym(str(d.node.expr))
        return d

    def dims(self, shape: Any) -> tuple[Dim, ...]:
        out = tuple(self.dim(d) for d in shape)
        if any(isinstance(d, Sym) for d in out):
            raise self.error(f"shape {[str(d) for d in shape]} has derived symbolic sizes")
        return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Call:
    node: Any
    a: dict[str, Any]  # arguments by schema name, defaults filled in
    dtype: str         # output dtype (first output)
    shape: tuple       # output shape (first output); Sym for derived sizes

    @staticmethod
    def bind(ctx: TorchCtx, node: Any, args: tuple, kwargs: dict[str, Any]) -> Call:
        a: dict[str, Any] = {}
        for i, arg in enumerate(node.target._schema.arguments):
            if i < len(args):
                a[arg.name] = args[i]
            elif arg.name in kwargs:
                a[arg.name] = kwargs[arg.name]
            else:
                a[arg.name] = arg.default_value if arg.has_default_value() else None
        val = node.meta.get("val")
        first = val[0] if isinstance(val, (list, tuple)) else val
        if isinstance(first, torch.Tensor):
            return Call(node, a, ctx.ir_dtype(first.dtype), tuple(ctx.dim(d) for d in first.shape))
        return Call(node, a, "f32", ())


Converter = Callable[[TorchCtx, Call], Any]
CONVERTERS: dict[str, Converter] = {}
PASS_THROUGH = frozenset({"aten.clone.default", "aten.alias.default", "aten.detach.default",
                          "aten.contiguous.default", "aten.lift_fresh_copy.default",
                          "aten.dropout.default", "aten.copy.default"})
SKIP = frozenset({"aten._assert_tensor_metadata.default", "aten._assert_scalar.default",
                  "aten.sym_constrain_range_for_size.default", "aten._assert_async.msg",
                  "aten.sym_constrain_range.default"})


def aten(*names: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for n in names:
            CONVERTERS[f"aten.{n}"] = fn
        return fn
    return deco


def operand(ctx: TorchCtx, x: Any, dtype: str) -> V:
    """A tensor cast to `dtype`, or a python scalar as a constant of `dtype`."""
    if isinstance(x, (Value, np.ndarray)):
        return ctx.cast(x, dtype)
    return np.asarray(x, DTYPES[dtype])


def rank(ctx: TorchCtx, x: V) -> int:
    return len(ctx.shape(x))


def axis(ctx: TorchCtx, x: V, d: int) -> int:
    r = rank(ctx, x)
    return d % r if r else 0


def shape_attr(ctx: TorchCtx, shape: tuple) -> tuple:
    """An output shape as reshape's target: derived symbolic sizes become one -1."""
    out = tuple(-1 if isinstance(d, Sym) else d for d in shape)
    if out.count(-1) > 1:
        raise ctx.error(f"cannot express shape {[str(d) for d in shape]} with one -1")
    return out


# ---- elementwise -------------------------------------------------------------------------

_UNARY = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "erf": "erf", "exp": "exp",
          "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt", "reciprocal": "reciprocal",
          "neg": "neg", "abs": "abs", "floor": "floor", "ceil": "ceil", "round": "round",
          "sin": "sin", "cos": "cos", "silu": "silu", "hardswish": "hard_swish",
          "logical_not": "logical_not"}


def _unary(op: str) -> Converter:
    return lambda ctx, c: ctx.emit(op, operand(ctx, c.a["self"], c.dtype))


for _name, _op in _UNARY.items():
    CONVERTERS[f"aten.{_name}.default"] = _unary(_op)


@aten("gelu.default")
def _gelu(ctx: TorchCtx, c: Call) -> V:
    return ctx.emit("gelu", c.a["self"], approximate=c.a["approximate"])


@aten("hardsigmoid.default")
def _hardsigmoid(ctx: TorchCtx, c: Call) -> V:
    return ctx.emit("hard_sigmoid", c.a["self"], alpha=1.0 / 6.0, beta=0.5)


@aten("hardtanh.default", "clamp.default")
def _clip(ctx: TorchCtx, c: Call) -> V:
    lo = c.a.get("min_val", c.a.get("min"))
    hi = c.a.get("max_val", c.a.get("max"))
    return ctx.emit("clip", operand(ctx, c.a["self"], c.dtype),
                    min=-np.inf if lo is None else float(lo), max=np.inf if hi is None else float(hi))


@aten("leaky_relu.default")
def _leaky_relu(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    return ctx.emit("max", x, ctx.emit("mul", x, operand(ctx, c.a["negative_slope"], c.dtype)))


@aten("_to_copy.default")
def _to_copy(ctx: TorchCtx, c: Call) -> V:
    return ctx.cast(c.a["self"], c.dtype)


_BINARY = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "maximum": "max",
           "minimum": "min", "fmod": "mod", "remainder": "mod", "pow": "pow"}
_COMPARE = {"eq": "equal", "lt": "less", "le": "less_equal", "gt": "greater",
            "ge": "greater_equal", "logical_and": "logical_and", "logical_or": "logical_or",
            "bitwise_and": "logical_and", "bitwise_or": "logical_or"}


def _binary(name: str) -> Converter:
    def conv(ctx: TorchCtx, c: Call) -> V:
        x, y = operand(ctx, c.a["self"], c.dtype), operand(ctx, c.a["other"], c.dtype)
        alpha = c.a.get("alpha")
        if alpha not in (None, 1):
            y = ctx.emit("mul", y, operand(ctx, alpha, c.dtype))
        extra = {"fmod": name == "fmod"} if name in ("fmod", "remainder") else {}
        if name == "pow" and not isinstance(c.a["self"], (Value, np.ndarray)):
            return ctx.emit("pow", x, operand(ctx, c.a["exponent"], c.dtype))
        return ctx.emit(_BINARY[name], x, y, **extra)
    return conv


for _name in _BINARY:
    for _ov in ("Tensor", "Scalar"):
        CONVERTERS[f"aten.{_name}.{_ov}"] = _binary(_name)
CONVERTERS["aten.maximum.default"] = _binary("maximum")
CONVERTERS["aten.minimum.default"] = _binary("minimum")


@aten("pow.Tensor_Scalar", "pow.Tensor_Tensor")
def _pow(ctx: TorchCtx, c: Call) -> V:
    x = operand(ctx, c.a["self"], c.dtype)
    if isinstance(c.a["exponent"], (int, float)) and c.a["exponent"] == 2:
        return ctx.emit("mul", x, x)  # exact, and what every backend does best
    return ctx.emit("pow", x, operand(ctx, c.a["exponent"], c.dtype))


@aten("rsub.Scalar", "rsub.Tensor")
def _rsub(ctx: TorchCtx, c: Call) -> V:
    x, y = operand(ctx, c.a["self"], c.dtype), operand(ctx, c.a["other"], c.dtype)
    if c.a.get("alpha") not in (None, 1):
        x = ctx.emit("mul", x, operand(ctx, c.a["alpha"], c.dtype))
    return ctx.emit("sub", y, x)


@aten("div.Tensor_mode", "div.Scalar_mode")
def _div_mode(ctx: TorchCtx, c: Call) -> V:
    x, y = operand(ctx, c.a["self"], c.dtype), operand(ctx, c.a["other"], c.dtype)
    q = ctx.emit("div", x, y)
    mode = c.a["rounding_mode"]
    if mode is None or c.dtype not in ("f16", "bf16", "f32", "f64"):
        return q
    if mode == "floor":
        return ctx.emit("floor", q)
    neg = ctx.emit("less", q, np.zeros((), DTYPES[c.dtype]))
    return ctx.emit("where", neg, ctx.emit("ceil", q), ctx.emit("floor", q))


def _compare(name: str) -> Converter:
    def conv(ctx: TorchCtx, c: Call) -> V:
        x, y = c.a["self"], c.a["other"]
        xt = ctx.dtype(x) if isinstance(x, (Value, np.ndarray)) else None
        yt = ctx.dtype(y) if isinstance(y, (Value, np.ndarray)) else None
        dt = xt or yt or "f32"
        if xt and yt and xt != yt:
            dt = "f32" if "f32" in (xt, yt) else xt
        out = ctx.emit(_COMPARE.get(name, "equal"), operand(ctx, x, dt), operand(ctx, y, dt))
        return ctx.emit("logical_not", out) if name == "ne" else out
    return conv


for _name in (*_COMPARE, "ne"):
    for _ov in ("Tensor", "Scalar", "default"):
        CONVERTERS[f"aten.{_name}.{_ov}"] = _compare(_name)


@aten("where.self")
def _where(ctx: TorchCtx, c: Call) -> V:
    return ctx.emit("where", operand(ctx, c.a["condition"], "bool"),
                    operand(ctx, c.a["self"], c.dtype), operand(ctx, c.a["other"], c.dtype))
