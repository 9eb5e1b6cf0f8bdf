"""Emission rules for the integer contractions of `ir/ops/integer.py`, bit-exact with their evals.

    qconv2d(x, w, b?)  => pad x with x_zp, sum((x - x_zp) * w) in i32 (+ b)
    qlinear / qmatmul  => sum((a - a_zp) * (b - b_zp)) in i32 (+ b)

|x - zp| <= 255 and |w| <= 128, so one product fits in 2^15 and K products in int32 while
K < 65793; past that int32 wraps exactly as the eval's int64 -> int32 cast does. These
are the generic forms; with CPU tiles on an AVX-512 VNNI target, constant-weight
qlinear/qconv2d (groups 1) and qmatmul with an i8 right operand at zero point 0 go to the
u8 x i8 kernels of `schedules.int8` instead.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tvm import te, tirx

from vcompile.codegen.emit import vnni
from vcompile.codegen.emit.common import attr_int, static_shape
from vcompile.codegen.emit.int import I32
from vcompile.codegen.emit.relax import Ctx, rule
from vcompile.ir.graph import Node


def _shifted(v: Any, zp: int) -> Any:
    return v.astype(I32) - tirx.const(zp, I32) if zp else v.astype(I32)


@rule("qlinear")
def _qlinear(ctx: Ctx, n: Node, a: list) -> Any:
    fast = vnni.emit_qlinear(ctx, n, a)
    if fast is not None:
        return fast
    out, zp = static_shape(n), attr_int(n, "x_zp")
    k = int(n.inputs[1].shape[0])

    def f(x: te.Tensor, w: te.Tensor, *b: te.Tensor) -> te.Tensor:
        r = te.reduce_axis((0, k), "k")
        y = te.compute(out, lambda *i: te.sum(_shifted(x[(*i[:-1], r)], zp) * w[r, i[-1]].astype(I32),
                                              axis=r), name="qlinear")
        if not b:
            return y
        return te.compute(out, lambda *i: y[tuple(i)] + b[0][i[-1]], name="qlinear_bias")
    return ctx.emit_te(f, *a, primfunc_name_hint="qlinear")


@rule("qmatmul")
def _qmatmul(ctx: Ctx, n: Node, a: list) -> Any:
    fast = vnni.emit_qmatmul(ctx, n, a)
    if fast is not None:
        return fast
    out, rank = static_shape(n), n.output.type.rank
    za, zb = attr_int(n, "a_zp"), attr_int(n, "b_zp")
    k = int(n.inputs[0].shape[-1])

    def f(x: te.Tensor, y: te.Tensor) -> te.Tensor:
        bx, by = _bcast_batch(x, rank), _bcast_batch(y, rank)
        r = te.reduce_axis((0, k), "k")
        return te.compute(out, lambda *i: te.sum(
            _shifted(bx(i[:-2], i[-2], r), za) * _shifted(by(i[:-2], r, i[-1]), zb), axis=r),
            name="qmatmul")
    return ctx.emit_te(f, *a, primfunc_name_hint="qmatmul")


def _bcast_batch(t: te.Tensor, rank: int) -> Callable[..., Any]:
    """Index function (batch idx, row, col) of a matmul operand with broadcast batch dims."""
    batch = [int(d) for d in t.shape[:-2]]
    lead = rank - 2 - len(batch)

    def at(bi: Sequence[Any], i: Any, j: Any) -> Any:
        return t[(*[0 if d == 1 else bi[lead + k] for k, d in enumerate(batch)], i, j)]
    return at


@rule("qconv2d")
def _qconv2d(ctx: Ctx, n: Node, a: list) -> Any:
    fast = vnni.emit_qconv2d(ctx, n, a)
    if fast is not None:
        return fast
    out, zp, groups = static_shape(n), attr_int(n, "x_zp"), attr_int(n, "groups")
    s, p, d = (list(map(int, n.attrs[k])) for k in ("strides", "pads", "dilations"))  # type: ignore[union-attr]
    _, cg, kh, kw = (int(v) for v in n.inputs[1].shape)
    ocg = out[1] // groups

    def f(x: te.Tensor, w: te.Tensor, *b: te.Tensor) -> te.Tensor:
        xp = pad_shifted(x, zp, p)
        rc, rh, rw = (te.reduce_axis((0, e), nm) for e, nm in ((cg, "rc"), (kh, "rh"), (kw, "rw")))
        y = te.compute(out, lambda bn, o, i, j: te.sum(
            xp[bn, (o // ocg) * cg + rc if groups > 1 else rc, i * s[0] + rh * d[0], j * s[1] + rw * d[1]]
            * w[o, rc, rh, rw].astype(I32), axis=[rc, rh, rw]), name="qconv2d")
        if not b:
            return y
        return te.compute(out, lambda bn, o, i, j: y[bn, o, i, j] + b[0][o], name="qconv2d_bias")
    return ctx.emit_te(f, *a, primfunc_name_hint="qconv2d")


def pad_shifted(x: te.Tensor, zp: int, pads: Sequence[int], dtype: str = I32,
                offset: int = 0) -> te.Tensor:
    """x - zp + offset as `dtype`, padded by `pads` (top, left, bottom, right) with offset
    (the padding holds x_zp, so it is 0 after the shift)."""
    nb, c, h, w = (int(v) for v in x.shape)
    top, left, bottom, right = pads

    def at(b: Any, ch: Any, i: Any, j: Any) -> Any:
        ii, jj = i - top, j - left
        inside = tirx.all(ii >= 0, ii < h, jj >= 0, jj < w)
        v = x[b, ch, tirx.max(tirx.min(ii, h - 1), 0), tirx.max(tirx.min(jj, w - 1), 0)]
        return tirx.if_then_else(inside, (v.astype(I32) + (offset - zp)).astype(dtype),
                                 tirx.const(offset, dtype))
    return te.compute((nb, c, h + top + bottom, w + left + right), at, name="qconv2d_pad")
