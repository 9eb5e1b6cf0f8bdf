"""Elementwise ops: unary math, binary arithmetic with numpy broadcasting, where, cast.

Binary ops need equal input dtypes (frontends insert casts), except `pow`, whose
exponent may have another dtype; the result has the base's dtype.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import special

from vcompile.ir.graph import Attrs
from vcompile.ir.ops import flops
from vcompile.ir.ops.registry import ShapeError, broadcast_shapes, one, register_op, same_dtype
from vcompile.ir.types import DTYPES, FLOAT_DTYPES, TensorType

# ---- unary ------------------------------------------------------------------------------


def _unary_infer(name: str, floats_only: bool) -> Callable[..., tuple[TensorType, ...]]:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        if floats_only and ts[0].dtype not in FLOAT_DTYPES:
            raise ShapeError(f"{name}: needs a float input, got {ts[0].dtype}")
        return (ts[0],)
    return infer


def _gelu(x: np.ndarray, a: Attrs) -> np.ndarray:
    if a["approximate"] == "tanh":
        c = np.sqrt(2.0 / np.pi)
        return 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0)))


def _hard_sigmoid(x: np.ndarray, a: Attrs) -> np.ndarray:
    return np.clip(x * a.float("alpha") + a.float("beta"), 0.0, 1.0)


def _clip(x: np.ndarray, a: Attrs) -> np.ndarray:
    lo, hi = a.float("min"), a.float("max")
    if x.dtype.kind in "iub":  # keep integer bounds exact, clamp to the dtype's range
        info = np.iinfo(x.dtype)
        lo = info.min if lo == -np.inf else int(max(lo, info.min))
        hi = info.max if hi == np.inf else int(min(hi, info.max))
    return np.minimum(np.maximum(x, lo), hi)


_UNARY: dict[str, tuple[Callable[[np.ndarray, Attrs], np.ndarray], bool, dict]] = {
    # name: (numpy function, floats only, attrs)
    "neg": (lambda x, a: np.negative(x), False, {}),
    "abs": (lambda x, a: np.abs(x), False, {}),
    "relu": (lambda x, a: np.maximum(x, np.zeros((), x.dtype)), False, {}),
    "sigmoid": (lambda x, a: special.expit(x), True, {}),
    "tanh": (lambda x, a: np.tanh(x), True, {}),
    "erf": (lambda x, a: special.erf(x), True, {}),
    "exp": (lambda x, a: np.exp(x), True, {}),
    "log": (lambda x, a: np.log(x), True, {}),
    "sqrt": (lambda x, a: np.sqrt(x), True, {}),
    "rsqrt": (lambda x, a: 1.0 / np.sqrt(x), True, {}),
    "reciprocal": (lambda x, a: np.reciprocal(x), True, {}),
    "floor": (lambda x, a: np.floor(x), True, {}),
    "ceil": (lambda x, a: np.ceil(x), True, {}),
    "round": (lambda x, a: np.round(x), True, {}),  # half to even, as ONNX Round
    "sin": (lambda x, a: np.sin(x), True, {}),
    "cos": (lambda x, a: np.cos(x), True, {}),
    "gelu": (_gelu, True, {"approximate": ("str", "none")}),
    "silu": (lambda x, a: x * special.expit(x), True, {}),
    "hard_sigmoid": (_hard_sigmoid, True, {"alpha": ("float", 0.2), "beta": ("float", 0.5)}),
    "hard_swish": (lambda x, a: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0), True, {}),
    "clip": (_clip, False, {"min": ("float", -np.inf), "max": ("float", np.inf)}),
}


def _register_unary(name: str, fn: Callable[[np.ndarray, Attrs], np.ndarray],
                    floats_only: bool, attrs: dict) -> None:
    def ev(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
        return one(fn(xs[0], a), like=xs[0])
    register_op(name, 1, _unary_infer(name, floats_only), ev, attrs=attrs, kind="elementwise")


for _name, (_fn, _fl, _attrs) in _UNARY.items():
    _register_unary(_name, _fn, _fl, _attrs)


def _cast_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    if a["to"] not in DTYPES:
        raise ShapeError(f"cast: unknown dtype {a['to']!r}; expected one of {', '.join(DTYPES)}")
    return (ts[0].with_dtype(a.str("to")),)


def _cast_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x, to = xs[0], DTYPES[a.str("to")]
    if x.dtype.kind == "f" and to.kind in "iu":
        # NOTE: float -> int truncates toward zero (C semantics, as ONNX Cast).
        x = np.trunc(x)
    return (np.asarray(x.astype(to)),)


# NOTE: identity before cast keeps the table's order (it ended the unary loop).
register_op("identity", 1, _unary_infer("identity", False), lambda xs, a: one(xs[0], like=xs[0]),
            kind="elementwise", view=True, selection=True, flops=flops.free)
register_op("cast", 1, _cast_infer, _cast_eval, attrs={"to": ("str",)}, kind="elementwise",
            flops=flops.free)

# ---- binary and n-ary -------------------------------------------------------------------


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division truncating toward zero (C semantics, as ONNX Div)."""
    if a.dtype.kind == "u":
        return np.floor_divide(a, b)
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


def _div(a: np.ndarray, b: np.ndarray, at: Attrs) -> np.ndarray:
    return _int_div(a, b) if a.dtype.kind in "iu" else np.divide(a, b)


def _mod(a: np.ndarray, b: np.ndarray, at: Attrs) -> np.ndarray:
    if at["fmod"]:
        return np.fmod(a, b)
    return np.mod(a, b)


def _pow(a: np.ndarray, b: np.ndarray, at: Attrs) -> np.ndarray:
    if a.dtype.kind in "iu":
        return np.power(a.astype(np.int64), b.astype(np.int64)).astype(a.dtype)
    return np.power(a, b.astype(a.dtype))


_BINARY: dict[str, tuple[Callable[[np.ndarray, np.ndarray, Attrs], np.ndarray], str | None, dict]] = {
    # name: (numpy function, result dtype (None = input dtype), attrs)
    "add": (lambda a, b, at: np.add(a, b), None, {}),
    "sub": (lambda a, b, at: np.subtract(a, b), None, {}),
    "mul": (lambda a, b, at: np.multiply(a, b), None, {}),
    "div": (_div, None, {}),
    "mod": (_mod, None, {"fmod": ("bool", False)}),
    "pow": (_pow, None, {}),
    "equal": (lambda a, b, at: np.equal(a, b), "bool", {}),
    "less": (lambda a, b, at: np.less(a, b), "bool", {}),
    "greater": (lambda a, b, at: np.greater(a, b), "bool", {}),
    "less_equal": (lambda a, b, at: np.less_equal(a, b), "bool", {}),
    "greater_equal": (lambda a, b, at: np.greater_equal(a, b), "bool", {}),
    "logical_and": (lambda a, b, at: np.logical_and(a, b), "bool", {}),
    "logical_or": (lambda a, b, at: np.logical_or(a, b), "bool", {}),
}


def _register_binary(name: str, fn: Callable[[np.ndarray, np.ndarray, Attrs], np.ndarray],
                     out_dtype: str | None, attrs: dict) -> None:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        dt = ts[0].dtype if name == "pow" else same_dtype(ts, name)
        return (TensorType(out_dtype or dt, broadcast_shapes(ts[0].shape, ts[1].shape)),)

    def ev(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
        res = np.asarray(fn(xs[0], xs[1], a))
        return (res.astype(np.bool_ if out_dtype else xs[0].dtype, copy=False),)
    register_op(name, 2, infer, ev, attrs=attrs, kind="elementwise")


for _name, (_fn2, _odt, _attrs2) in _BINARY.items():
    _register_binary(_name, _fn2, _odt, _attrs2)


def _nary_infer(name: str) -> Callable[..., tuple[TensorType, ...]]:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        return (TensorType(same_dtype(ts, name), broadcast_shapes(*(t.shape for t in ts))),)
    return infer


def _nary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., tuple[np.ndarray, ...]]:
    def ev(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
        acc = xs[0]
        for x in xs[1:]:
            acc = fn(acc, x)
        return (np.asarray(acc, dtype=xs[0].dtype),)
    return ev


register_op("max", (1, None), _nary_infer("max"), _nary(np.maximum), kind="elementwise",
            doc="elementwise maximum of one or more broadcast inputs")
register_op("min", (1, None), _nary_infer("min"), _nary(np.minimum), kind="elementwise",
            doc="elementwise minimum of one or more broadcast inputs")


def _where_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    if ts[0].dtype != "bool":
        raise ShapeError(f"where: condition must be bool, got {ts[0].dtype}")
    dt = same_dtype(ts[1:], "where")
    return (TensorType(dt, broadcast_shapes(ts[0].shape, ts[1].shape, ts[2].shape)),)


register_op("where", 3, _where_infer,
            lambda xs, a: (np.asarray(np.where(xs[0], xs[1], xs[2]), dtype=xs[1].dtype),),
            kind="elementwise")
register_op("logical_not", 1, lambda ts, a: (ts[0].with_dtype("bool"),),
            lambda xs, a: (np.logical_not(xs[0]),), kind="elementwise")
