"""The numpy references of `ir/ops/math.py` against independent scalar references (Python's
`math`, integer arithmetic, explicit loops), and their type rules."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from vcompile.ir import Builder, interp
from vcompile.ir.builder import BuildError
from vcompile.ir.ops import OPS


def _ev(op: str, *xs: np.ndarray, **attrs: Any) -> np.ndarray:
    with np.errstate(all="ignore"):
        (y,) = OPS[op].eval(list(xs), OPS[op].fill_defaults(attrs))
    return y


def _scalar(fn: Any, v: float) -> float:
    try:
        return fn(v)
    except (ValueError, OverflowError):  # math raises where C's libm gives NaN or Inf
        return math.nan


VALS = np.array([math.nan, math.inf, -math.inf, 0.0, -0.0, 0.25, -0.75, 0.999, 1.0, -1.0,
                 1.5, -3.0, 20.0], np.float64)
TRIG = {"tan": math.tan, "asin": math.asin, "acos": math.acos, "atan": math.atan,
        "sinh": math.sinh, "cosh": math.cosh, "asinh": math.asinh, "acosh": math.acosh,
        "atanh": math.atanh}


@pytest.mark.parametrize("op", sorted(TRIG))
def test_trig_matches_math(op: str) -> None:
    y = _ev(op, VALS)
    want = np.array([_scalar(TRIG[op], v) for v in VALS])
    if op in ("sinh", "cosh"):  # math raises OverflowError where the true value is +-inf
        big = np.isfinite(VALS) & (np.abs(VALS) > 700)
        want[big] = np.inf if op == "cosh" else np.copysign(np.inf, VALS[big])
    if op == "atanh":  # math raises at +-1 where the limit is +-inf (as libm)
        want[np.abs(VALS) == 1] = np.copysign(np.inf, VALS[np.abs(VALS) == 1])
    inf_in = np.isinf(VALS)
    if op in ("tan",):  # math.tan(inf) raises; libm gives NaN
        want[inf_in] = math.nan
    if op in ("sinh", "asinh"):
        want[inf_in] = VALS[inf_in]
    if op == "cosh":
        want[inf_in] = math.inf
    if op == "acosh":
        want[VALS == math.inf] = math.inf
    if op == "atan":
        want[inf_in] = np.copysign(math.pi / 2, VALS[inf_in])
    np.testing.assert_allclose(y, want, rtol=1e-12, equal_nan=True)
    assert _ev(op, VALS.astype(np.float32)).dtype == np.float32


def test_sign_and_isnan() -> None:
    y = _ev("sign", VALS)
    want = [math.nan if math.isnan(v) else int(v > 0) - int(v < 0) for v in VALS]
    np.testing.assert_array_equal(y, np.array(want, np.float64))
    ints = np.array([-7, 0, 3], np.int8)
    np.testing.assert_array_equal(_ev("sign", ints), np.array([-1, 0, 1], np.int8))
    assert _ev("isnan", VALS).tolist() == [math.isnan(v) for v in VALS]


def test_bitwise_matches_python_ints() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(-2**31, 2**31, 50).astype(np.int32)
    b = rng.integers(-2**31, 2**31, 50).astype(np.int32)
    for op, fn in (("bitwise_and", int.__and__), ("bitwise_or", int.__or__),
                   ("bitwise_xor", int.__xor__)):
        assert _ev(op, a, b).tolist() == [fn(int(x), int(y)) for x, y in zip(a, b, strict=True)]
    assert _ev("bitwise_not", a).tolist() == [~int(x) for x in a]
    u = np.array([0, 1, 255], np.uint8)
    assert _ev("bitwise_not", u).tolist() == [255, 254, 0]
    t, f = np.array([True, True, False]), np.array([True, False, False])
    assert _ev("bitwise_xor", t, f).tolist() == [False, True, False]


def _shift_ref(x: int, s: int, bits: int, signed: bool, left: bool) -> int:
    if s < 0 or s >= bits:
        return -1 if (signed and not left and x < 0) else 0
    if left:
        y = (x << s) & ((1 << bits) - 1)
        return y - (1 << bits) if signed and y >= 1 << (bits - 1) else y
    return x >> s  # Python's >> is arithmetic on negatives, as C's on signed ints


@pytest.mark.parametrize("dt", [np.uint8, np.uint32, np.int8, np.int64])
def test_shifts_match_python_ints(dt: Any) -> None:
    info, bits = np.iinfo(dt), np.dtype(dt).itemsize * 8
    rng = np.random.default_rng(1)
    x = rng.integers(info.min, info.max, 40, endpoint=True).astype(dt)
    s = rng.integers(-3 if info.min < 0 else 0, bits + 3, 40).astype(dt)
    for op, left in (("shift_left", True), ("shift_right", False)):
        want = [_shift_ref(int(a), int(k), bits, info.min < 0, left) for a, k in zip(x, s, strict=True)]
        y = _ev(op, x, s)
        assert y.dtype == dt and y.tolist() == want, op


def _scan_ref(x: np.ndarray, prod: bool, exclusive: bool, reverse: bool) -> np.ndarray:
    out = np.empty_like(x)
    for row in range(x.shape[0]):
        idx = list(range(x.shape[1]))[::-1] if reverse else list(range(x.shape[1]))
        acc = x.dtype.type(1 if prod else 0)
        for j in idx:
            if exclusive:
                out[row, j] = acc
            acc = acc * x[row, j] if prod else acc + x[row, j]
            if not exclusive:
                out[row, j] = acc
    return out


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_scans_match_loops(exclusive: bool, reverse: bool) -> None:
    x = np.arange(1, 13, dtype=np.int64).reshape(3, 4) % 5 - 1
    for op, prod in (("cumsum", False), ("cumprod", True)):
        y = _ev(op, x, axis=1, exclusive=exclusive, reverse=reverse)
        np.testing.assert_array_equal(y, _scan_ref(x, prod, exclusive, reverse))
        yt = _ev(op, x.T.copy(), axis=-2, exclusive=exclusive, reverse=reverse)
        np.testing.assert_array_equal(yt.T, _scan_ref(x, prod, exclusive, reverse))
    assert _ev("cumsum", np.zeros((2, 0), np.float32), axis=1, exclusive=True).shape == (2, 0)


def test_hardmax_picks_the_first_maximum_and_nan() -> None:
    nan = math.nan
    x = np.array([[1, 3, 3, 0], [nan, 1, 2, 0], [1, 2, nan, nan], [-np.inf] * 4], np.float32)
    want = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(_ev("hardmax", x), want)
    np.testing.assert_array_equal(_ev("hardmax", x.T.copy(), axis=0), want.T)


def test_type_rules() -> None:
    bb = Builder("t")
    xi = bb.input((2, 3), dtype="i32", hint="xi")
    xf = bb.input((2, 3), hint="xf")
    xb = bb.input((2, 3), dtype="bool", hint="xb")
    u8 = bb.input((3,), dtype="u8", hint="u8")
    with pytest.raises(BuildError, match="tan: needs a float input, got i32"):
        bb.emit("tan", xi)
    with pytest.raises(BuildError, match="sign: needs a numeric input, got bool"):
        bb.emit("sign", xb)
    with pytest.raises(BuildError, match="bitwise_and: needs 2 input"):
        bb.emit("bitwise_and", xi, xf)
    with pytest.raises(BuildError, match="shift_left: needs 2 input"):
        bb.emit("shift_left", xb, xb)
    with pytest.raises(BuildError, match="cumsum: axis 2 is out of range for rank 2"):
        bb.emit("cumsum", xf, axis=2)
    y = bb.emit("shift_right", xi, bb.input((3,), dtype="i32", hint="s"))
    assert y.type.shape == (2, 3) and bb.emit("isnan", xf).type.dtype == "bool"
    g = bb.build(bb.emit("bitwise_not", u8), y)
    out = interp.run(g, np.zeros((2, 3), np.int32), np.zeros((2, 3), np.float32),
                     np.zeros((2, 3), bool), np.array([1, 2, 3], np.uint8),
                     np.array([1, 40, -1], np.int32))
    assert out[0].tolist() == [254, 253, 252]


def test_bitcast_keeps_the_bits() -> None:
    x = np.array([1.0, -2.5, math.nan, -0.0], np.float32)
    assert _ev("bitcast", x, to="i32").tolist() == [
        int.from_bytes(np.float32(v).tobytes(), "little", signed=True) for v in x]
    assert _ev("bitcast", np.array([True, False]), to="u8").tolist() == [1, 0]
    assert _ev("bitcast", np.array([0, 1, 7], np.int8), to="bool").tolist() == [False, True, True]
    bb = Builder("t")
    with pytest.raises(BuildError, match="bitcast: f32 and i64 differ in width"):
        bb.emit("bitcast", bb.input((2,), hint="x"), to="i64")
