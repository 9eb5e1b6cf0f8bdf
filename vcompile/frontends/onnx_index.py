"""ONNX converters for index and selection ops.

    ArgMax/ArgMin                    => argmax/argmin {axis, keepdims, select_last_index}
    TopK (K attr < 10, input >= 10)  => topk {k}          (K known at import)
    GatherElements                   => gather_elements
    ScatterElements, Scatter (9-10)  => scatter_elements {axis, reduction}
    ScatterND                        => scatter_nd {reduction}
    OneHot                           => one_hot {depth}   (depth known at import)
    ReverseSequence, GridSample, MaxUnpool, RoiAlign => the IR op of that name
    DepthToSpace/SpaceToDepth        => reshape, transpose, reshape
    Col2Im                           => conv_transpose with a one-hot weight, one group per
                                        channel (image and block shapes known at import)
    EyeLike                          => a constant (static input shape)
    Compress                         => gather of the kept indices (condition known)
    NonZero                          => folded at import only (its output shape is the data)

NonZero, Unique and NonMaxSuppression have output shapes that depend on run-time data;
the IR is statically shaped, so NonZero converts only when its input is known at import
(shape computations of exported models) and the others stay unsupported.
MaxUnpool with output_shape puts values at MaxPool's flat indices into that shape, as
onnxruntime and torch do (onnx.reference re-lays them from the default shape instead).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vcompile.frontends.onnx_ctx import Ctx, V
from vcompile.frontends.onnx_ops import STATIC_INPUTS, Node, converter, onnx_dtype

# inputs that configure these ops (K, depth, output_shape, image/block shapes, the mask)
STATIC_INPUTS.update({"TopK": (1,), "OneHot": (1,), "MaxUnpool": (2,), "Col2Im": (1, 2),
                      "Compress": (1,)})


def _x(n: Node, i: int = 0) -> V:
    v = n.input(i)
    assert v is not None
    return v


@converter("ArgMax", "ArgMin")
def _arg(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit(n.proto.op_type.lower(), _x(n), axis=int(n.attrs.get("axis", 0)),
                     keepdims=bool(n.attrs.get("keepdims", 1)),
                     select_last_index=bool(n.attrs.get("select_last_index", 0)))]


@converter("TopK")
def _topk(ctx: Ctx, n: Node) -> list[V]:
    if ctx.opset < 10:
        k = int(n.attrs["k"])
    else:
        (k,) = ctx.known_ints(_x(n, 1), "K") or [0]
    if not isinstance(k, int):
        raise ctx.error(f"needs K as a number, got the symbolic dim {k}")
    return list(ctx.emit_multi("topk", _x(n), k=k, axis=int(n.attrs.get("axis", -1)),
                               largest=bool(n.attrs.get("largest", 1)),
                               sorted=bool(n.attrs.get("sorted", 1))))


@converter("GatherElements")
def _gather_elements(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("gather_elements", _x(n), _x(n, 1), axis=int(n.attrs.get("axis", 0)))]


@converter("ScatterElements", "Scatter")
def _scatter_elements(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("scatter_elements", _x(n), _x(n, 1), _x(n, 2),
                     axis=int(n.attrs.get("axis", 0)), reduction=n.attrs.get("reduction", "none"))]


@converter("ScatterND")
def _scatter_nd(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("scatter_nd", _x(n), _x(n, 1), _x(n, 2),
                     reduction=n.attrs.get("reduction", "none"))]


@converter("OneHot")
def _one_hot(ctx: Ctx, n: Node) -> list[V]:
    depth = ctx.known_floats(_x(n, 1), "the depth") or [0.0]
    idx = _x(n)
    if ctx.dtype(idx) not in ("i32", "i64"):
        idx = ctx.emit("cast", idx, to="i64")  # ONNX casts float indices (truncating)
    return [ctx.emit("one_hot", idx, _x(n, 2), depth=int(depth[0]),
                     axis=int(n.attrs.get("axis", -1)))]


@converter("ReverseSequence")
def _reverse_sequence(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("reverse_sequence", _x(n), _x(n, 1),
                     batch_axis=int(n.attrs.get("batch_axis", 1)),
                     time_axis=int(n.attrs.get("time_axis", 0)))]


_GRID_MODE = {"bilinear": "linear", "bicubic": "cubic"}  # opset 16 spellings


@converter("GridSample")
def _grid_sample(ctx: Ctx, n: Node) -> list[V]:
    mode = n.attrs.get("mode", "linear" if ctx.opset >= 20 else "bilinear")
    return [ctx.emit("grid_sample", _x(n), _x(n, 1), mode=_GRID_MODE.get(mode, mode),
                     padding_mode=n.attrs.get("padding_mode", "zeros"),
                     align_corners=bool(n.attrs.get("align_corners", 0)))]


@converter("MaxUnpool")
def _max_unpool(ctx: Ctx, n: Node) -> list[V]:
    x, a = _x(n), n.attrs
    shape = ctx.shape(x)
    out = ctx.known_ints(n.input(2), "the output_shape")
    if out is None:
        k = [int(v) for v in a["kernel_shape"]]
        nd = len(k)
        s = [int(v) for v in a.get("strides", [1] * nd)]
        p = [int(v) for v in a.get("pads", [0] * 2 * nd)]
        if any(not isinstance(d, int) for d in shape[2:]):
            raise ctx.error(f"needs static spatial dims, got {list(shape)}")
        out = list(shape[:2]) + [(shape[2 + i] - 1) * s[i] + k[i] - p[i] - p[i + nd]
                                 for i in range(nd)]
    return [ctx.emit("max_unpool", x, ctx.cast(_x(n, 1), "i64"), output_shape=tuple(out))]


def _static(ctx: Ctx, x: V, dims: list[Any]) -> list[int]:
    if any(not isinstance(d, int) for d in dims):
        raise ctx.error(f"needs static channel and spatial dims, got {list(ctx.shape(x))}")
    return [int(d) for d in dims]


@converter("DepthToSpace")
def _depth_to_space(ctx: Ctx, n: Node) -> list[V]:
    x, b = _x(n), int(n.attrs["blocksize"])
    nb, *rest = ctx.shape(x)
    c, h, w = _static(ctx, x, rest)
    if n.attrs.get("mode", "DCR") == "CRD":
        parts, perm = (nb, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3)
    else:
        parts, perm = (nb, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2)
    y = ctx.emit("reshape", x, shape=parts)
    y = ctx.emit("transpose", y, perm=perm)
    return [ctx.emit("reshape", y, shape=(nb, c // (b * b), h * b, w * b))]


@converter("SpaceToDepth")
def _space_to_depth(ctx: Ctx, n: Node) -> list[V]:
    x, b = _x(n), int(n.attrs["blocksize"])
    nb, *rest = ctx.shape(x)
    c, h, w = _static(ctx, x, rest)
    y = ctx.emit("reshape", x, shape=(nb, c, h // b, b, w // b, b))
    crd = n.attrs.get("mode", "DCR") == "CRD"  # the mode attr is new in opset 28
    y = ctx.emit("transpose", y, perm=(0, 1, 3, 5, 2, 4) if crd else (0, 3, 5, 1, 2, 4))
    return [ctx.emit("reshape", y, shape=(nb, c * b * b, h // b, w // b))]


@converter("Col2Im")
def _col2im(ctx: Ctx, n: Node) -> list[V]:
    x, a = _x(n), n.attrs
    image = [int(v) for v in ctx.known_ints(_x(n, 1), "the image_shape") or []]
    block = [int(v) for v in ctx.known_ints(_x(n, 2), "the block_shape") or []]
    nd, kk = len(image), int(np.prod(block))
    d = [int(v) for v in a.get("dilations", [1] * nd)]
    p = [int(v) for v in a.get("pads", [0] * 2 * nd)]
    s = [int(v) for v in a.get("strides", [1] * nd)]
    nb, ck, _ = ctx.shape(x)
    c = _static(ctx, x, [ck])[0] // kk
    grid = [(image[i] + p[i] + p[i + nd] - d[i] * (block[i] - 1) - 1) // s[i] + 1 for i in range(nd)]
    full = [(grid[i] - 1) * s[i] + d[i] * (block[i] - 1) + 1 - p[i] - p[i + nd] for i in range(nd)]
    # weight[c * K + t, 0] is one at block tap t: each column entry lands on its pixel
    w = np.zeros((c, kk, 1, kk))
    w[:, np.arange(kk), 0, np.arange(kk)] = 1
    w = ctx.const(w.reshape([c * kk, 1] + block), ctx.dtype(x))
    y = ctx.emit("reshape", x, shape=(nb, c * kk, *grid))
    return [ctx.emit(f"conv_transpose{nd}d", y, w, ctx.const(np.zeros(c), ctx.dtype(x)),
                     groups=c, strides=tuple(s), dilations=tuple(d), pads=tuple(p),
                     output_padding=tuple(image[i] - full[i] for i in range(nd)))]


@converter("EyeLike")
def _eye_like(ctx: Ctx, n: Node) -> list[V]:
    x = _x(n)
    shape = ctx.shape(x)
    if len(shape) != 2 or any(not isinstance(d, int) for d in shape):
        raise ctx.error(f"needs a static 2-D input, got {list(shape)}")
    dt = onnx_dtype(n.attrs["dtype"]) if "dtype" in n.attrs else ctx.dtype(x)
    return [ctx.const(np.eye(shape[0], shape[1], int(n.attrs.get("k", 0))), dt)]


@converter("Compress")
def _compress(ctx: Ctx, n: Node) -> list[V]:
    x, cond = _x(n), ctx.known(_x(n, 1))
    if cond is None:
        raise ctx.error("needs the condition known at import (its output shape depends on it)")
    keep = np.flatnonzero(np.asarray(cond).reshape(-1))
    if "axis" not in n.attrs:
        x, axis = ctx.emit("reshape", x, shape=(-1,)), 0
    else:
        axis = int(n.attrs["axis"])
    return [ctx.emit("gather", x, keep.astype(np.int64), axis=axis)]


@converter("NonZero")
def _nonzero(ctx: Ctx, n: Node) -> list[V]:
    x = ctx.known(_x(n))
    if x is None or x.dtype == object:
        raise ctx.error("needs its input known at import (its output shape depends on it)")
    return [np.array(np.nonzero(x), np.int64).reshape(x.ndim, -1)]


@converter("RoiAlign")
def _roi_align(ctx: Ctx, n: Node) -> list[V]:
    a = n.attrs
    # opset 10 had no coordinate_transformation_mode: it behaved as output_half_pixel
    mode = a.get("coordinate_transformation_mode", "half_pixel" if ctx.opset >= 16 else
                 "output_half_pixel")
    return [ctx.emit("roi_align", _x(n), _x(n, 1), ctx.cast(_x(n, 2), "i64"),
                     mode=a.get("mode", "avg"), output_height=int(a.get("output_height", 1)),
                     output_width=int(a.get("output_width", 1)),
                     sampling_ratio=int(a.get("sampling_ratio", 0)),
                     spatial_scale=float(a.get("spatial_scale", 1.0)),
                     coordinate_transformation_mode=mode)]
