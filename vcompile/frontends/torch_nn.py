"""ATen -> IR converters for the ops kept whole by the decomposition table.

    linear(x: 2-D, w, b)  => gemm(x, w, b) {trans_b}
    linear(x: N-D, w, b)  => add(matmul(x, transpose(w)), b)     (w^T folded when constant)
    convNd(x, w, b?)      => convNd(x, w, b or zeros)            (canonical: always a bias)
    _native_batch_norm_legit_no_training => batch_norm;  layer_norm => layer_norm
    scaled_dot_product_attention(q, k, v, mask, causal, scale)
                          => matmul(softmax(matmul(q, k^T) * scale [+ mask]), v)
    adaptive_avg_pool2d(x, 1) => reduce_mean {axes=(2,3), keepdims}
    upsample_{nearest,bilinear,bicubic}2d => resize {torch's coordinate conventions}
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from vcompile.frontends import torch_shape  # noqa: F401  (registers the shape converters)
from vcompile.frontends.onnx_ctx import V
from vcompile.frontends.torch_ops import Call, TorchCtx, aten, operand, rank
from vcompile.ir.graph import Value
from vcompile.ir.types import DTYPES


def _per_dim(v: Any, nd: int) -> tuple[int, ...]:
    v = [v] if isinstance(v, int) else list(v)
    return tuple(int(x) for x in (v * nd if len(v) == 1 else v))


def _const_t(ctx: TorchCtx, w: V) -> V:
    """w^T for a 2-D weight; folds to a constant when w is known."""
    return ctx.emit("transpose", w, perm=(1, 0))


# ---- linear algebra ----------------------------------------------------------------------

@aten("linear.default")
def _linear(ctx: TorchCtx, c: Call) -> V:
    x, w, b = c.a["input"], c.a["weight"], c.a["bias"]
    if rank(ctx, x) == 2:
        return ctx.emit("gemm", *([x, w] if b is None else [x, w, b]), trans_b=True)
    y = ctx.emit("matmul", x, _const_t(ctx, w))
    return y if b is None else ctx.emit("add", y, b)


@aten("mm.default", "bmm.default", "matmul.default")
def _matmul(ctx: TorchCtx, c: Call) -> V:
    return ctx.emit("matmul", c.a["self"], c.a["other"] if "other" in c.a else c.a["mat2"])


@aten("addmm.default")
def _addmm(ctx: TorchCtx, c: Call) -> V:
    return ctx.emit("gemm", c.a["mat1"], c.a["mat2"], c.a["self"],
                    alpha=float(c.a["alpha"]), beta=float(c.a["beta"]))


@aten("baddbmm.default")
def _baddbmm(ctx: TorchCtx, c: Call) -> V:
    y = ctx.emit("matmul", c.a["batch1"], c.a["batch2"])
    if c.a["alpha"] != 1:
        y = ctx.emit("mul", y, operand(ctx, c.a["alpha"], c.dtype))
    b = c.a["self"] if c.a["beta"] == 1 else ctx.emit("mul", c.a["self"],
                                                         operand(ctx, c.a["beta"], c.dtype))
    return ctx.emit("add", y, b)


# ---- convolution -------------------------------------------------------------------------

def _bias(ctx: TorchCtx, b: V | None, n: int, dtype: str) -> V:
    return np.zeros(n, DTYPES[dtype]) if b is None else b


def _same_pads(k: tuple[int, ...], d: tuple[int, ...]) -> tuple[int, ...]:
    total = [di * (ki - 1) for ki, di in zip(k, d, strict=True)]
    return tuple(t // 2 for t in total) + tuple(t - t // 2 for t in total)


@aten("conv1d.default", "conv2d.default", "conv3d.default", "conv1d.padding",
      "conv2d.padding", "conv3d.padding", "convolution.default")
def _conv(ctx: TorchCtx, c: Call) -> V:
    x, w = c.a["input"], c.a["weight"]
    nd = rank(ctx, w) - 2
    if c.a.get("transposed"):
        return _conv_t(ctx, c, nd)
    s, d = _per_dim(c.a["stride"], nd), _per_dim(c.a["dilation"], nd)
    p = c.a["padding"]
    if p == "same":
        pads = _same_pads(tuple(ctx.shape(w)[2:]), d)  # type: ignore[arg-type]
    else:
        pads = (0,) * (2 * nd) if p == "valid" else _per_dim(p, nd) * 2
    b = _bias(ctx, c.a["bias"], int(ctx.shape(w)[0]), c.dtype)
    return ctx.emit(f"conv{nd}d", x, w, b, strides=s, pads=pads, dilations=d,
                    groups=int(c.a["groups"]))


def _conv_t(ctx: TorchCtx, c: Call, nd: int) -> V:
    x, w = c.a["input"], c.a["weight"]
    g = int(c.a["groups"])
    b = _bias(ctx, c.a["bias"], int(ctx.shape(w)[1]) * g, c.dtype)
    return ctx.emit(f"conv_transpose{nd}d", x, w, b, strides=_per_dim(c.a["stride"], nd),
                    pads=_per_dim(c.a["padding"], nd) * 2, dilations=_per_dim(c.a["dilation"], nd),
                    groups=g, output_padding=_per_dim(c.a["output_padding"], nd))


@aten("conv_transpose1d.default", "conv_transpose2d.input", "conv_transpose3d.input")
def _conv_transpose(ctx: TorchCtx, c: Call) -> V:
    return _conv_t(ctx, c, rank(ctx, c.a["weight"]) - 2)


# ---- normalization and softmax -----------------------------------------------------------

def _ones(n: Any, dtype: str) -> np.ndarray:
    return np.ones(n, DTYPES[dtype])


@aten("_native_batch_norm_legit_no_training.default")
def _batch_norm(ctx: TorchCtx, c: Call) -> tuple[V, None, None]:
    x = c.a["input"]
    n = int(ctx.shape(x)[1])
    w = _ones(n, c.dtype) if c.a["weight"] is None else c.a["weight"]
    b = np.zeros(n, DTYPES[c.dtype]) if c.a["bias"] is None else c.a["bias"]
    y = ctx.emit("batch_norm", x, w, b, c.a["running_mean"], c.a["running_var"],
                 epsilon=float(c.a["eps"]))
    return (y, None, None)


@aten("layer_norm.default")
def _layer_norm(ctx: TorchCtx, c: Call) -> V:
    x, shape = c.a["input"], tuple(c.a["normalized_shape"])
    w = _ones(shape, c.dtype) if c.a["weight"] is None else c.a["weight"]
    ins = [x, w] if c.a["bias"] is None else [x, w, c.a["bias"]]
    return ctx.emit("layer_norm", *ins, axis=rank(ctx, x) - len(shape), epsilon=float(c.a["eps"]))


@aten("native_group_norm.default", "group_norm.default")
def _group_norm(ctx: TorchCtx, c: Call) -> Any:
    x = c.a["input"]
    n = int(ctx.shape(x)[1])
    w = _ones(n, c.dtype) if c.a["weight"] is None else c.a["weight"]
    b = np.zeros(n, DTYPES[c.dtype]) if c.a["bias"] is None else c.a["bias"]
    groups = c.a["group"] if "group" in c.a else c.a["num_groups"]
    y = ctx.emit("group_norm", x, w, b, num_groups=int(groups), epsilon=float(c.a["eps"]))
    return (y, None, None) if "group" in c.a else y


@aten("softmax.int", "_softmax.default", "_safe_softmax.default")
def _softmax(ctx: TorchCtx, c: Call) -> V:
    return ctx.emit("softmax", ctx.cast(c.a["self"], c.dtype), axis=int(c.a["dim"]))


@aten("log_softmax.int", "_log_softmax.default")
def _log_softmax(ctx: TorchCtx, c: Call) -> V:
    return ctx.emit("log_softmax", ctx.cast(c.a["self"], c.dtype), axis=int(c.a["dim"]))


@aten("scaled_dot_product_attention.default")
def _sdpa(ctx: TorchCtx, c: Call) -> V:
    q, k, v, mask = c.a["query"], c.a["key"], c.a["value"], c.a["attn_mask"]
    if c.a.get("enable_gqa"):
        raise ctx.error("grouped-query attention (enable_gqa=True) is not supported")
    r = rank(ctx, q)
    perm = tuple(range(r - 2)) + (r - 1, r - 2)
    scale = c.a["scale"] or 1.0 / math.sqrt(int(ctx.shape(q)[-1]))
    s = ctx.emit("matmul", q, ctx.emit("transpose", k, perm=perm))
    s = ctx.emit("mul", s, np.asarray(scale, DTYPES[c.dtype]))
    if c.a["is_causal"]:
        n_q, n_k = int(ctx.shape(q)[-2]), int(ctx.shape(k)[-2])
        causal = np.tril(np.ones((n_q, n_k), bool))
        mask = causal if mask is None else np.logical_and(causal, mask)  # type: ignore[arg-type]
    if mask is not None:
        if ctx.dtype(mask) == "bool":
            if isinstance(mask, Value):
                s = ctx.emit("where", mask, s, np.asarray(-np.inf, DTYPES[c.dtype]))
                mask = None
            else:
                mask = np.where(mask, 0.0, -np.inf).astype(DTYPES[c.dtype])
        if mask is not None:
            s = ctx.emit("add", s, mask)
    return ctx.emit("matmul", ctx.emit("softmax", s, axis=-1), v)


# ---- pooling and resizing ----------------------------------------------------------------

@aten("max_pool2d_with_indices.default", "max_pool2d.default")
def _max_pool(ctx: TorchCtx, c: Call) -> Any:
    k = _per_dim(c.a["kernel_size"], 2)
    s = _per_dim(c.a["stride"], 2) if c.a["stride"] else k
    y = ctx.emit("max_pool2d", c.a["self"], kernel=k, strides=s,
                 pads=_per_dim(c.a["padding"], 2) * 2, dilations=_per_dim(c.a["dilation"], 2),
                 ceil_mode=bool(c.a["ceil_mode"]))
    return (y, None) if str(c.node.target).startswith("aten.max_pool2d_with_indices") else y


@aten("avg_pool2d.default")
def _avg_pool(ctx: TorchCtx, c: Call) -> V:
    if c.a["divisor_override"] is not None:
        raise ctx.error("avg_pool2d with divisor_override is not supported")
    k = _per_dim(c.a["kernel_size"], 2)
    s = _per_dim(c.a["stride"], 2) if c.a["stride"] else k
    return ctx.emit("avg_pool2d", c.a["self"], kernel=k, strides=s,
                    pads=_per_dim(c.a["padding"], 2) * 2, ceil_mode=bool(c.a["ceil_mode"]),
                    count_include_pad=bool(c.a["count_include_pad"]))


@aten("adaptive_avg_pool2d.default", "_adaptive_avg_pool2d.default")
def _adaptive_avg_pool(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    out = _per_dim(c.a["output_size"], 2)
    size = tuple(int(d) for d in ctx.shape(x)[-2:])
    if out == (1, 1):
        return ctx.emit("reduce_mean", x, axes=(rank(ctx, x) - 2, rank(ctx, x) - 1), keepdims=True)
    if size[0] % out[0] or size[1] % out[1]:
        raise ctx.error(f"adaptive_avg_pool2d from {size} to {out} needs uneven windows")
    k = (size[0] // out[0], size[1] // out[1])
    return ctx.emit("avg_pool2d", x, kernel=k, strides=k)


_RESIZE = {"nearest": {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                       "nearest_mode": "floor"},
           "bilinear": {"mode": "linear"}, "bicubic": {"mode": "cubic", "cubic_coeff_a": -0.75},
           "linear": {"mode": "linear"}, "trilinear": {"mode": "linear"}}


def _resize(ctx: TorchCtx, c: Call) -> V:
    x = c.a.get("input", c.a.get("self"))
    kind = str(c.node.target).split(".")[1].removeprefix("upsample_")[:-2]
    attrs: dict[str, Any] = dict(_RESIZE[kind])
    if kind != "nearest":
        attrs["coordinate_transformation_mode"] = (
            "align_corners" if c.a.get("align_corners") else "pytorch_half_pixel")
    in_shape = ctx.shape(x)
    factors = c.a.get("scale_factors")
    nd = len(in_shape) - 2
    if factors:
        scales = tuple(float(f) for f in _per_dim_f(factors, nd))
    else:
        scales = tuple(int(o) / int(i) for o, i in zip(c.shape[2:], in_shape[2:], strict=True))
    return ctx.emit("resize", x, sizes=tuple(in_shape[:2]) + tuple(c.shape[2:]),
                    scales=(1.0, 1.0) + scales, **attrs)


def _per_dim_f(v: Any, nd: int) -> list[float]:
    v = list(v)
    return v * nd if len(v) == 1 else v


for _kind, _nd in (("nearest", 1), ("nearest", 2), ("nearest", 3), ("linear", 1),
                   ("bilinear", 2), ("bicubic", 2), ("trilinear", 3)):
    aten(f"upsample_{_kind}{_nd}d.vec", f"upsample_{_kind}{_nd}d.default")(_resize)
