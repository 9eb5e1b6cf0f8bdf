"""The integer-only ops: exact contractions and rescaling against int64 references written
here independently, and the fixed-point nonlinearities against the float functions they
stand for (Shiftmax vs softmax, igelu vs GELU, ilayernorm vs LayerNorm)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.ir.test_ops_nn import run
from vcompile.ir.ops import ShapeError
from vcompile.ir.ops.integer import dyadic, exp2_neg, isqrt, rshift_round

RNG = np.random.default_rng(0)
LOG2E = float(np.log2(np.e))


def i8(*shape: int, lo: int = -128, hi: int = 128) -> np.ndarray:
    return RNG.integers(lo, hi, size=shape).astype(np.int8)


def test_rshift_round_is_round_half_up():
    v = np.array([-6, -5, -3, -2, 2, 3, 5, 6], np.int64)
    assert rshift_round(v, 1).tolist() == [-3, -2, -1, -1, 1, 2, 3, 3]
    assert rshift_round(v, 0).tolist() == v.tolist()


@pytest.mark.parametrize("real", [0.5, 1e-3, 3.7e-5, 0.999999, 1.7, 1e-9])
def test_dyadic_is_accurate(real):
    m, s = dyadic(real)
    assert 2 ** 29 < int(m[0]) < 2 ** 31
    assert abs(int(m[0]) / 2.0 ** int(s[0]) - real) <= real * 2 ** -29


def test_dyadic_rejects_negative_scales():
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        dyadic(-1.0)


def test_exp2_neg_and_isqrt():
    f = 14
    u = np.arange(0, 8 << f)
    assert np.abs(exp2_neg(u, f) / 2 ** f - 2.0 ** (-u / 2 ** f)).max() < 2.5e-3
    assert exp2_neg(np.array([0]), f)[0] == 1 << f  # a softmax maximum gets exactly one
    v = np.concatenate([RNG.integers(0, 2 ** 63 - 1, size=10000, dtype=np.int64),
                        np.array([0, 1, 2, 3, 4, 2 ** 62, 2 ** 63 - 1], np.int64)])
    assert isqrt(v).tolist() == [math.isqrt(int(x)) for x in v]


def test_qconv2d_is_exact_with_zero_point_padding():
    x, w = RNG.integers(0, 256, (1, 4, 7, 7)).astype(np.uint8), i8(6, 2, 3, 3)
    b = RNG.integers(-1000, 1000, 6).astype(np.int32)
    (y,) = run("qconv2d", x, w, b, pads=(1, 1, 1, 1), strides=(2, 2), groups=2, x_zp=128)
    # int64 reference: pad with the zero point, subtract, accumulate per tap
    xp = np.pad(x.astype(np.int64) - 128, [(0, 0), (0, 0), (1, 1), (1, 1)])
    ref = np.zeros((1, 6, 4, 4), np.int64)
    for o in range(6):
        g = o // 3
        for i in range(4):
            for j in range(4):
                patch = xp[0, 2 * g:2 * g + 2, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
                ref[0, o, i, j] = (patch * w[o].astype(np.int64)).sum() + b[o]
    assert y.dtype == np.int32 and (y == ref).all()


def test_qlinear_and_qmatmul_are_exact():
    x, w, b = i8(2, 5, 64), i8(64, 16), RNG.integers(-99, 99, 16).astype(np.int32)
    (y,) = run("qlinear", x, w, b, x_zp=3)
    assert (y == (x.astype(np.int64) - 3) @ w.astype(np.int64) + b).all()
    p, v = RNG.integers(0, 256, (3, 7, 9)).astype(np.uint8), i8(3, 9, 4)
    (y,) = run("qmatmul", p, v, a_zp=0, b_zp=-2)
    assert (y == p.astype(np.int64) @ (v.astype(np.int64) + 2)).all()


def test_requantize_per_channel_with_relu_clip():
    acc = RNG.integers(-2 ** 20, 2 ** 20, (1, 3, 4, 4)).astype(np.int32)
    real = np.array([1e-4, 3e-5, 2e-3])
    m, s = dyadic(real)
    (y,) = run("requantize", acc, m, s, axis=1, zero_point=-5, out_dtype="i8", clip=(-5, 127))
    ref = np.clip(np.floor(acc * real.reshape(1, 3, 1, 1) + 0.5) - 5, -5, 127)
    # the dyadic multiplier is within 2^-29 of the real one: ties may differ by one step
    assert np.abs(y.astype(np.int64) - ref).max() <= 1 and (y == ref).mean() > 0.99
    assert y.min() >= -5


def test_qadd_matches_float_rescaling():
    a, b = i8(2, 50), i8(2, 50)
    sa, sb, so = 0.02, 0.05, 0.06
    sh = 20
    ma, mb = int(round(sa / so * 2 ** sh)), int(round(sb / so * 2 ** sh))
    (y,) = run("qadd", a, b, a_mult=ma, b_mult=mb, shift=sh)
    ref = np.clip(np.round((a * sa + b * sb) / so), -128, 127)
    assert np.abs(y - ref).max() <= 1


def _softmax_attrs(scale: float, f: int = 14) -> dict:
    m, s = dyadic(scale * LOG2E * 2 ** f)
    return {"mult": int(m[0]), "shift": int(s[0]), "frac_bits": f}


def test_shiftmax_approximates_softmax():
    scale = 0.003  # logits of i32 accumulators at the product scale of q and k
    x = RNG.integers(-3000, 3000, (4, 197)).astype(np.int32)
    (y,) = run("shiftmax", x, axis=-1, **_softmax_attrs(scale))
    ref = torch.softmax(torch.from_numpy(x * scale), -1).numpy()
    assert y.dtype == np.uint8
    assert np.abs(y / 256.0 - ref).max() < 3 / 256
    peaked = np.zeros((1, 10), np.int32)
    peaked[0, 3] = 100000
    (y,) = run("shiftmax", peaked, **_softmax_attrs(scale))
    assert y[0, 3] == 255 and y.sum() == 255


def test_igelu_approximates_gelu():
    s, f = 0.05, 14
    x = np.arange(-128, 128, dtype=np.int8)
    m, sh = dyadic(1.702 * LOG2E * s * 2 ** f)
    (y,) = run("igelu", x, mult=int(m[0]), shift=int(sh[0]), frac_bits=f)
    ref = torch.nn.functional.gelu(torch.from_numpy(x * s).double()).numpy()
    # x * sigmoid(1.702 x) is itself within 0.02 of GELU
    assert y.dtype == np.int32 and np.abs(y * s / 2 ** f - ref).max() < 0.025


def test_ilayernorm_approximates_layer_norm():
    s, f, c = 0.04, 12, 192
    x = RNG.normal(0, 30, (3, 10, c)).clip(-128, 127).astype(np.int8)
    gamma = RNG.normal(1, 0.2, c)
    beta = RNG.normal(0, 0.1, c)
    g_bits = 10
    gq = np.round(gamma * 2 ** g_bits).astype(np.int32)
    bq = np.round(beta * 2 ** (f + g_bits)).astype(np.int32)
    eps = int(round(c * c * 1e-5 / s ** 2))
    (y,) = run("ilayernorm", x, gq, bq, eps=eps, frac_bits=f)
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x * s).double(), (c,),
                                         torch.from_numpy(gamma), torch.from_numpy(beta)).numpy()
    assert np.abs(y / 2.0 ** (f + g_bits) - ref).max() < 0.02


@pytest.mark.parametrize("op,xs,attrs,msg", [
    ("qconv2d", [np.zeros((1, 2, 3, 3), np.float32), np.zeros((2, 2, 1, 1), np.int8)], {},
     "input must be i8 or u8"),
    ("qlinear", [np.zeros((2, 4), np.int8), np.zeros((4, 3), np.int8), np.zeros(3, np.int64)], {},
     "bias must be i32"),
    ("requantize", [np.zeros(4, np.int32), np.zeros(2, np.int32), np.zeros(2, np.int32)],
     {"axis": 0}, "per-axis multiplier"),
    ("requantize", [np.zeros(4, np.int32), np.zeros((), np.int32), np.zeros((), np.int32)],
     {"out_dtype": "f32"}, "out_dtype must be one of"),
    ("shiftmax", [np.zeros((2, 4), np.int32)], {"mult": 1, "shift": 70}, "shift must be in"),
    ("igelu", [np.zeros(4, np.int32)], {"mult": 1, "shift": 1}, "input must be"),
])
def test_bad_integer_op_inputs_say_why(op, xs, attrs, msg):
    with pytest.raises(ShapeError, match=msg):
        run(op, *xs, **attrs)
