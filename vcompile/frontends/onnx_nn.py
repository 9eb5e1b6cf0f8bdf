"""ONNX neural-network op converters: conv, pooling, normalization, resize (quantization: onnx_quant).

    Conv(x, w[, b]) {auto_pad}          => conv{n}d(x, w, b or zeros) {explicit pads}
    ConvTranspose {output_shape}        => conv_transpose{n}d {pads, output_padding}
    MaxPool/AveragePool {auto_pad}      => max_pool{n}d / avg_pool{n}d {explicit pads}
    GroupNormalization (per-group, 18)  => group_norm with per-channel gamma/beta
    LayerNormalization(Mean, InvStdDev) => layer_norm + reduce_mean/rsqrt ops when used
    Resize(roi, scales, sizes) {axes}   => resize {full sizes, scales, roi}

Spatial dims must be static when auto_pad or output_shape needs them.
"""
from __future__ import annotations

import math
from typing import Any

from vcompile.frontends.onnx_ctx import Ctx, V
from vcompile.frontends.onnx_ops import Node, converter, onnx_dtype, zeros


def _spatial(ctx: Ctx, x: V) -> list[int]:
    dims = list(ctx.shape(x)[2:])
    if not all(isinstance(d, int) for d in dims):
        raise ctx.error(f"needs static spatial dims, got {ctx.shape(x)}")
    return dims  # type: ignore[return-value]


def _same_pads(auto_pad: str, ins: list[int], k: list[int], s: list[int], d: list[int]) -> list[int]:
    """Explicit pads (begins, ends) for SAME_UPPER/SAME_LOWER: output = ceil(in / stride)."""
    begins, ends = [], []
    for i in range(len(ins)):
        out = -(-ins[i] // s[i])
        total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - ins[i], 0)
        lo = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        begins.append(lo)
        ends.append(total - lo)
    return begins + ends


def window_attrs(ctx: Ctx, n: Node, x: V, kernel: list[int]) -> dict[str, Any]:
    nd = len(kernel)
    a = n.attrs
    s = list(a.get("strides", [1] * nd))
    d = list(a.get("dilations", [1] * nd))
    auto_pad = a.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(auto_pad, _spatial(ctx, x), kernel, s, d)
    elif auto_pad == "VALID":
        pads = [0] * (2 * nd)
    else:
        pads = list(a.get("pads", [0] * (2 * nd)))
    return {"strides": tuple(s), "dilations": tuple(d), "pads": tuple(pads)}


@converter("Conv")
def _conv(ctx: Ctx, n: Node) -> list[V]:
    x, w, b = n.inputs[0], n.inputs[1], n.input(2)
    assert x is not None and w is not None
    wshape = ctx.shape(w)
    kernel = list(n.attrs.get("kernel_shape", wshape[2:]))
    if b is None:
        b = zeros(ctx.dtype(w), (int(wshape[0]),))
    return [ctx.emit(f"conv{len(kernel)}d", x, w, b, groups=int(n.attrs.get("group", 1)),
                     **window_attrs(ctx, n, x, kernel))]


@converter("ConvTranspose")
def _conv_transpose(ctx: Ctx, n: Node) -> list[V]:
    x, w, b = n.inputs[0], n.inputs[1], n.input(2)
    assert x is not None and w is not None
    wshape, a = ctx.shape(w), n.attrs
    kernel = [int(k) for k in a.get("kernel_shape", wshape[2:])]
    nd, g = len(kernel), int(a.get("group", 1))
    if b is None:
        b = zeros(ctx.dtype(w), (int(wshape[1]) * g,))
    s = [int(v) for v in a.get("strides", [1] * nd)]
    d = [int(v) for v in a.get("dilations", [1] * nd)]
    op = [int(v) for v in a.get("output_padding", [0] * nd)]
    auto_pad = a.get("auto_pad", "NOTSET")
    pads = [int(v) for v in a.get("pads", [0] * 2 * nd)]
    if "output_shape" in a or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        ins = _spatial(ctx, x)
        base = [s[i] * (ins[i] - 1) + op[i] + (k - 1) * d[i] + 1 for i, k in enumerate(kernel)]
        out = [int(v) for v in a.get("output_shape", [ins[i] * s[i] for i in range(nd)])][-nd:]
        begins = pads[:nd]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            tot = [base[i] - out[i] for i in range(nd)]
            begins = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in tot]
        elif "pads" not in a:
            begins = [0] * nd  # as onnx.reference: output_shape crops/extends at the end
        ends = []
        for i in range(nd):
            extra = base[i] - begins[i] - out[i]  # >= 0: pad at the end, < 0: output_padding
            ends.append(max(extra, 0))
            op[i] += max(-extra, 0)
        pads = begins + ends
    return [ctx.emit(f"conv_transpose{nd}d", x, w, b, groups=g, strides=tuple(s),
                     dilations=tuple(d), pads=tuple(pads), output_padding=tuple(op))]


@converter("MaxPool", "AveragePool")
def _pool(ctx: Ctx, n: Node) -> list[V | None]:
    x = n.inputs[0]
    assert x is not None
    kernel = [int(k) for k in n.attrs["kernel_shape"]]
    nd, a = len(kernel), n.attrs
    attrs = {**window_attrs(ctx, n, x, kernel), "kernel": tuple(kernel),
             "ceil_mode": bool(a.get("ceil_mode", 0))}
    if n.proto.op_type == "AveragePool":
        return [ctx.emit(f"avg_pool{nd}d", x, count_include_pad=bool(a.get("count_include_pad", 0)),
                         **attrs)]
    with_indices = len(n.used) > 1 and n.used[1]
    outs = ctx.emit_multi(f"max_pool{nd}d", x, storage_order=int(a.get("storage_order", 0)),
                          with_indices=with_indices, **attrs)
    return list(outs)


# ---- normalization --------------------------------------------------------------------------

@converter("BatchNormalization")
def _batch_norm(ctx: Ctx, n: Node) -> list[V | None]:
    x, gamma, beta, mean, var = n.inputs[:5]
    eps = float(n.attrs.get("epsilon", 1e-5))
    if ctx.since() < 14:
        return _batch_norm_7(ctx, n, eps)
    if not n.attrs.get("training_mode", 0):
        return [ctx.emit("batch_norm", x, gamma, beta, mean, var, epsilon=eps)]  # type: ignore[arg-type]
    # training mode: normalize with the batch statistics and update the running ones
    assert x is not None and mean is not None and var is not None
    axes = tuple(i for i in range(len(ctx.shape(x))) if i != 1)
    bmean = ctx.emit("reduce_mean", x, axes=axes, keepdims=True)
    diff = ctx.emit("sub", x, bmean)
    bvar = ctx.emit("reduce_mean", ctx.emit("mul", diff, diff), axes=axes, keepdims=False)
    bmean = ctx.emit("squeeze", bmean, axes=axes)
    y = ctx.emit("batch_norm", x, gamma, beta, bmean, bvar, epsilon=eps)  # type: ignore[arg-type]
    m = float(n.attrs.get("momentum", 0.9))
    dt = ctx.dtype(x)

    def running(old: V, new: V) -> V:
        return ctx.emit("add", ctx.emit("mul", old, ctx.const(m, dt)),
                        ctx.emit("mul", new, ctx.const(1.0 - m, dt)))
    return [y, running(mean, bmean), running(var, bvar)]


def _batch_norm_7(ctx: Ctx, n: Node, eps: float) -> list[V | None]:
    """BatchNormalization-7 and -9 in inference: the optional outputs belong to training;
    running mean and var pass through, saved_mean/saved_var cannot be given."""
    x, gamma, beta, mean, var = n.inputs[:5]
    assert x is not None and gamma is not None and var is not None
    if any(n.used[3:5]):
        raise ctx.error("outputs saved_mean/saved_var exist only in training; vcompile "
                        "imports inference models: export the model in eval mode")
    if ctx.since() < 9 and not n.attrs.get("spatial", 1) and len(ctx.shape(gamma)) > 1:
        # spatial=0: statistics per element, params [C, D1, ...] broadcast over the batch
        dt = ctx.dtype(x)
        std = ctx.emit("sqrt", ctx.emit("add", var, ctx.const(eps, dt)))
        y = ctx.emit("sub", x, mean)  # type: ignore[arg-type]
        y = ctx.emit("add", ctx.emit("mul", y, ctx.emit("div", gamma, std)), beta)  # type: ignore[arg-type]
    else:
        y = ctx.emit("batch_norm", x, gamma, beta, mean, var, epsilon=eps)  # type: ignore[arg-type]
    return [y, mean, var]


@converter("InstanceNormalization")
def _instance_norm(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("instance_norm", *n.inputs, epsilon=float(n.attrs.get("epsilon", 1e-5)))]  # type: ignore[arg-type]


@converter("GroupNormalization")
def _group_norm(ctx: Ctx, n: Node) -> list[V]:
    x, gamma, beta = n.inputs[:3]
    assert x is not None and gamma is not None and beta is not None
    groups = int(n.attrs["num_groups"])
    c = ctx.shape(x)[1]
    if ctx.opset < 21 and ctx.shape(gamma)[0] != c:  # opset 18: one scale per group
        gamma, beta = (_per_group_to_channel(ctx, v, groups, int(c)) for v in (gamma, beta))
    return [ctx.emit("group_norm", x, gamma, beta, num_groups=groups,
                     epsilon=float(n.attrs.get("epsilon", 1e-5)))]


def _per_group_to_channel(ctx: Ctx, v: V, groups: int, c: int) -> V:
    per = ctx.emit("expand", ctx.emit("reshape", v, shape=(groups, 1)), shape=(groups, c // groups))
    return ctx.emit("reshape", per, shape=(c,))


@converter("LayerNormalization")
def _layer_norm(ctx: Ctx, n: Node) -> list[V | None]:
    x = n.inputs[0]
    assert x is not None
    axis, eps = int(n.attrs.get("axis", -1)), float(n.attrs.get("epsilon", 1e-5))
    y = ctx.emit("layer_norm", *ctx.flat(n.inputs), axis=axis, epsilon=eps)
    outs: list[V | None] = [y, None, None]
    if any(n.used[1:]):
        stash = onnx_dtype(int(n.attrs.get("stash_type", 1)))
        rank = len(ctx.shape(x))
        axes = tuple(range(axis % rank, rank))
        xs = ctx.cast(x, stash)
        mean = ctx.emit("reduce_mean", xs, axes=axes, keepdims=True, hint="mean")
        diff = ctx.emit("sub", xs, mean)
        var = ctx.emit("reduce_mean", ctx.emit("mul", diff, diff), axes=axes, keepdims=True)
        inv = ctx.emit("rsqrt", ctx.emit("add", var, ctx.const(eps, stash)), hint="inv_std_dev")
        outs[1:] = [mean, inv]
    return outs


# ---- resize ---------------------------------------------------------------------------------

@converter("Resize")
def _resize(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    if ctx.since() < 11:  # Resize-10: (x, scales), as Upsample
        return [_upsample(ctx, x, ctx.known_floats(n.inputs[1], "the scales"), n.attrs)]
    a, shape = n.attrs, ctx.shape(x)
    r = len(shape)
    roi = ctx.known_floats(n.input(1), "the roi") or []
    scales = ctx.known_floats(n.input(2), "the scales") or []
    sizes = ctx.known_ints(n.input(3), "the sizes") or []
    axes = [int(v) % r for v in a.get("axes", range(r))]
    full_scales, full_sizes = [1.0] * r, list(shape)
    full_roi = [0.0] * r + [1.0] * r
    for i, ax in enumerate(axes):
        if roi:
            full_roi[ax], full_roi[ax + r] = roi[i], roi[i + len(axes)]
        if scales:
            full_scales[ax] = scales[i]
    if sizes:
        for ax in axes:
            if not isinstance(shape[ax], int):
                raise ctx.error(f"cannot resize symbolic dim {shape[ax]} to a size")
        for i, ax in enumerate(axes):
            full_sizes[ax] = sizes[i]
            full_scales[ax] = sizes[i] / shape[ax]
        policy = a.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            scale = pick(full_scales[ax] for ax in axes)
            for ax in axes:
                full_scales[ax] = scale
                full_sizes[ax] = int(scale * shape[ax] + 0.5)  # round half up, as the spec
    else:
        for ax in axes:
            if isinstance(shape[ax], int):
                full_sizes[ax] = int(math.floor(full_scales[ax] * shape[ax]))
            elif full_scales[ax] != 1.0:
                raise ctx.error(f"cannot scale symbolic dim {shape[ax]}")
    mode_attrs = {k: a[k] for k in ("mode", "coordinate_transformation_mode", "nearest_mode",
                                    "cubic_coeff_a", "extrapolation_value") if k in a}
    return [ctx.emit("resize", x, sizes=tuple(full_sizes), scales=tuple(full_scales),
                     roi=tuple(full_roi) if roi else (), **mode_attrs,
                     exclude_outside=bool(a.get("exclude_outside", 0)),
                     antialias=bool(a.get("antialias", 0)))]


@converter("Upsample")
def _upsample_op(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    scales = (n.attrs.get("scales") if ctx.since() < 9  # Upsample-7: scales is an attr
              else ctx.known_floats(n.inputs[1], "the scales"))
    return [_upsample(ctx, x, scales, n.attrs)]


def _upsample(ctx: Ctx, x: V, scales: Any, a: dict[str, Any]) -> V:
    """Upsample-7/9 and Resize-10: out = floor(in * scale), asymmetric coordinates, nearest
    rounds down (as onnx.version_converter's Resize 10 -> 11 adapter writes it)."""
    shape, scales = ctx.shape(x), [float(v) for v in scales or ()]
    if len(scales) != len(shape):
        raise ctx.error(f"needs one scale per dim of {list(shape)}, got {scales}")
    sizes = []
    for d, sc in zip(shape, scales, strict=True):
        if not isinstance(d, int) and sc != 1.0:
            raise ctx.error(f"cannot scale symbolic dim {d}; fix it with input_shapes")
        sizes.append(int(math.floor(d * sc)) if isinstance(d, int) else d)
    mode = {"bilinear": "linear", "trilinear": "linear"}.get(a.get("mode", "nearest"),
                                                             a.get("mode", "nearest"))
    return ctx.emit("resize", x, sizes=tuple(sizes), scales=tuple(scales), mode=mode,
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")
