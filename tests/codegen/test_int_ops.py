"""The integer-only ops compiled through TVM equal `interp` bit for bit (values and dtypes).

    op graph --vcompile.compile(-O0 | -O2)--> library;  library(x) == interp.run(g, x)  exactly

Cases share builds where they can (one multi-output graph per family); hypothesis draws
shapes, zero points and requantization parameters for the contractions, few examples
each since every example is a TVM build. The fused groups of the `fuse` pass
(qconv2d/qlinear + requantize, igelu + requantize, ilayernorm + requantize) must build as
one kernel each. The arm64 build, run under qemu, must give the x86 build's bits.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcompile.ir import interp
from vcompile.ir.builder import Builder
from vcompile.ir.graph import Graph
from vcompile.ir.ops.integer import INTEGER_OPS, dyadic

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm

rng = np.random.default_rng(0)
FEW = settings(max_examples=4, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def i8(*s: int, r: np.random.Generator = rng) -> np.ndarray:
    return r.integers(-128, 128, s).astype(np.int8)


def u8(*s: int, r: np.random.Generator = rng) -> np.ndarray:
    return r.integers(0, 256, s).astype(np.uint8)


def i32(*s: int, lo: int = -1000, hi: int = 1000, r: np.random.Generator = rng) -> np.ndarray:
    return r.integers(lo, hi, s).astype(np.int32)


def assert_bit_exact(g: Graph, feeds: list[np.ndarray], opt_level: int = 2, **kw: Any) -> Any:
    import vcompile
    m = vcompile.compile(g, opt_level=opt_level, **kw)
    got, want = m(*feeds), interp.run(g, *feeds)
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.dtype == b.dtype and a.shape == b.shape, (k, a.dtype, a.shape, b.dtype, b.shape)
        bad = np.flatnonzero(a != b)
        assert bad.size == 0, (f"output {k} ({g.outputs[k].hint}): {bad.size} of {a.size} differ, "
                               f"first at {bad[0]}: {a.flat[bad[0]]} != {b.flat[bad[0]]}")
    return m


def _requant(bb: Builder, y: Any, real: Any, **kw: Any) -> Any:
    m, s = dyadic(real)
    return bb.emit("requantize", y, bb.const(m), bb.const(s), **kw)


def every_op_graph() -> tuple[Graph, list[np.ndarray]]:
    """One graph with every integer op, zero points everywhere, a per-channel requantize
    with a ReLU clip, u8 and i8 operands, broadcasting qadd/qmul and qmatmul."""
    bb = Builder("ints")
    x = bb.input((1, 8, 6, 6), "i8", hint="x")
    y = bb.emit("qconv2d", x, bb.const(i8(16, 8, 3, 3)), bb.const(i32(16)), pads=(1, 1, 1, 1), x_zp=3)
    r = _requant(bb, y, rng.random(16) * 1e-3, zero_point=-2, clip=(-2, 127))
    xl = bb.input((2, 5, 12), "u8", hint="xl")
    lin = bb.emit("qlinear", xl, bb.const(i8(12, 7)), bb.const(i32(7)), x_zp=128)
    lr = _requant(bb, lin, 0.0123, axis=-1)
    mm = bb.emit("qmatmul", bb.input((2, 1, 5, 9), "i8", hint="a"), bb.input((3, 9, 4), "u8", hint="b"),
                 a_zp=2, b_zp=100)
    att = bb.emit("qmatmul", bb.input((2, 3, 7, 18), "u8", hint="p"),
                  bb.input((2, 3, 18, 20), "i8", hint="v"), a_zp=5)  # VNNI: i8 right operand, zp 0
    qa = bb.emit("qadd", lr, bb.input((7,), "i8", hint="c"), a_mult=12345, b_mult=23456, shift=15,
                 a_zp=1, b_zp=-3, zero_point=4)
    qm = bb.emit("qmul", lr, bb.input((5, 1), "i8", hint="d"), mult=1 << 20, shift=27, a_zp=1,
                 b_zp=-3, zero_point=-4, out_dtype="u8")
    sm = bb.emit("shiftmax", bb.input((2, 3, 17), "i32", hint="s"), mult=1518500250, shift=40)
    ge = bb.emit("igelu", bb.input((4, 33), "i8", hint="ge"), x_zp=2, mult=1 << 29, shift=30)
    ln = bb.emit("ilayernorm", bb.input((2, 5, 24), "i8", hint="ln"), bb.const(i32(24, lo=-300, hi=300)),
                 bb.const(i32(24, lo=-3000, hi=3000)), x_zp=1, eps=5)
    g = bb.build(y, r, lr, mm, att, qa, qm, sm, ge, ln)
    feeds = [i8(1, 8, 6, 6), u8(2, 5, 12), i8(2, 1, 5, 9), u8(3, 9, 4), u8(2, 3, 7, 18), i8(2, 3, 18, 20),
             i8(7), i8(5, 1),
             i32(2, 3, 17, lo=-20000, hi=20000), i8(4, 33), i8(2, 5, 24)]
    return g, feeds


@pytest.mark.parametrize("opt_level", [0, 2])
def test_every_integer_op_is_bit_exact(opt_level: int) -> None:
    g, feeds = every_op_graph()
    assert {n.op for n in g.nodes} == INTEGER_OPS
    assert_bit_exact(g, feeds, opt_level)


def test_every_integer_op_has_a_rule() -> None:
    from vcompile.codegen.emit.relax import EMIT, to_relax  # noqa: F401  (registers the rules)
    assert sorted(INTEGER_OPS - set(EMIT)) == []


def test_convs_grouped_depthwise_strided_dilated() -> None:
    bb = Builder("convs")
    x = bb.input((2, 8, 9, 7), "u8", hint="x")
    dw = bb.emit("qconv2d", x, bb.const(i8(8, 1, 3, 3)), bb.const(i32(8)), groups=8, x_zp=117,
                 strides=(2, 1), pads=(1, 0, 2, 1))
    gr = bb.emit("qconv2d", x, bb.const(i8(6, 4, 2, 3)), groups=2, x_zp=5, dilations=(2, 1),
                 pads=(2, 2, 0, 1))
    pw = bb.emit("qconv2d", x, bb.const(i8(5, 8, 1, 1)), bb.const(i32(5)), strides=(2, 2), x_zp=0)
    g = bb.build(dw, gr, pw)
    assert_bit_exact(g, [u8(2, 8, 9, 7)])


def test_extreme_values_saturate_like_the_eval() -> None:
    """Accumulators near the i32 range, shifts of 0 and 62, clips and every out dtype."""
    bb = Builder("edges")
    x = bb.input((4, 64), "i8", hint="x")
    full = bb.emit("qlinear", x, bb.const(np.full((64, 3), -128, np.int8)), x_zp=127)
    outs = [full]
    for dt, shift, mult in (("i8", 0, 1), ("u8", 62, 2 ** 31 - 1), ("i16", 20, 12345), ("i32", 1, 3)):
        outs.append(bb.emit("requantize", full, bb.const(np.array([mult], np.int32)),
                            bb.const(np.array([shift], np.int32)), axis=-1, out_dtype=dt))
    outs.append(bb.emit("requantize", full, bb.const(np.int32(1 << 30)), bb.const(np.int32(12)),
                        zero_point=3, clip=(-5, 9)))
    g = bb.build(*outs)
    feeds = [np.concatenate([np.full((2, 64), -128, np.int8), i8(2, 64)])]
    assert_bit_exact(g, feeds)


@st.composite
def contraction_cases(draw: Any) -> tuple[Graph, list[np.ndarray]]:
    seed = draw(st.integers(0, 2 ** 16))
    r = np.random.default_rng(seed)
    udt = draw(st.sampled_from(["i8", "u8"]))
    lo, hi = (-128, 127) if udt == "i8" else (0, 255)
    zp = draw(st.integers(lo, hi))
    mk = (lambda *s: i8(*s, r=r)) if udt == "i8" else (lambda *s: u8(*s, r=r))
    bb = Builder("case")
    if draw(st.booleans()):
        c, o = draw(st.integers(1, 6)), draw(st.integers(1, 9))
        groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0 and o % g == 0]))
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        h, w = draw(st.integers(kh, 8)), draw(st.integers(kw, 8))
        x = bb.input((1, c, h, w), udt, hint="x")
        y = bb.emit("qconv2d", x, bb.const(i8(o, c // groups, kh, kw, r=r)), bb.const(i32(o, r=r)),
                    groups=groups, x_zp=zp, strides=(draw(st.integers(1, 2)),) * 2,
                    pads=tuple(draw(st.lists(st.integers(0, 2), min_size=4, max_size=4))))
        feeds, axis, ch = [mk(1, c, h, w)], 1, o
    else:
        m, k, n = draw(st.integers(1, 20)), draw(st.integers(1, 70)), draw(st.integers(1, 40))
        x = bb.input((m, k), udt, hint="x")
        y = bb.emit("qlinear", x, bb.const(i8(k, n, r=r)), bb.const(i32(n, r=r)), x_zp=zp)
        feeds, axis, ch = [mk(m, k)], -1, n
    per = draw(st.booleans())
    real = r.random(ch if per else 1) * 10.0 ** draw(st.integers(-5, -1))
    out = draw(st.sampled_from(["i8", "u8", "i16"]))
    zq = draw(st.integers(-20, 20)) if out != "u8" else draw(st.integers(0, 40))
    yq = _requant(bb, y, real, axis=axis, zero_point=zq, out_dtype=out,
                  clip=(zq, 100) if draw(st.booleans()) else ())
    return bb.build(yq), feeds


@FEW
@given(contraction_cases())
def test_contraction_requantize_fused_is_bit_exact(case: tuple[Graph, list[np.ndarray]]) -> None:
    g, feeds = case
    assert_bit_exact(g, feeds)


@st.composite
def nonlinear_cases(draw: Any) -> tuple[Graph, list[np.ndarray]]:
    """igelu over every i8 value (or a sample of i16), ilayernorm and shiftmax on drawn
    shapes, each with drawn fixed-point parameters."""
    r = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    f = draw(st.integers(4, 16))
    bb = Builder("nl")
    wide = draw(st.booleans())
    g_in = bb.input((2, 256) if not wide else (4, 1000), "i8" if not wide else "i16", hint="g")
    ge = bb.emit("igelu", g_in, x_zp=draw(st.integers(-5, 5)), mult=draw(st.integers(1, 2 ** 31 - 1)),
                 shift=draw(st.integers(20, 40)), frac_bits=f)
    gv = np.arange(-128, 128, dtype=np.int8)[None].repeat(2, 0) if not wide else \
        r.integers(-2 ** 15, 2 ** 15, (4, 1000)).astype(np.int16)
    rows, c = draw(st.integers(1, 5)), draw(st.integers(1, 40))
    naxes = draw(st.sampled_from([0, 1]))  # over (c, 3) or over c (channel-first)
    gamma = i32(*((c, 1) if naxes == 0 else (c,)), lo=1, hi=5000, r=r)
    ln = bb.emit("ilayernorm", bb.input((rows, c, 3), "i8", hint="ln"), bb.const(gamma), axis=1,
                 naxes=naxes, x_zp=draw(st.integers(-3, 3)), eps=draw(st.integers(0, 1000)),
                 frac_bits=draw(st.integers(4, 14)))
    sm = bb.emit("shiftmax", bb.input((rows, c), "i32", hint="s"),
                 mult=draw(st.integers(2 ** 28, 2 ** 31 - 1)), shift=draw(st.integers(30, 45)),
                 frac_bits=f, out_bits=draw(st.sampled_from([7, 8])))
    feeds = [gv, i8(rows, c, 3, r=r), i32(rows, c, lo=-2 ** 20, hi=2 ** 20, r=r)]
    return bb.build(ge, ln, sm), feeds


@FEW
@given(nonlinear_cases())
def test_nonlinear_ops_are_bit_exact(case: tuple[Graph, list[np.ndarray]]) -> None:
    g, feeds = case
    assert_bit_exact(g, feeds)


def test_fused_groups_are_one_kernel_each_and_bit_exact() -> None:
    from vcompile import passes as P
    bb = Builder("groups")
    x = bb.input((1, 4, 8, 8), "i8", hint="x")
    c = _requant(bb, bb.emit("qconv2d", x, bb.const(i8(8, 4, 3, 3)), bb.const(i32(8)), pads=(1,) * 4,
                             x_zp=-3), rng.random(8) * 1e-3, clip=(0, 127))
    t = bb.input((6, 16), "i8", hint="t")
    lin = _requant(bb, bb.emit("qlinear", t, bb.const(i8(16, 12)), bb.const(i32(12)), x_zp=4), 0.004,
                   axis=-1)
    u = bb.input((6, 12), "i8", hint="u")  # (after qlinear, igelu would join its group)
    ge = _requant(bb, bb.emit("igelu", u, mult=1 << 29, shift=30, x_zp=0), 1 / 2 ** 14, axis=-1)
    ln = _requant(bb, bb.emit("ilayernorm", lin, bb.const(i32(12, lo=100, hi=4000)), bb.const(i32(12)),
                              eps=10), 2.0 ** -12, axis=-1)
    g = bb.build(c, ge, ln)
    fused = P.run(g, ("fuse",))
    kernels = sorted(str(n.attrs["kernel"]) for n in fused.nodes if n.region is not None)
    assert kernels == ["igelu_requantize", "ilayernorm_requantize", "qconv2d_requantize",
                       "qlinear_requantize"], kernels
    m = assert_bit_exact(fused, [i8(1, 4, 8, 8), i8(6, 16), i8(6, 12)], opt_level=1)
    assert m.meta["fusion"] == "vcompile" and m.meta["kernels"] == 4


def test_int8_data_movement_builds() -> None:
    bb = Builder("moves")
    x = bb.input((1, 4, 6, 6), "i8", hint="x")
    p = bb.emit("pad", x, pads=(0, 0, 1, 1, 0, 0, 1, 1), value=-7.0)
    mp = bb.emit("max_pool2d", p, kernel=(3, 3), strides=(2, 2))
    t = bb.emit("transpose", mp, perm=(0, 2, 3, 1))
    rs = bb.emit("reshape", t, shape=(1, -1))
    cat = bb.emit("concat", rs, bb.emit("reshape", x, shape=(1, -1)), axis=1)
    g = bb.build(cat)
    assert_bit_exact(g, [i8(1, 4, 6, 6)])


def test_isqrt_is_the_exact_floor() -> None:
    import math

    import tvm
    from tvm import te

    from vcompile.codegen.emit.int import isqrt
    k = np.random.default_rng(1).integers(0, 3037000499, 3000, dtype=np.int64)
    v = np.concatenate([np.arange(0, 5000), k * k, k * k - 1, k * k + 1,
                        np.array([2 ** 62, 2 ** 63 - 1, 2 ** 63 - 2])]).astype(np.int64)
    v = v[v >= 0]
    p = te.placeholder((v.size,), "int64", "v")
    f = tvm.compile(te.create_prim_func([p, isqrt(p)]), "llvm")
    out = tvm.runtime.tensor(np.zeros_like(v))
    f(tvm.runtime.tensor(v), out)
    want = np.array([math.isqrt(int(a)) for a in v], np.int64)
    assert np.array_equal(out.numpy(), want)


NEEDS_QEMU = pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-g++") is None,
    reason="needs qemu-user and g++-aarch64-linux-gnu (Debian packages, see Makefile APT_PACKAGES)")


@NEEDS_QEMU
def test_arm64_int8_graph_matches_x86_bit_for_bit(tmp_path: Path) -> None:
    import vcompile
    from vcompile.codegen.deploy.bundle import write_bundle
    bb = Builder("int8_arm")
    x = bb.input((1, 3, 8, 8), "i8", hint="x")
    c = _requant(bb, bb.emit("qconv2d", x, bb.const(i8(4, 3, 3, 3)), bb.const(i32(4)), strides=(2, 2),
                             pads=(1,) * 4, x_zp=-1), rng.random(4) * 1e-2, clip=(0, 127))
    tok = bb.emit("transpose", bb.emit("reshape", c, shape=(1, 4, 16)), perm=(0, 2, 1))  # [1,16,4]
    q = _requant(bb, bb.emit("qlinear", tok, bb.const(i8(4, 16)), bb.const(i32(16))), 0.01, axis=-1)
    sm = bb.emit("shiftmax", q, mult=1518500250, shift=35)
    ln = bb.emit("ilayernorm", q, bb.const(i32(16, lo=100, hi=4000)), eps=3)
    g = bb.build(sm, ln)
    feed = i8(1, 3, 8, 8)
    want = assert_bit_exact(g, [feed])(feed)
    lib = vcompile.compile(g, target="arm64").export(tmp_path / "m.so")
    write_bundle(lib, tmp_path / "b")
    b = tmp_path / "b"
    np.save(tmp_path / "x.npy", feed)
    r = subprocess.run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(b / "runner"), "-n", "1",
                        "--warmup", "0", "-o", str(tmp_path), str(tmp_path / "x.npy")],
                       capture_output=True, text=True, timeout=600, env={"TVM_NUM_THREADS": "2"})
    assert r.returncode == 0, r.stderr
    from vcompile.codegen.build import io_names
    for name, w in zip(io_names(g)[1], want, strict=True):
        got = np.load(tmp_path / f"{name}.npy")
        assert got.dtype == w.dtype and np.array_equal(got, w), name


@pytest.mark.parametrize("kind", ["qlinear", "qconv2d"])
def test_vnni_kernels_are_tensorized(kind: str) -> None:
    """On an AVX-512 VNNI target the contraction's inner 16x4 loops become `vpdpbusd`."""
    from tvm import te

    from vcompile.codegen.cpu.schedules import schedule
    from vcompile.codegen.cpu.schedules.tiles import CpuTiles
    from vcompile.codegen.emit import vnni as I
    comp = te.placeholder((32,), "int32", "comp")
    if kind == "qlinear":
        x, wp = te.placeholder((1, 30, 40), "int8", "x"), te.placeholder((1, 2, 10, 16, 4), "int8", "wp")
        comp = te.placeholder((1, 32), "int32", "comp")
        y = I.qgemm(x, wp, comp, 32, 128, 10)
    else:
        x, wp = te.placeholder((1, 8, 9, 9), "uint8", "x"), te.placeholder((2, 2, 3, 3, 16, 4), "int8", "wp")
        y = I.qconv(x, wp, comp, 32, [1, 1], [1, 1, 1, 1], [1, 1], 7, 0, 9)
    text = schedule(te.create_prim_func([x, wp, comp, y]), CpuTiles(16, 1, 14, 2, vnni=True)).mod.script()
    assert text.count("llvm.x86.avx512.vpdpbusd.512") == 1 and "T.parallel" in text
