"""ATen -> IR converters for data movement (view, permute, cat, split, slice, select,
index) and reductions.

    view/reshape(x, size) => reshape {shape = the output's shape, derived sizes as -1}
    select.int(x, d, i)   => gather(x, i: i64[]) {axis=d}
    index.Tensor(x, [None, .., idx])  => gather(x, idx) {axis}   (one index tensor)
    constant_pad_nd(x, pad)           => pad {pads = begins then ends, ONNX order}

Only the shapes known at import time are supported; index tensors computed at run
time (boolean masks, data-dependent gathers) raise ConversionError.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vcompile.frontends.onnx_ctx import V
from vcompile.frontends.torch_ops import (
    CONVERTERS,
    INT64_MAX,
    Call,
    Converter,
    Sym,
    TorchCtx,
    aten,
    axis,
    operand,
    rank,
    shape_attr,
)


@aten("view.default", "_unsafe_view.default", "reshape.default", "view_copy.default")
def _view(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    if ctx.shape(x) == c.shape:
        return x
    return ctx.emit("reshape", x, shape=shape_attr(ctx, c.shape))


@aten("permute.default", "permute_copy.default")
def _permute(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    return ctx.emit("transpose", x, perm=tuple(axis(ctx, x, d) for d in c.a["dims"]))


@aten("transpose.int", "t.default")
def _transpose(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    perm = list(range(rank(ctx, x)))
    if len(perm) < 2:
        return x
    d0, d1 = axis(ctx, x, c.a.get("dim0", 0)), axis(ctx, x, c.a.get("dim1", 1))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return ctx.emit("transpose", x, perm=tuple(perm))


@aten("unsqueeze.default")
def _unsqueeze(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    return ctx.emit("unsqueeze", x, axes=(c.a["dim"] % (rank(ctx, x) + 1),))


@aten("squeeze.dims", "squeeze.dim", "squeeze.default")
def _squeeze(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    dims = c.a.get("dim")
    dims = range(rank(ctx, x)) if dims is None else [dims] if isinstance(dims, int) else dims
    # NOTE: torch ignores dims that are not 1; ONNX/IR squeeze would reject them.
    axes = tuple(sorted({axis(ctx, x, d) for d in dims if ctx.shape(x)[axis(ctx, x, d)] == 1}))
    return ctx.emit("squeeze", x, axes=axes) if axes else x


@aten("expand.default", "expand_copy.default")
def _expand(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    if ctx.shape(x) == c.shape:
        return x
    if any(isinstance(d, Sym) for d in c.shape):
        raise ctx.error(f"cannot expand to derived symbolic sizes {[str(d) for d in c.shape]}")
    return ctx.emit("expand", x, shape=c.shape)


@aten("repeat.default")
def _repeat(ctx: TorchCtx, c: Call) -> V:
    x, reps = c.a["self"], list(c.a["repeats"])
    extra = len(reps) - rank(ctx, x)
    if extra > 0:
        x = ctx.emit("reshape", x, shape=(1,) * extra + tuple(ctx.shape(x)))
    return ctx.emit("tile", x, repeats=tuple(int(r) for r in reps))


@aten("cat.default", "concat.default")
def _cat(ctx: TorchCtx, c: Call) -> V:
    xs = [operand(ctx, t, c.dtype) for t in c.a["tensors"]]
    xs = [t for t in xs if not (rank(ctx, t) == 1 and ctx.shape(t)[0] == 0)]  # torch skips these
    if len(xs) == 1:
        return xs[0]
    return ctx.emit("concat", *xs, axis=axis(ctx, xs[0], c.a["dim"]))


def _split(ctx: TorchCtx, x: V, sizes: list[int], dim: int) -> tuple[V, ...]:
    ax = axis(ctx, x, dim)
    if len(sizes) == 1:
        return (x,)
    return ctx.emit_multi("split", x, axis=ax, sizes=tuple(sizes))


@aten("split_with_sizes.default", "split_with_sizes_copy.default")
def _split_with_sizes(ctx: TorchCtx, c: Call) -> tuple[V, ...]:
    return _split(ctx, c.a["self"], [int(s) for s in c.a["split_sizes"]], c.a["dim"])


@aten("split.Tensor", "split_copy.Tensor")
def _split_tensor(ctx: TorchCtx, c: Call) -> tuple[V, ...]:
    x, size = c.a["self"], int(c.a["split_size"])
    n = ctx.shape(x)[axis(ctx, x, c.a["dim"])]
    if not isinstance(n, int):
        raise ctx.error(f"cannot split symbolic dim {n}")
    return _split(ctx, x, [min(size, n - i) for i in range(0, n, size)], c.a["dim"])


@aten("unbind.int", "unbind_copy.int")
def _unbind(ctx: TorchCtx, c: Call) -> tuple[V, ...]:
    x = c.a["self"]
    ax = axis(ctx, x, c.a["dim"])
    n = ctx.shape(x)[ax]
    if not isinstance(n, int):
        raise ctx.error(f"cannot unbind symbolic dim {n}")
    parts = _split(ctx, x, [1] * n, ax)
    return tuple(ctx.emit("squeeze", p, axes=(ax,)) for p in parts)


@aten("slice.Tensor", "slice_copy.Tensor")
def _slice(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    ax = axis(ctx, x, c.a["dim"])
    start = 0 if c.a["start"] is None else c.a["start"]
    end = INT64_MAX if c.a["end"] is None else c.a["end"]
    step, n = c.a["step"], ctx.shape(x)[ax]
    if isinstance(start, (str, Sym)) or isinstance(end, (str, Sym)):
        raise ctx.error(f"cannot slice with symbolic bounds {start}:{end}")
    if step == 1 and start == 0 and (end >= INT64_MAX or (isinstance(n, int) and end >= n)):
        return x
    return ctx.emit("slice", x, starts=(start,), ends=(min(end, INT64_MAX),), axes=(ax,),
                    steps=(step,))


@aten("select.int", "select_copy.int")
def _select(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    ax = axis(ctx, x, c.a["dim"])
    idx = c.a["index"]
    n = ctx.shape(x)[ax]
    if idx < 0 and isinstance(n, int):
        idx += n
    return ctx.emit("gather", x, np.asarray(idx, np.int64), axis=ax)


@aten("index_select.default")
def _index_select(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    return ctx.emit("gather", x, operand(ctx, c.a["index"], "i64"), axis=axis(ctx, x, c.a["dim"]))


@aten("index.Tensor", "_unsafe_index.Tensor")
def _index(ctx: TorchCtx, c: Call) -> V:
    x, idx = c.a["self"], list(c.a["indices"])
    used = [i for i, t in enumerate(idx) if t is not None]
    if len(used) != 1:
        raise ctx.error("only one index tensor is supported (advanced indexing with several "
                        "index tensors has no IR op)")
    t = idx[used[0]]
    if isinstance(t, np.ndarray) and t.dtype == np.bool_:
        raise ctx.error("boolean mask indexing has a data-dependent shape")
    return ctx.emit("gather", x, operand(ctx, t, "i64"), axis=used[0])


@aten("constant_pad_nd.default")
def _pad(ctx: TorchCtx, c: Call) -> V:
    x, pad = c.a["self"], [int(p) for p in c.a["pad"]]
    r = rank(ctx, x)
    begins, ends = [0] * r, [0] * r
    for i in range(len(pad) // 2):  # torch lists the last dim first
        begins[r - 1 - i], ends[r - 1 - i] = pad[2 * i], pad[2 * i + 1]
    if min(begins + ends) < 0:
        raise ctx.error(f"negative padding {pad} (cropping) is not supported")
    if not any(begins + ends):
        return x
    return ctx.emit("pad", x, pads=tuple(begins + ends), value=float(c.a["value"]))


@aten("full_like.default", "zeros_like.default", "ones_like.default", "empty_like.default")
def _full_like(ctx: TorchCtx, c: Call) -> Any:
    fill = {"zeros_like": 0, "ones_like": 1, "empty_like": 0}.get(
        str(c.node.target).split(".")[1], c.a.get("fill_value"))
    if not all(isinstance(d, int) for d in c.shape):
        raise ctx.error("cannot make a constant of symbolic shape")
    return np.full(c.shape, fill, dtype=ctx.const(0, c.dtype).dtype)


@aten("flip.default")
def _flip(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    axes = tuple(axis(ctx, x, d) for d in c.a["dims"])
    return ctx.emit("slice", x, starts=(-1,) * len(axes), ends=(-INT64_MAX,) * len(axes),
                    axes=axes, steps=(-1,) * len(axes))


# ---- reductions --------------------------------------------------------------------------

def _axes(ctx: TorchCtx, x: V, dims: Any) -> tuple[int, ...]:
    if dims is None or (isinstance(dims, (list, tuple)) and not dims):
        return tuple(range(rank(ctx, x)))
    dims = [dims] if isinstance(dims, int) else dims
    return tuple(sorted(axis(ctx, x, d) for d in dims))


def _reduce(op: str, with_indices: bool = False) -> Converter:
    def conv(ctx: TorchCtx, c: Call) -> Any:
        x = operand(ctx, c.a["self"], c.dtype)
        y = ctx.emit(op, x, axes=_axes(ctx, x, c.a.get("dim")), keepdims=bool(c.a.get("keepdim")))
        return (y, None) if with_indices else y  # NOTE: indices unsupported (None if used)
    return conv


for _t, _op in {"mean.dim": "reduce_mean", "mean.default": "reduce_mean",
                "sum.dim_IntList": "reduce_sum", "sum.default": "reduce_sum",
                "amax.default": "reduce_max", "amin.default": "reduce_min",
                "prod.dim_int": "reduce_prod", "max.default": "reduce_max",
                "min.default": "reduce_min"}.items():
    CONVERTERS[f"aten.{_t}"] = _reduce(_op)
CONVERTERS["aten.max.dim"] = _reduce("reduce_max", with_indices=True)
CONVERTERS["aten.min.dim"] = _reduce("reduce_min", with_indices=True)


@aten("var.correction")
def _var(ctx: TorchCtx, c: Call) -> V:
    x = c.a["self"]
    axes = _axes(ctx, x, c.a["dim"])
    n = int(np.prod([ctx.shape(x)[i] for i in axes]))
    corr = 1 if c.a["correction"] is None else c.a["correction"]
    d = ctx.emit("sub", x, ctx.emit("reduce_mean", x, axes=axes, keepdims=True))
    m = ctx.emit("reduce_mean", ctx.emit("mul", d, d), axes=axes, keepdims=bool(c.a["keepdim"]))
    return m if corr == 0 else ctx.emit("mul", m, operand(ctx, n / (n - corr), c.dtype))
