"""Emission rules for conv, pooling, normalization, resize and quantization.

    conv{n}d(x, w, b)            => R.nn.conv{n}d(x, w) + reshape(b, [1,O,1..])
    *_norm(x, ...)               => mean / variance arithmetic in float32 at least
    resize(x)                    => per axis: take (nearest) or a matmul with the [out,in]
                                    weight matrix `resize.axis_weights` computes

Resize weights are the numpy reference's own helper evaluated at compile time on
static dims, so every resize mode follows `interp` by construction. Pooling is in
`emit.pool`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tvm import relax

from vcompile.codegen.emit.common import LAYOUT, attr_ints, compute_dtype, from_compute, to_compute
from vcompile.codegen.emit.relax import TVM_DTYPE, Ctx, np_const, rule
from vcompile.ir.graph import Node
from vcompile.ir.ops import resize as resize_ops
from vcompile.ir.ops.windows import layer_span

R = relax.op


def _per_channel(ctx: Ctx, v: Any, rank: int) -> Any:
    return ctx.emit(R.reshape(v, [1, -1] + [1] * (rank - 2)))


@rule("conv1d", "conv2d", "conv3d")
def _conv(ctx: Ctx, n: Node, a: list) -> Any:
    nd = n.inputs[0].type.rank - 2
    fn = {1: R.nn.conv1d, 2: R.nn.conv2d, 3: R.nn.conv3d}[nd]
    y = ctx.emit(fn(a[0], a[1], strides=attr_ints(n, "strides"), padding=attr_ints(n, "pads"),
                    dilation=attr_ints(n, "dilations"), groups=int(n.attrs["groups"]),  # type: ignore[arg-type]
                    data_layout=LAYOUT[nd][0], kernel_layout=LAYOUT[nd][1]))
    return ctx.emit(R.add(y, _per_channel(ctx, a[2], nd + 2)))


@rule("depthwise_conv2d_nhwc")
def _depthwise_nhwc(ctx: Ctx, n: Node, a: list) -> Any:
    """Plain form (-O0, GPU targets): the NCHW depthwise conv between two transposes;
    the CPU's tiled rule computes channels-last directly."""
    x = ctx.emit(R.permute_dims(a[0], [0, 3, 1, 2]))
    y = ctx.emit(R.nn.conv2d(x, a[1], strides=attr_ints(n, "strides"), padding=attr_ints(n, "pads"),
                             dilation=attr_ints(n, "dilations"), groups=int(n.inputs[0].shape[3]),  # type: ignore[arg-type]
                             data_layout="NCHW", kernel_layout="OIHW"))
    y = ctx.emit(R.add(y, _per_channel(ctx, a[2], 4)))
    return ctx.emit(R.permute_dims(y, [0, 2, 3, 1]))


@rule("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def _conv_transpose(ctx: Ctx, n: Node, a: list) -> Any:
    nd = n.inputs[0].type.rank - 2
    fn = {1: R.nn.conv1d_transpose, 2: R.nn.conv2d_transpose, 3: R.nn.conv3d_transpose}[nd]
    lay = LAYOUT[nd]
    y = ctx.emit(fn(a[0], a[1], strides=attr_ints(n, "strides"), padding=attr_ints(n, "pads"),
                    output_padding=attr_ints(n, "output_padding"), dilation=attr_ints(n, "dilations"),
                    groups=int(n.attrs["groups"]), data_layout=lay[0],  # type: ignore[arg-type]
                    kernel_layout="IO" + lay[1][2:]))
    return ctx.emit(R.add(y, _per_channel(ctx, a[2], nd + 2)))


# ---- normalization ----------------------------------------------------------------------

def _standardize(ctx: Ctx, x: Any, axes: list[int], eps: float, cdt: str) -> Any:
    """(x - mean) * rsqrt(var + eps) over `axes`. The reciprocal root is one value per
    row, multiplied in: a divide by sqrt per element cost a vector sqrt and a vector
    divide per 16 elements (deit's [197,192] layer norm: most of its 22 us)."""
    diff = ctx.emit(R.subtract(x, R.mean(x, axes, keepdims=True)))
    var = ctx.emit(R.mean(R.multiply(diff, diff), axes, keepdims=True))
    return ctx.emit(R.multiply(diff, R.rsqrt(R.add(var, ctx.const(eps, cdt)))))


@rule("batch_norm")
def _batch_norm(ctx: Ctx, n: Node, a: list) -> Any:
    dt, rank = n.inputs[0].dtype, n.inputs[0].type.rank
    x, gamma, beta, mean, var = (to_compute(ctx, v, t.dtype) for v, t in zip(a, n.inputs, strict=False))
    eps = ctx.const(float(n.attrs["epsilon"]), compute_dtype(dt))  # type: ignore[arg-type]
    scale = ctx.emit(R.divide(gamma, R.sqrt(R.add(var, eps))))
    y = ctx.emit(R.multiply(R.subtract(x, _per_channel(ctx, mean, rank)), _per_channel(ctx, scale, rank)))
    return from_compute(ctx, ctx.emit(R.add(y, _per_channel(ctx, beta, rank))), dt)


@rule("instance_norm", "group_norm")
def _instance_group_norm(ctx: Ctx, n: Node, a: list) -> Any:
    t = n.inputs[0].type
    dt, rank, eps = t.dtype, t.rank, float(n.attrs["epsilon"])  # type: ignore[arg-type]
    x, gamma, beta = (to_compute(ctx, v, s.dtype) for v, s in zip(a, n.inputs, strict=False))
    if n.op == "instance_norm":
        y = _standardize(ctx, x, list(range(2, rank)), eps, compute_dtype(dt))
    else:
        g = int(n.attrs["num_groups"])  # type: ignore[arg-type]
        xg = ctx.emit(R.reshape(x, [ctx.dim(t.shape[0]), g, -1]))
        y = ctx.emit(R.reshape(_standardize(ctx, xg, [2], eps, compute_dtype(dt)), ctx.shape(t.shape)))
    y = ctx.emit(R.add(R.multiply(y, _per_channel(ctx, gamma, rank)), _per_channel(ctx, beta, rank)))
    return from_compute(ctx, y, dt)


@rule("layer_norm")
def _layer_norm(ctx: Ctx, n: Node, a: list) -> Any:
    t = n.inputs[0].type
    ax, stop = layer_span(t, n.attrs)
    x = to_compute(ctx, a[0], t.dtype)
    y = _standardize(ctx, x, list(range(ax, stop)), float(n.attrs["epsilon"]), compute_dtype(t.dtype))  # type: ignore[arg-type]

    def param(v: Any, pt: Any) -> Any:  # scale/bias cover [ax, stop): trailing axes broadcast
        v = to_compute(ctx, v, pt.dtype)
        tail = [1] * (t.rank - stop)
        return ctx.emit(R.reshape(v, [int(d) for d in pt.shape] + tail)) if tail else v
    y = ctx.emit(R.multiply(y, param(a[1], n.inputs[1].type)))
    if len(a) == 3:
        y = ctx.emit(R.add(y, param(a[2], n.inputs[2].type)))
    return from_compute(ctx, y, t.dtype)


# ---- resize -------------------------------------------------------------------------------

@rule("resize")
def _resize(ctx: Ctx, n: Node, a: list) -> Any:
    t, at = n.inputs[0].type, n.attrs
    sizes = [int(d) if isinstance(d, int) else d for d in at["sizes"]]  # type: ignore[union-attr]
    scales = [float(s) for s in at["scales"]]  # type: ignore[union-attr]
    roi = [float(v) for v in at["roi"]] or [0.0] * t.rank + [1.0] * t.rank  # type: ignore[union-attr]
    work = "f64" if t.dtype[0] != "f" else compute_dtype(t.dtype)
    y = a[0] if work == t.dtype else ctx.emit(R.astype(a[0], TVM_DTYPE[work]))
    for ax, d in enumerate(t.shape):
        lo, hi = roi[ax], roi[ax + t.rank]
        if isinstance(d, str) or (np.isclose(scales[ax], 1.0) and sizes[ax] == d
                                  and np.isclose(lo, 0.0) and np.isclose(hi, 1.0)):
            continue
        y = _resize_axis(ctx, y, ax, t.rank, int(d), int(sizes[ax]), scales[ax], (lo, hi), at, work)
    if t.dtype[0] in "iu":
        info = np.iinfo(TVM_DTYPE[t.dtype])
        y = ctx.emit_te(_nearbyint, y)
        y = ctx.emit(R.minimum(R.maximum(y, ctx.const(info.min, work)), ctx.const(info.max, work)))
    return y if work == t.dtype else ctx.emit(R.astype(y, TVM_DTYPE[t.dtype]))


def _nearbyint(v: Any) -> Any:
    from tvm import te, tirx
    return te.compute(v.shape, lambda *i: tirx.nearbyint(v(*i)), "nearbyint")


def _resize_axis(ctx: Ctx, y: Any, ax: int, rank: int, n_in: int, n_out: int, scale: float,
                 roi: tuple[float, float], at: Any, work: str) -> Any:
    idx, w = resize_ops.axis_weights(at, n_in, n_out, scale, roi)
    if at["mode"] == "nearest" and not at["exclude_outside"]:
        pick = idx[np.arange(n_out), np.argmax(w, axis=1)]
        y = ctx.emit(R.take(y, np_const(pick.astype(np.int64)), ax))
    else:
        mat = np.zeros((n_out, n_in), dtype=np.float64)
        np.add.at(mat, (np.repeat(np.arange(n_out), w.shape[1]), idx.ravel()), w.ravel())
        perm = [i for i in range(rank) if i != ax] + [ax]
        inv = list(np.argsort(perm))
        yt = ctx.emit(R.permute_dims(y, perm)) if ax != rank - 1 else y
        yt = ctx.emit(R.matmul(yt, ctx.const(mat.T, work)))
        y = ctx.emit(R.permute_dims(yt, [int(i) for i in inv])) if ax != rank - 1 else yt
    if at["coordinate_transformation_mode"] == "tf_crop_and_resize":
        src = resize_ops.source_coords(at, np.arange(n_out, dtype=np.float64), n_in, scale, roi)
        shape = [1] * rank
        shape[ax] = n_out
        outside = ((src < 0) | (src > n_in - 1)).reshape(shape)
        y = ctx.emit(R.where(np_const(outside), ctx.const(at["extrapolation_value"], work), y))
    return y


# ---- quantization -------------------------------------------------------------------------

def _along_axis(ctx: Ctx, v: Any, n: Node, i: int) -> Any:
    t, x = n.inputs[i].type, n.inputs[0].type
    if t.rank == 0:
        return v
    if t.shape == (1,):
        return ctx.emit(R.reshape(v, []))
    if t.rank == 1:
        shape = [1] * x.rank
        shape[int(n.attrs["axis"]) % x.rank] = -1  # type: ignore[arg-type]
        return ctx.emit(R.reshape(v, shape))
    return v


@rule("quantize_linear")
def _quantize(ctx: Ctx, n: Node, a: list) -> Any:
    x_dt, s_dt, zp_dt = (v.dtype for v in n.inputs)
    fdt = "f64" if x_dt[0] != "f" else x_dt
    x = a[0] if fdt == x_dt else ctx.emit(R.astype(a[0], "float64"))
    scale = _along_axis(ctx, a[1] if s_dt == fdt else ctx.emit(R.astype(a[1], TVM_DTYPE[fdt])), n, 1)
    q = ctx.emit_te(_nearbyint, ctx.emit(R.divide(x, scale)))
    q = ctx.emit(R.astype(q, "float64"))
    q = ctx.emit(R.add(q, R.astype(_along_axis(ctx, a[2], n, 2), "float64")))
    info = np.iinfo(TVM_DTYPE[zp_dt])
    q = ctx.emit(R.minimum(R.maximum(q, ctx.const(info.min, "f64")), ctx.const(info.max, "f64")))
    return ctx.emit(R.astype(q, TVM_DTYPE[zp_dt]))


@rule("dequantize_linear")
def _dequantize(ctx: Ctx, n: Node, a: list) -> Any:
    s_dt = n.inputs[1].dtype
    cdt = TVM_DTYPE[compute_dtype(s_dt)]
    diff = ctx.emit(R.subtract(R.astype(a[0], "int64"), R.astype(_along_axis(ctx, a[2], n, 2), "int64")))
    y = ctx.emit(R.multiply(R.astype(diff, cdt), R.astype(_along_axis(ctx, a[1], n, 1), cdt)))
    return y if cdt == TVM_DTYPE[s_dt] else ctx.emit(R.astype(y, TVM_DTYPE[s_dt]))

