"""Emission rules for max_pool{1,2,3}d and avg_pool{1,2,3}d.

    max_pool(x) / avg_pool(x) => pad(x, lowest | 0, begins, ends + ceil overhang)
                                 -> R.nn.*_pool with no padding (and, for avg, times a
                                 constant K / count that `windows.PoolWindow` computes)
    max_pool(x) {with_indices} => a te argmax reduction over the kernel taps

Window geometry and counts come from the numpy reference's own `PoolWindow`, evaluated at
compile time on static dims, so ceil mode and count_include_pad follow `interp`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tvm import relax, topi

from vcompile.codegen.emit.common import LAYOUT, compute_dtype, from_compute, to_compute, typed_scalar
from vcompile.codegen.emit.relax import TVM_DTYPE, Ctx, rule
from vcompile.ir.graph import Node
from vcompile.ir.ops.windows import PoolWindow, flat_strides

R = relax.op


def _window(n: Node) -> Any:
    sp = [int(d) for d in n.inputs[0].shape[2:]]  # type: ignore[arg-type]
    return PoolWindow(n.op, sp, n.attrs)


def _pre_pad(ctx: Ctx, n: Node, x: Any, w: Any, value: Any) -> Any:
    over = [max(0, (o - 1) * s + (k - 1) * d + 1 - (sz + b + e))
            for o, s, k, d, sz, b, e in zip(w.out, w.s, w.k, w.d, w.in_sp, w.pb, w.pe, strict=False)]
    lo, hi = list(w.pb), [e + v for e, v in zip(w.pe, over, strict=False)]
    if not any(lo) and not any(hi):
        return x
    return ctx.emit_te(topi.nn.pad, x, [0, 0] + lo, [0, 0] + hi, value)


@rule("max_pool1d", "max_pool2d", "max_pool3d")
def _max_pool(ctx: Ctx, n: Node, a: list) -> Any:
    if n.attrs["with_indices"]:
        return _max_pool_indices(ctx, n, a)
    dt = n.inputs[0].dtype
    w = _window(n)
    lowest = -np.inf if dt[0] == "f" else int(np.iinfo(TVM_DTYPE[dt]).min)
    x = _pre_pad(ctx, n, a[0], w, typed_scalar(lowest, dt))
    if dt[0] == "f":
        # NaN: R.nn.max_pool's reducer drops NaN and starts from the lowest finite value
        # (a window of -inf gave -3.4e38); this one propagates NaN and starts from -inf.
        return ctx.emit_te(lambda t: _nan_max_pool(t, w), x, primfunc_name_hint=n.op)
    fn = {1: R.nn.max_pool1d, 2: R.nn.max_pool2d, 3: R.nn.max_pool3d}[len(w.k)]
    return ctx.emit(fn(x, list(w.k), list(w.s), [0] * 2 * len(w.k), list(w.d),
                       layout=LAYOUT[len(w.k)][0]))


def _nan_max_pool(x: Any, w: Any) -> Any:
    """Max over each window of the already padded `x` (stride, dilation, no padding)."""
    from tvm import te

    from vcompile.codegen.emit.basic import nan_reducer
    rk = [te.reduce_axis((0, k), name=f"k{i}") for i, k in enumerate(w.k)]
    red = nan_reducer(True)

    def body(nb: Any, ch: Any, *o: Any) -> Any:
        sp = [o[i] * w.s[i] + rk[i] * w.d[i] for i in range(len(w.k))]
        return red(x[(nb, ch, *sp)], axis=rk)
    return te.compute([x.shape[0], x.shape[1], *w.out], body, name="max_pool")


@rule("avg_pool1d", "avg_pool2d", "avg_pool3d")
def _avg_pool(ctx: Ctx, n: Node, a: list) -> Any:
    dt = n.inputs[0].dtype
    w = _window(n)
    x = _pre_pad(ctx, n, to_compute(ctx, a[0], dt), w, typed_scalar(0.0, compute_dtype(dt)))
    fn = {1: R.nn.avg_pool1d, 2: R.nn.avg_pool2d, 3: R.nn.avg_pool3d}[len(w.k)]
    y = ctx.emit(fn(x, list(w.k), list(w.s), [0] * 2 * len(w.k), list(w.d),
                    count_include_pad=True, layout=LAYOUT[len(w.k)][0]))
    if n.attrs["count_include_pad"]:
        cnt = w.count([-b for b in w.pb], [s + e for s, e in zip(w.in_sp, w.pe, strict=False)])
    else:
        cnt = w.count([0] * len(w.k), w.in_sp)
    factor = float(np.prod(w.k)) / np.maximum(cnt, 1)
    if not np.all(factor == 1.0):
        y = ctx.emit(R.multiply(y, ctx.const(factor, compute_dtype(dt))))
    return from_compute(ctx, y, dt)




def _max_pool_indices(ctx: Ctx, n: Node, a: list) -> Any:
    """MaxPool with ONNX's Indices: an argmax reduction over the kernel taps.

    NOTE: as the reference: the first in-bounds tap (row-major kernel order) holding
    the window's maximum wins; its index is flattened over (N*C, spatial...), spatial
    row- or column-major by storage_order; a window with no in-bounds tap gives 0, -1.
    """
    from tvm import te, tirx
    w = _window(n)
    col = int(n.attrs["storage_order"]) == 1  # type: ignore[arg-type]
    st = flat_strides(w.in_sp, column_major=col)
    kk, plane_size = int(np.prod(w.k)), int(np.prod(w.in_sp))
    sent = tirx.const(1 << 30, "int64")

    def lowest(dt: Any) -> Any:  # -inf for floats: an out-of-bounds tap never beats one
        return tirx.const(-np.inf, dt) if str(dt).startswith(("float", "bfloat")) else tirx.min_value(dt)

    def combine(x: Any, y: Any) -> Any:
        # the first in-bounds tap is taken whatever its value (-inf, NaN), as `interp`
        first = tirx.And(x[1] == sent, y[1] != sent)
        take = tirx.Or(first, tirx.Or(y[0] > x[0], tirx.And(y[0] == x[0], y[1] < x[1])))
        return tirx.Select(take, y[0], x[0]), tirx.Select(take, y[1], x[1])

    def identity(t0: Any, t1: Any) -> Any:
        return lowest(t0), tirx.const(1 << 30, t1)
    argmax = te.comm_reducer(combine, identity, name="argmax_tap")

    def coords(o: Any, tap: Any) -> tuple[list[Any], Any]:
        cs, ok, rest = [], tirx.const(True, "bool"), tap
        for i in reversed(range(len(w.k))):
            p = tirx.floormod(rest, w.k[i])
            rest = tirx.floordiv(rest, w.k[i])
            c = o[i] * w.s[i] - w.pb[i] + p * w.d[i]
            ok = tirx.And(ok, tirx.And(c >= 0, c < w.in_sp[i]))
            cs.insert(0, c)
        return cs, ok

    def f(x: te.Tensor) -> Any:
        rk = te.reduce_axis((0, kk), name="tap")

        def body(nb: Any, ch: Any, *o: Any) -> Any:
            cs, ok = coords(o, rk)
            safe = [tirx.max(tirx.min(c, w.in_sp[i] - 1), 0) for i, c in enumerate(cs)]
            v = tirx.if_then_else(ok, x[(nb, ch, *safe)], lowest(x.dtype))
            return argmax((v, tirx.Select(ok, tirx.Cast("int64", rk), sent)), axis=rk)
        shape = [x.shape[0], x.shape[1], *w.out]
        val, tap = te.compute(shape, body, name="max_pool_argmax")

        def index(nb: Any, ch: Any, *o: Any) -> Any:
            t = tap[(nb, ch, *o)]
            cs, _ = coords(o, t)
            flat = (nb * x.shape[1] + ch).astype("int64") * plane_size
            for c, stride in zip(cs, st, strict=False):
                flat = flat + c.astype("int64") * stride
            return tirx.Select(t == sent, tirx.const(-1, "int64"), flat)
        best = te.compute(shape, lambda *i: tirx.Select(tap[i] == sent, tirx.const(0, x.dtype), val[i]),
                          name="max_pool_value")
        return [best, te.compute(shape, index, name="max_pool_index")]
    t = ctx.emit_te(f, a[0])
    return ctx.emit(relax.TupleGetItem(t, 0)), ctx.emit(relax.TupleGetItem(t, 1))
