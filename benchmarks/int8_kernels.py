"""int8 kernels against fp32 kernels in the same compiler, per kernel, interleaved.

    TVM_NUM_THREADS=2 .venv/bin/python benchmarks/int8_kernels.py [--repeat 30]

Shapes: deit_tiny's linears ([197,192]x[192,576] qkv, [197,192]x[192,768] fc1,
[197,768]x[768,192] fc2), its attention matmuls (3 heads, Q.K^T i8 x i8, P.V u8 x i8),
resnet18's convs (3x3 64->64 at 56x56, 3x3 256->256 at 14x14, 1x1 stride 2 128->256 at
28x28) and deit's nonlinearities (softmax, layer_norm, gelu against shiftmax, ilayernorm
and igelu, the last two + requantize). Per shape two single-kernel graphs built at -O2:
  fp32  linear / conv2d with bias, matmul (the packed, register-tiled float kernels)
  int8  qlinear / qconv2d with bias / qmatmul + requantize to i8, one fused kernel
Each is called through the Relax VM on device tensors (no numpy conversion), round-robin
after warm-up; median ms. The int8 output is checked bit for bit against `interp`.
Writes benchmarks/int8_kernels.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
HERE = Path(__file__).resolve().parent

LINEARS = [("deit qkv", 197, 192, 576), ("deit fc1", 197, 192, 768), ("deit fc2", 197, 768, 192)]
MATMULS = [("deit q.kT (3 heads)", 3, 197, 64, 197, "i8"), ("deit p.v (3 heads)", 3, 197, 197, 64, "u8")]
NONLINEAR = [("deit softmax/shiftmax [3,197,197]", "softmax", (3, 197, 197)),
             ("deit layer_norm/ilayernorm+rq [197,192]", "layer_norm", (197, 192)),
             ("deit gelu/igelu+rq [197,768]", "gelu", (197, 768))]
CONVS = [("resnet 3x3 64->64 @56", 64, 64, 56, 3, 1), ("resnet 3x3 256->256 @14", 256, 256, 14, 3, 1),
         ("resnet 1x1/2 128->256 @28", 128, 256, 28, 1, 2)]


def graphs(case: tuple, rng: np.random.Generator) -> tuple[Any, Any, list, list, float]:
    """(fp32 graph, int8 graph, fp32 feeds, int8 feeds, GOP) for one shape."""
    from vcompile.ir.builder import Builder
    from vcompile.ir.ops.integer import dyadic
    f32, i8 = Builder("fp32"), Builder("int8")
    if isinstance(case[1], str):
        return _nonlinear(case, rng)
    if isinstance(case[-1], str):  # a matmul
        _, h, m, k, n, adt = case
        a, b = rng.standard_normal((h, m, k), np.float32), rng.standard_normal((h, k, n), np.float32)
        yf = f32.emit("matmul", f32.input(a.shape, hint="a"), f32.input(b.shape, hint="b"))
        yi = i8.emit("qmatmul", i8.input(a.shape, adt, hint="a"), i8.input(b.shape, "i8", hint="b"))
        lo = -128 if adt == "i8" else 0
        ai = rng.integers(lo, lo + 256, a.shape).astype(np.int8 if adt == "i8" else np.uint8)
        bi = rng.integers(-128, 128, b.shape).astype(np.int8)
        mult, shift = dyadic(np.array([1e-4]))
        yq = i8.emit("requantize", yi, i8.const(mult), i8.const(shift), out_dtype="i8")
        return f32.build(yf), i8.build(yq), [a, b], [ai, bi], 2 * h * m * k * n / 1e9
    if len(case) == 4:
        _, m, k, n = case
        x, w = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
        yf = f32.emit("linear", f32.input((m, k), hint="x"), f32.const(w), f32.const(np.zeros(n, np.float32)))
        yi = i8.emit("qlinear", i8.input((m, k), "i8", hint="x"), i8.const(_q(w)),
                     i8.const(rng.integers(-999, 999, n).astype(np.int32)), x_zp=0)
        shape, axis, ch, gop = (m, k), -1, n, 2 * m * k * n / 1e9
    else:
        _, c, o, hw, kk, s = case
        x = rng.standard_normal((1, c, hw, hw), np.float32)
        w = rng.standard_normal((o, c, kk, kk), np.float32)
        pads = (kk // 2,) * 4
        yf = f32.emit("conv2d", f32.input(x.shape, hint="x"), f32.const(w),
                      f32.const(np.zeros(o, np.float32)), strides=(s, s), pads=pads)
        yi = i8.emit("qconv2d", i8.input(x.shape, "i8", hint="x"), i8.const(_q(w)),
                     i8.const(rng.integers(-999, 999, o).astype(np.int32)), strides=(s, s), pads=pads)
        shape, axis, ch = x.shape, 1, o
        gop = 2 * c * o * kk * kk * (hw // s) ** 2 / 1e9
    mult, shift = dyadic(rng.random(ch) * 1e-3 + 1e-4)
    yq = i8.emit("requantize", yi, i8.const(mult), i8.const(shift), axis=axis, out_dtype="i8")
    xi = rng.integers(-128, 128, shape).astype(np.int8)
    return f32.build(yf), i8.build(yq), [x], [xi], gop


def _nonlinear(case: tuple, rng: np.random.Generator) -> tuple[Any, Any, list, list, float]:
    """The float op against its integer twin (+ requantize to i8 where the twin gives i32)."""
    from vcompile.ir.builder import Builder
    from vcompile.ir.ops.integer import dyadic
    _, op, shape = case
    f32, i8 = Builder("fp32"), Builder("int8")
    x = rng.standard_normal(shape, np.float32)
    xf = f32.input(shape, hint="x")
    c = shape[-1]
    if op == "softmax":
        yf = f32.emit("softmax", xf, axis=-1)
        yi = i8.emit("shiftmax", i8.input(shape, "i32", hint="x"), mult=1518500250, shift=40)
        xi = rng.integers(-30000, 30000, shape).astype(np.int32)
    else:
        xin = i8.input(shape, "i8", hint="x")
        if op == "layer_norm":
            ones, zeros = np.ones(c, np.float32), np.zeros(c, np.float32)
            yf = f32.emit("layer_norm", xf, f32.const(ones), f32.const(zeros))
            yi = i8.emit("ilayernorm", xin, i8.const(rng.integers(100, 4000, c).astype(np.int32)),
                         i8.const(rng.integers(-999, 999, c).astype(np.int32)), eps=10)
        else:
            yf = f32.emit("gelu", xf)
            yi = i8.emit("igelu", xin, mult=1 << 29, shift=30)
        mult, shift = dyadic(np.array([2.0 ** -14]))
        yi = i8.emit("requantize", yi, i8.const(mult), i8.const(shift), out_dtype="i8")
        xi = rng.integers(-128, 128, shape).astype(np.int8)
    return f32.build(yf), i8.build(yi), [x], [xi], 0.0


def _q(w: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(w * 40), -127, 127).astype(np.int8)


def vm_call(m: Any, feeds: list[np.ndarray]) -> Any:
    import tvm
    args = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in feeds]
    fn = m._main  # the VM function itself: no numpy conversion in the timing
    return lambda: fn(*args)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from vcompile.runtime.bench import set_threads
    set_threads(args.threads)
    import vcompile
    from vcompile import passes as P
    from vcompile.ir import interp
    from vcompile.runtime.bench import time_interleaved
    rng = np.random.default_rng(0)
    rows, fns = [], {}
    for case in LINEARS + MATMULS + CONVS + NONLINEAR:
        gf, gi, xf, xi, gop = graphs(case, rng)
        mf = vcompile.compile(gf, opt_level=2)
        gi = P.run(gi, ("fuse",))
        mi = vcompile.compile(gi, opt_level=2)
        assert mi.meta["kernels"] == 1, (case[0], mi.meta["kernels"])
        assert np.array_equal(mi(*xi)[0], interp.run(gi, *xi)[0]), f"{case[0]}: int8 not bit exact"
        fns[f"{case[0]} fp32"], fns[f"{case[0]} int8"] = vm_call(mf, xf), vm_call(mi, xi)
        rows.append((case[0], gop))
    t = time_interleaved(fns, warmup=3, repeat=args.repeat)
    from vcompile.codegen.cpu.schedules import int8
    lines = ["# int8 kernels against fp32 kernels (same compiler, -O2)", "",
             f"Median ms over {args.repeat} interleaved runs, {args.threads} threads "
             f"(TVM_NUM_THREADS), {os.uname().machine}; int8 = qlinear/qconv2d + requantize as one "
             f"fused kernel, bit-exact with `interp`. int8 kernel path: {int8.describe()}.", "",
             "| kernel | GOP | fp32 ms | int8 ms | int8 speedup | fp32 GOP/s | int8 GOP/s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, gop in rows:
        a, b = t[f"{name} fp32"].median_ms, t[f"{name} int8"].median_ms
        rate = (f"{gop / a * 1e3:.0f} | {gop / b * 1e3:.0f}") if gop else "- | -"
        lines.append(f"| {name} | {gop:.3f} | {a:.3f} | {b:.3f} | {a / b:.2f}x | {rate} |")
    text = "\n".join(lines) + "\n"
    (HERE / "int8_kernels.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
