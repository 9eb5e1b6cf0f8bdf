"""The int8 contractions for x86 VNNI, as TE kernels: u8 x i8 -> i32 dot products, 16
columns x 4 deep (`cpu.schedules.int8` has the derivation, the schedule and the
`vpdpbusd` intrinsic).

    qlinear(x, w const, b) {x_zp}
      => A = x + 128 (i8 x) or x (u8 x) as u8 [M', K'],  Wp = w as i8 [N'/16, K'/4, 16, 4]
         C[i, j] = sum_k A[i, k] * Wp[j/16, k/4, j%16, k%4]        (block "qgemm")
         y[i, j] = C[i, j] + comp[j],  comp = b - (x_zp + 128 or x_zp) * sum_k w[k, j]

`emit_qlinear`, `emit_qconv2d` and `emit_qmatmul` return None where the VNNI kernel does
not apply (no VNNI in the build's tiles, weights not constant, ...): `emit.int_linalg`'s
generic rule runs then. Block names are the contract with the schedule.
"""
from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from vcompile.codegen.emit import kernels
from vcompile.codegen.emit.common import const_value
from vcompile.codegen.emit.kernels import KEEP
from vcompile.codegen.emit.relax import np_const

QGEMM_BLOCK, QCONV_BLOCK = "qgemm", "qconv"


def has_vnni(ctx: Any) -> bool:
    t = getattr(ctx, "tiles", None)
    return t is not None and getattr(t, "vnni", False)


def pack_weight(w: np.ndarray) -> np.ndarray:
    """[K, N] i8 -> [N'/16, K'/4, 16, 4], zero-filled past K and N."""
    k, n = w.shape
    kp, npad = kernels.ceil_to(k, 4), kernels.ceil_to(n, 16)
    wpad = np.zeros((kp, npad), np.int8)
    wpad[:k, :n] = w
    return np.ascontiguousarray(wpad.reshape(kp // 4, 4, npad // 16, 16).transpose(2, 0, 3, 1))


def compensation(w: np.ndarray, bias: np.ndarray | None, offset: int) -> np.ndarray:
    """bias - offset * column sums of w [K, N], wrapped to i32 (see the module doc)."""
    comp = -np.int64(offset) * w.astype(np.int64).sum(axis=0)
    if bias is not None:
        comp = comp + bias.astype(np.int64)
    return comp.astype(np.int32)


def qgemm(x: Any, wp: Any, comp: Any, n: int, zp_shift: int, mt: int) -> Any:
    """te: x [B, M, K] i8/u8 -> y [B, M, N] i32 = (x + zp_shift) as u8 . Wp + comp, with
    Wp [B|1, N'/16, K'/4, 16, 4] i8 and comp [B|1, N] (a batch of 1 is shared)."""
    from tvm import te, tirx
    bt, m, k = (int(d) for d in x.shape)
    kp, mp = int(wp.shape[2]) * 4, kernels.ceil_to(m, mt)
    wb, cb = (lambda b: 0) if int(wp.shape[0]) == 1 else (lambda b: b), \
        (lambda b: 0) if int(comp.shape[0]) == 1 else (lambda b: b)
    a = te.compute((bt, mp, kp), lambda b, i, r: tirx.if_then_else(
        tirx.all(i < m, r < k),
        (x[b, tirx.min(i, m - 1), tirx.min(r, k - 1)].astype("int32") + zp_shift).astype("uint8"),
        tirx.const(0, "uint8")), name="qgemm_a", attrs={KEEP: 1})
    ro, ri = te.reduce_axis((0, kp // 4), "ko"), te.reduce_axis((0, 4), "ki")
    c = te.compute((bt, mp, int(wp.shape[1]) * 16), lambda b, i, j: te.sum(
        a[b, i, ro * 4 + ri].astype("int32") * wp[wb(b), j // 16, ro, j % 16, ri].astype("int32"),
        axis=[ro, ri]), name=QGEMM_BLOCK)
    return te.compute((bt, m, n), lambda b, i, j: c[b, i, j] + comp[cb(b), j], name="qgemm_out")


def pack_b(y: Any, zp: int) -> tuple[Any, Any]:
    """Run time: y [B, K, N] i8 (zero point 0) -> (packed [B, N'/16, K'/4, 16, 4] i8,
    column sums [B, N] i32)."""
    from tvm import te, tirx
    bt, k, n = (int(d) for d in y.shape)
    kq, nq = kernels.ceil_to(k, 4) // 4, kernels.ceil_to(n, 16) // 16
    packed = te.compute((bt, nq, kq, 16, 4), lambda b, jo, ko, ji, ki: tirx.if_then_else(
        tirx.all(ko * 4 + ki < k, jo * 16 + ji < n),
        y[b, tirx.min(ko * 4 + ki, k - 1), tirx.min(jo * 16 + ji, n - 1)], tirx.const(0, "int8")),
        name="qgemm_pack_b", attrs={KEEP: 1})
    r = te.reduce_axis((0, k), "r")
    sums = te.compute((bt, n), lambda b, j: te.sum(y[b, r, j].astype("int32"), axis=r), name="qgemm_colsum")
    comp = te.compute((bt, n), lambda b, j: sums[b, j] * tirx.const(-zp, "int32"), name="qgemm_comp")
    return packed, comp


def emit_qmatmul(ctx: Any, n: Any, a: list) -> Any:
    """The VNNI qmatmul where the right operand is i8 with zero point 0 (attention's
    Q.K^T and P.V after our PTQ) and batch dims match; None otherwise."""
    from tvm import relax
    ta, tb = n.inputs[0].type, n.inputs[1].type
    if (not has_vnni(ctx) or tb.dtype != "i8" or int(n.attrs["b_zp"]) != 0 or ta.shape[:-2] != tb.shape[:-2]
            or not (ta.is_static and tb.is_static)):
        return None
    shift = 128 if ta.dtype == "i8" else 0
    code = int(n.attrs["a_zp"]) + shift
    bt = prod(int(d) for d in ta.shape[:-2])
    m, k, nn = int(ta.shape[-2]), int(ta.shape[-1]), int(tb.shape[-1])
    x = ctx.emit(relax.op.reshape(a[0], [bt, m, k]))
    y = ctx.emit(relax.op.reshape(a[1], [bt, k, nn]))
    mt = kernels.row_tile(m, ctx.tiles.rows)

    def bmm(x: Any, y: Any) -> Any:
        wp, comp = pack_b(y, code)
        return qgemm(x, wp, comp, nn, shift, mt)
    out = ctx.emit_te(bmm, x, y, primfunc_name_hint="qmatmul_vnni")
    return ctx.emit(relax.op.reshape(out, ctx.shape(n.output.shape)))


def emit_qlinear(ctx: Any, n: Any, a: list) -> Any:
    """The VNNI qlinear (None where it does not apply: the generic rule runs)."""
    from tvm import relax

    w = const_value(a[1])
    if not has_vnni(ctx) or w is None or not all(v.type.is_static for v in n.inputs):
        return None
    bias = const_value(a[2]) if len(a) == 3 else None
    if len(a) == 3 and bias is None:
        return None
    xdt = n.inputs[0].dtype
    shift = 128 if xdt == "i8" else 0
    zp = int(n.attrs["x_zp"])
    kk, nn = w.shape
    rows = prod(int(d) for d in n.output.shape[:-1])
    x = ctx.emit(relax.op.reshape(a[0], [1, rows, kk]))
    mt = kernels.row_tile(rows, ctx.tiles.rows)
    y = ctx.emit_te(qgemm, x, np_const(pack_weight(w)[None]),
                    np_const(compensation(w, bias, zp + shift)[None]), nn, shift, mt,
                    primfunc_name_hint="qlinear_vnni")
    return ctx.emit(relax.op.reshape(y, ctx.shape(n.output.shape)))


def pack_conv_weight(w: np.ndarray) -> np.ndarray:
    """OIHW i8 -> [O'/16, I'/4, KH, KW, 16, 4], zero-filled past O and I."""
    o, c, kh, kw = w.shape
    op, cp = kernels.ceil_to(o, 16), kernels.ceil_to(c, 4)
    wpad = np.zeros((op, cp, kh, kw), np.int8)
    wpad[:o, :c] = w
    return np.ascontiguousarray(wpad.reshape(op // 16, 16, cp // 4, 4, kh, kw).transpose(0, 2, 4, 5, 1, 3))


def qconv(x: Any, wp: Any, comp: Any, o: int, strides: list[int], pads: list[int],
          dils: list[int], code: int, shift: int, wt: int) -> Any:
    """te: NCHW x i8/u8 -> y i32 [N, O, OH, OW] over activations packed [N, C'/4, H', W', 4]
    as u8 (x + shift; padding holds x_zp's code `code`, channels past C hold 0)."""
    from tvm import te, tirx
    nb, c, h, w = (int(d) for d in x.shape)
    oco, cq, kh, kw = (int(d) for d in wp.shape[:4])
    (sh, sw), (dh, dw) = strides, dils
    oh = kernels.conv_out_size(h, kh, sh, dh, pads[0], pads[2])
    ow = kernels.conv_out_size(w, kw, sw, dw, pads[1], pads[3])
    owp = kernels.ceil_to(ow, wt)
    hp, wpd = (oh - 1) * sh + dh * (kh - 1) + 1, (owp - 1) * sw + dw * (kw - 1) + 1

    def at(b: Any, co: Any, i: Any, j: Any, ci: Any) -> Any:
        ii, jj, ch = i - pads[0], j - pads[1], co * 4 + ci
        inside = tirx.all(ii >= 0, ii < h, jj >= 0, jj < w)
        v = x[b, tirx.min(ch, c - 1), tirx.max(tirx.min(ii, h - 1), 0), tirx.max(tirx.min(jj, w - 1), 0)]
        v = tirx.if_then_else(inside, (v.astype("int32") + shift).astype("uint8"), tirx.const(code, "uint8"))
        return tirx.if_then_else(ch < c, v, tirx.const(0, "uint8"))
    # NOTE: kept (not inlined): the tensorized block reads it 4 bytes at a time
    xq = te.compute((nb, cq, hp, wpd, 4), at, name="qconv_pack", attrs={KEEP: 1})
    rco, rh, rw, rci = (te.reduce_axis((0, e), nm)
                        for e, nm in ((cq, "rco"), (kh, "rh"), (kw, "rw"), (4, "rci")))
    y = te.compute((nb, oco * 16, oh, owp), lambda b, oc, i, j: te.sum(
        xq[b, rco, i * sh + rh * dh, j * sw + rw * dw, rci].astype("int32")
        * wp[oc // 16, rco, rh, rw, oc % 16, rci].astype("int32"), axis=[rco, rh, rw, rci]), name=QCONV_BLOCK)
    return te.compute((nb, o, oh, ow), lambda b, oc, i, j: y[b, oc, i, j] + comp[oc], name="qconv_out")


def emit_qconv2d(ctx: Any, n: Any, a: list) -> Any:
    """The VNNI qconv2d for groups == 1 (None otherwise: the generic rule runs)."""
    w = const_value(a[1])
    bias = const_value(a[2]) if len(a) == 3 else None
    if (not has_vnni(ctx) or w is None or int(n.attrs["groups"]) != 1 or (len(a) == 3 and bias is None)
            or not n.inputs[0].type.is_static):
        return None
    shift = 128 if n.inputs[0].dtype == "i8" else 0
    code = int(n.attrs["x_zp"]) + shift
    o = w.shape[0]
    comp = compensation(w.reshape(o, -1).T, bias, code)
    ints = [[int(v) for v in n.attrs[k]] for k in ("strides", "pads", "dilations")]
    wt = kernels.row_tile(int(n.output.shape[3]), ctx.tiles.rows)
    return ctx.emit_te(qconv, a[0], np_const(pack_conv_weight(w)), np_const(comp), o, *ints, code, shift,
                       wt, primfunc_name_hint="qconv2d_vnni")
