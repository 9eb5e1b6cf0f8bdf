"""Emission rules for index and selection ops (`ir.ops.index`).

    argmax(x) float  => m = max(where(isnan(x), -inf, x)); i = topi.argmax(x == m);
                        where(isnan(x[0]), 0, i)          (onnxruntime's NaN order)
    topk(x)          => R.topk(x, k, axis, largest, int64)
    gather_elements, scatter_elements, scatter_nd
                     => the Relax op, indices wrapped (i < 0: i + dim) first
    one_hot(i, v)    => where(expand_dims(wrap(i)) == arange(depth), v[1], v[0])
    reverse_sequence => topi.reverse_sequence
    max_unpool(x, i) => reshape(scatter_elements(zeros(prod(out)), flat(i), flat(x)))
    grid_sample      => R.image.grid_sample, the grid's coordinate axis moved to axis 1
    roi_align {avg}  => R.vision.roi_align on [batch, x1, y1, x2, y2] rois (half_pixel: the
                        rois shifted by 0.5 / spatial_scale first); mode=max is refused

Indices are wrapped only where the dim is static (a symbolic dim's indices are assumed
in range).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tvm import relax, topi

from vcompile.codegen.emit.common import attr_int, attr_ints
from vcompile.codegen.emit.relax import TVM_DTYPE, CodegenError, Ctx, np_const, rule
from vcompile.ir.graph import Node
from vcompile.ir.types import FLOAT_DTYPES

R = relax.op
_REDUCTION = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}


def _wrap(ctx: Ctx, i: Any, dims: Any, dt: str) -> Any:
    """Indices `i` of IR dtype `dt` with negatives counted from the end of `dims`."""
    if any(isinstance(d, str) for d in np.asarray(dims, dtype=object).flat):
        return i
    size = np_const(np.asarray(dims, dtype=np.dtype(TVM_DTYPE[dt])))
    return ctx.emit(R.where(R.less(i, ctx.const(0, dt)), R.add(i, size), i))


@rule("argmax", "argmin")
def _arg(ctx: Ctx, n: Node, a: list) -> Any:
    x, t = a[0], n.inputs[0].type
    ax = attr_int(n, "axis") % t.rank
    keep, last = bool(n.attrs["keepdims"]), bool(n.attrs["select_last_index"])
    pick = topi.argmax if n.op == "argmax" else topi.argmin
    if t.dtype not in FLOAT_DTYPES:
        i = ctx.emit_te(pick, x, ax, keep, last)
        return ctx.emit(R.astype(i, "int64"))
    # NOTE: a sequential scan that moves on a strict improvement: a NaN first element
    # wins, a later NaN never does; so the index of the best non-NaN, or 0.
    fill = ctx.const(-np.inf if n.op == "argmax" else np.inf, t.dtype)
    xr = ctx.emit(R.where(R.isnan(x), fill, x))
    best = ctx.emit((R.max if n.op == "argmax" else R.min)(xr, [ax], keepdims=True))
    hit = ctx.emit(R.astype(R.equal(x, best), "int8"))
    i = ctx.emit(R.astype(ctx.emit_te(topi.argmax, hit, ax, keep, last), "int64"))
    first = ctx.emit(R.take(x, np_const(np.zeros(1, np.int64)), ax))
    if not keep:
        first = ctx.emit(R.squeeze(first, [ax]))
    return ctx.emit(R.where(R.isnan(first), ctx.const(0, "i64"), i))


@rule("topk")
def _topk(ctx: Ctx, n: Node, a: list) -> Any:
    out = ctx.emit(R.topk(a[0], attr_int(n, "k"), attr_int(n, "axis"), "both",
                          bool(n.attrs["largest"]), "int64"))
    return ctx.emit(relax.TupleGetItem(out, 0)), ctx.emit(relax.TupleGetItem(out, 1))


@rule("gather_elements")
def _gather_elements(ctx: Ctx, n: Node, a: list) -> Any:
    data, idx = n.inputs
    ax = attr_int(n, "axis") % data.type.rank
    i = _wrap(ctx, a[1], data.shape[ax], idx.dtype)
    return ctx.emit(R.gather_elements(a[0], i, ax))


@rule("scatter_elements")
def _scatter_elements(ctx: Ctx, n: Node, a: list) -> Any:
    data, idx, _ = n.inputs
    ax = attr_int(n, "axis") % data.type.rank
    i = _wrap(ctx, a[1], data.shape[ax], idx.dtype)
    return ctx.emit(R.scatter_elements(a[0], i, a[2], ax, _REDUCTION[str(n.attrs["reduction"])]))


@rule("scatter_nd")
def _scatter_nd(ctx: Ctx, n: Node, a: list) -> Any:
    data, idx, _ = n.inputs
    i = _wrap(ctx, a[1], data.shape[:int(idx.shape[-1])], idx.dtype)
    return ctx.emit(R.scatter_nd(a[0], i, a[2], _REDUCTION[str(n.attrs["reduction"])]))


@rule("one_hot")
def _one_hot(ctx: Ctx, n: Node, a: list) -> Any:
    idx = n.inputs[0]
    depth = attr_int(n, "depth")
    ax = attr_int(n, "axis") % (idx.type.rank + 1)
    i = ctx.emit(R.expand_dims(_wrap(ctx, a[0], depth, idx.dtype), [ax]))
    classes = np.arange(depth, dtype=idx.type.np_dtype).reshape((depth,) + (1,) * (idx.type.rank - ax))
    hit = ctx.emit(R.equal(i, np_const(classes)))
    on, off = (ctx.emit(R.take(a[1], np_const(np.asarray(k, np.int64)), 0)) for k in (1, 0))
    return ctx.emit(R.where(hit, on, off))


@rule("reverse_sequence")
def _reverse_sequence(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit_te(topi.reverse_sequence, a[0], a[1], attr_int(n, "time_axis"),
                       attr_int(n, "batch_axis"))


@rule("max_unpool")
def _max_unpool(ctx: Ctx, n: Node, a: list) -> Any:
    out = attr_ints(n, "output_shape")
    zeros = ctx.emit(R.zeros([int(np.prod(out))], TVM_DTYPE[n.inputs[0].dtype]))
    flat = [ctx.emit(R.reshape(v, [-1])) for v in a]
    return ctx.emit(R.reshape(ctx.emit(R.scatter_elements(zeros, flat[1], flat[0], 0)), out))


_GRID_METHOD = {"linear": "bilinear", "nearest": "nearest", "cubic": "bicubic"}


@rule("grid_sample")
def _grid_sample(ctx: Ctx, n: Node, a: list) -> Any:
    r = n.inputs[0].type.rank
    grid = ctx.emit(R.permute_dims(a[1], [0, r - 1, *range(1, r - 1)]))
    return ctx.emit(R.image.grid_sample(a[0], grid, _GRID_METHOD[str(n.attrs["mode"])],
                                        "NCHW" if r == 4 else "NCDHW",
                                        str(n.attrs["padding_mode"]),
                                        bool(n.attrs["align_corners"])))


@rule("roi_align")
def _roi_align(ctx: Ctx, n: Node, a: list) -> Any:
    if n.attrs["mode"] != "avg":
        raise CodegenError("roi_align mode=max (onnxruntime's max of weighted corners) has no "
                           "TVM kernel yet; the interpreter runs it")
    x, rois, batch = a
    dt, scale = n.inputs[0].dtype, float(n.attrs["spatial_scale"])  # type: ignore[arg-type]
    half = n.attrs["coordinate_transformation_mode"] == "half_pixel"
    if half:  # NOTE: TVM's aligned=True leaves out the half-pixel shift; shift the rois
        rois = ctx.emit(R.subtract(rois, ctx.const(0.5 / scale, dt)))
    idx = ctx.emit(R.expand_dims(R.astype(batch, TVM_DTYPE[dt]), [1]))
    rois5 = ctx.emit(R.concat([idx, rois], 1))
    return ctx.emit(R.vision.roi_align(
        x, rois5, (attr_int(n, "output_height"), attr_int(n, "output_width")), scale,
        attr_int(n, "sampling_ratio"), half, "NCHW", "avg"))
