"""Math ops beyond `elementwise`: inverse and hyperbolic trig, sign, isnan, bitwise and
shift ops, cumulative sum and product, hardmax, bitcast (same bits, another dtype of the
same width).

NaN and Inf follow onnxruntime: trig ops as C's libm (NaN outside the domain, e.g.
asin(2)), sign(NaN) = NaN, isnan only for NaN. Bitwise and shift ops take integer
inputs of one dtype (bool too for the bitwise ones); a shift by a negative amount or by
the bit width or more gives 0, or -1 for a right shift of a negative x (as ONNX 28
defines it). `cumsum`/`cumprod` scan along `axis` (`exclusive`: the element itself left
out, `reverse`: from the end), in the input's dtype. `hardmax` is 1 at the first
maximum along `axis` and 0 elsewhere; a NaN is the maximum (numpy's argmax and the ONNX
reference; onnxruntime's answer with a NaN depends on its SIMD path).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops import flops
from vcompile.ir.ops.registry import ShapeError, broadcast_shapes, norm_axis, one, register_op
from vcompile.ir.types import DTYPES, FLOAT_DTYPES, TensorType

_INT_DTYPES = ("i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64")


def _float_unary(name: str) -> Callable[[Sequence[TensorType], Attrs], tuple[TensorType, ...]]:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        if ts[0].dtype not in FLOAT_DTYPES:
            raise ShapeError(f"{name}: needs a float input, got {ts[0].dtype}")
        return (ts[0],)
    return infer


_TRIG: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh,
    "atanh": np.arctanh}


def _register_trig(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    register_op(name, 1, _float_unary(name), lambda xs, a: one(fn(xs[0]), like=xs[0]),
                kind="elementwise", doc=f"elementwise {fn.__name__}")


for _name, _fn in _TRIG.items():
    _register_trig(_name, _fn)


def _sign_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    if ts[0].dtype == "bool":
        raise ShapeError("sign: needs a numeric input, got bool")
    return (ts[0],)


register_op("sign", 1, _sign_infer, lambda xs, a: one(np.sign(xs[0]), like=xs[0]),
            kind="elementwise", doc="-1, 0 or 1 by the sign of x; NaN stays NaN")
register_op("isnan", 1, lambda ts, a: (_float_unary("isnan")(ts, a)[0].with_dtype("bool"),),
            lambda xs, a: (np.isnan(xs[0]),), kind="elementwise", doc="x is NaN (bool)")


# ---- bitwise and shifts -----------------------------------------------------------------

def _int_infer(name: str, allow_bool: bool, arity: int
               ) -> Callable[[Sequence[TensorType], Attrs], tuple[TensorType, ...]]:
    ok = _INT_DTYPES + (("bool",) if allow_bool else ())

    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        dts = {t.dtype for t in ts}
        if len(dts) != 1 or ts[0].dtype not in ok:
            raise ShapeError(f"{name}: needs {arity} input(s) of one integer dtype, got "
                             f"{', '.join(t.dtype for t in ts)}")
        return (TensorType(ts[0].dtype, broadcast_shapes(*(t.shape for t in ts))),)
    return infer


def _shift(left: bool) -> Callable[[Sequence[np.ndarray], Attrs], tuple[np.ndarray, ...]]:
    def ev(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
        x, s = np.broadcast_arrays(*xs)
        bits = x.dtype.itemsize * 8
        big = (s < 0) | (s >= bits)  # undefined in C; ONNX 28 fills with 0 or the sign
        s = np.where(big, 0, s).astype(x.dtype)
        y = np.left_shift(x, s) if left else np.right_shift(x, s)
        fill = np.zeros((), x.dtype)
        if not left and x.dtype.kind == "i":
            fill = np.where(x < 0, x.dtype.type(-1), fill)
        return (np.where(big, fill, y).astype(x.dtype),)
    return ev


_BITWISE = {"bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or,
            "bitwise_xor": np.bitwise_xor}


def _register_bitwise(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    register_op(name, 2, _int_infer(name, True, 2),
                lambda xs, a: one(fn(xs[0], xs[1]), like=xs[0]), kind="elementwise")


for _name, _fn2 in _BITWISE.items():
    _register_bitwise(_name, _fn2)
register_op("bitwise_not", 1, _int_infer("bitwise_not", True, 1),
            lambda xs, a: one(np.invert(xs[0]), like=xs[0]), kind="elementwise")
register_op("shift_left", 2, _int_infer("shift_left", False, 2), _shift(True),
            kind="elementwise", doc="x << s; 0 when s < 0 or s >= the bit width")
register_op("shift_right", 2, _int_infer("shift_right", False, 2), _shift(False),
            kind="elementwise", doc="x >> s (logical for unsigned, arithmetic for signed)")


# ---- scans and hardmax ------------------------------------------------------------------

def _axis_infer(name: str) -> Callable[[Sequence[TensorType], Attrs], tuple[TensorType, ...]]:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        if ts[0].dtype == "bool":
            raise ShapeError(f"{name}: needs a numeric input, got bool")
        norm_axis(a.int("axis"), ts[0].rank, name)
        return (ts[0],)
    return infer


def _scan(fn: Callable[..., np.ndarray], unit: int
          ) -> Callable[[Sequence[np.ndarray], Attrs], tuple[np.ndarray, ...]]:
    def ev(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
        x = xs[0]
        ax = norm_axis(a.int("axis"), x.ndim)
        if a["reverse"]:
            x = np.flip(x, ax)
        y = fn(x, axis=ax, dtype=x.dtype)
        if a["exclusive"] and x.shape[ax]:  # shift by one along the axis, the identity element first
            first = np.full_like(np.take(y, [0], axis=ax), unit)
            y = np.concatenate([first, np.take(y, range(x.shape[ax] - 1), axis=ax)], axis=ax)
        if a["reverse"]:
            y = np.flip(y, ax)
        return one(y, like=xs[0])
    return ev


_SCAN_ATTRS = {"axis": ("int", 0), "exclusive": ("bool", False), "reverse": ("bool", False)}
register_op("cumsum", 1, _axis_infer("cumsum"), _scan(np.cumsum, 0), attrs=_SCAN_ATTRS,
            category="reduce", flops=flops.per_out(1), doc="running sum along axis")
register_op("cumprod", 1, _axis_infer("cumprod"), _scan(np.cumprod, 1), attrs=_SCAN_ATTRS,
            category="reduce", flops=flops.per_out(1), doc="running product along axis")


def _hardmax(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    x = xs[0]
    ax = norm_axis(a.int("axis"), x.ndim)
    if x.shape[ax] == 0:
        return (np.zeros_like(x),)
    idx = np.expand_dims(np.argmax(x, axis=ax), ax)  # NOTE: NaN counts as the maximum
    pos = np.arange(x.shape[ax]).reshape([-1 if i == ax else 1 for i in range(x.ndim)])
    return ((pos == idx).astype(x.dtype),)


register_op("hardmax", 1, _axis_infer("hardmax"), _hardmax, attrs={"axis": ("int", -1)},
            category="reduce", flops=flops.per_in(1), doc="1 at the first maximum along axis")


# ---- bitcast ----------------------------------------------------------------------------

def _bitcast_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    to = a.str("to")
    if to not in DTYPES:
        raise ShapeError(f"bitcast: unknown dtype {to!r}; expected one of {', '.join(DTYPES)}")
    if DTYPES[to].itemsize != DTYPES[ts[0].dtype].itemsize:
        raise ShapeError(f"bitcast: {ts[0].dtype} and {to} differ in width; bitcast keeps "
                         "the bits, so the widths must be equal")
    return (ts[0].with_dtype(to),)


def _bitcast(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    to = DTYPES[a.str("to")]
    if to == np.bool_:  # NOTE: a byte other than 0/1 is no bool; nonzero reads as True
        return (xs[0].view(np.uint8) != 0 if xs[0].dtype != np.bool_ else xs[0].copy(),)
    return (xs[0].copy(order="C").view(to),)  # NOTE: ascontiguousarray makes 0-d 1-d


register_op("bitcast", 1, _bitcast_infer, _bitcast, attrs={"to": ("str",)}, kind="elementwise",
            flops=flops.free, doc="the same bits read as dtype `to` of equal width")
