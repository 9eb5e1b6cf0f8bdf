"""ONNX shape-manipulation converters: constants, Shape, Reshape, Flatten, Transpose,
Concat, Split, Slice, Squeeze/Unsqueeze, Expand, Tile, Gather, Pad, Range.

    Reshape(x, shape) / Slice(x, starts, ends, axes, steps) / Pad(x, pads, value, axes) ...
      => reshape/slice/pad {attrs from the known inputs}

Configuration inputs must be known at import (see `Ctx.known_ints`); a Shape of a
tensor with symbolic dims is known too, as an object array holding the symbols.
"""
from __future__ import annotations

import numpy as np

from vcompile.frontends.onnx_ctx import Ctx, V, normalize_known
from vcompile.frontends.onnx_ops import Node, axes_of, converter

# ---- constants and shapes -------------------------------------------------------------------

@converter("Constant")
def _constant(ctx: Ctx, n: Node) -> list[V]:
    a = n.attrs
    if "value" in a:
        return [np.asarray(a["value"])]
    for key, dt in (("value_float", np.float32), ("value_floats", np.float32),
                    ("value_int", np.int64), ("value_ints", np.int64)):
        if key in a:
            return [np.asarray(a[key], dtype=dt)]
    raise ctx.error(f"Constant with {', '.join(a) or 'no value'} is not supported")


@converter("ConstantOfShape")
def _constant_of_shape(ctx: Ctx, n: Node) -> list[V]:
    dims = ctx.known_ints(n.inputs[0], "the shape")
    assert dims is not None
    fill = np.asarray(n.attrs.get("value", np.zeros(1, np.float32))).reshape(())
    if all(isinstance(d, int) for d in dims):
        return [np.full(tuple(dims), fill, dtype=fill.dtype)]
    return [ctx.emit("expand", ctx.value(fill), shape=tuple(dims))]


@converter("Shape")
def _shape(ctx: Ctx, n: Node) -> list[V]:
    dims = list(ctx.shape(n.inputs[0]))  # type: ignore[arg-type]
    r = len(dims)
    start, end = int(n.attrs.get("start", 0)), n.attrs.get("end")
    start = min(max(start + r if start < 0 else start, 0), r)
    stop = r if end is None else min(max(int(end) + r if int(end) < 0 else int(end), 0), r)
    arr = np.empty(max(stop - start, 0), dtype=object)
    arr[:] = dims[start:stop]
    return [normalize_known(arr)]


@converter("Reshape")
def _reshape(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    target = ctx.known_ints(n.inputs[1], "the target shape")
    assert target is not None
    src = ctx.shape(x)
    if not n.attrs.get("allowzero", 0):
        target = [src[i] if d == 0 else d for i, d in enumerate(target)]
    return [ctx.emit("reshape", x, shape=_symbolic_minus_one(src, target))]


def _symbolic_minus_one(src: tuple, target: list) -> tuple:
    """[batch,512,1,1] -> [-1,512] becomes [batch,512]: the -1 is the one symbol of the
    input when the static dims on both sides have the same product."""
    syms = [d for d in src if isinstance(d, str)]
    if -1 not in target or len(syms) != 1 or any(isinstance(d, str) for d in target):
        return tuple(target)
    lhs = int(np.prod([d for d in src if isinstance(d, int)], dtype=np.int64))
    rhs = int(np.prod([d for d in target if d != -1], dtype=np.int64))
    return tuple(syms[0] if d == -1 and lhs == rhs else d for d in target)


@converter("Flatten")
def _flatten(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    shape = ctx.shape(x)
    ax = int(n.attrs.get("axis", 1))
    ax = ax + len(shape) if ax < 0 else ax
    dims = [_product(shape[:ax]), _product(shape[ax:])]
    if dims.count(-1) == 2:
        raise ctx.error(f"cannot flatten {list(shape)} with symbolic dims on both sides")
    return [ctx.emit("reshape", x, shape=tuple(dims))]


def _product(dims: tuple) -> int | str:
    """The product of dims: an int, the one symbol times ones, or -1 (left to reshape)."""
    syms = [d for d in dims if isinstance(d, str)]
    rest = int(np.prod([d for d in dims if isinstance(d, int)], dtype=np.int64))
    if not syms:
        return rest
    return syms[0] if len(syms) == 1 and rest == 1 else -1


@converter("Transpose")
def _transpose(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    perm = n.attrs.get("perm") or list(range(len(ctx.shape(x))))[::-1]
    return [ctx.emit("transpose", x, perm=tuple(perm))]


@converter("Concat")
def _concat(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("concat", *ctx.flat(n.inputs), axis=int(n.attrs["axis"]))]


@converter("Split")
def _split(ctx: Ctx, n: Node) -> list[V | None]:
    x = n.inputs[0]
    assert x is not None
    shape = ctx.shape(x)
    axis = int(n.attrs.get("axis", 0)) % len(shape)
    sizes = ctx.known_ints(n.input(1), "the split sizes")
    if sizes is None and "split" in n.attrs:
        sizes = list(n.attrs["split"])
    if sizes is None:
        dim, k = shape[axis], int(n.attrs.get("num_outputs", len(n.proto.output)))
        if not isinstance(dim, int):
            raise ctx.error(f"cannot split symbolic dim {dim}")
        if "num_outputs" in n.attrs:  # opset 18: ceil-sized chunks, the last one smaller
            chunk = -(-dim // k)
            sizes = [min(chunk, dim - i * chunk) for i in range(k)]
        else:
            sizes = [dim // k] * k
    return list(ctx.emit_multi("split", x, axis=axis, sizes=tuple(sizes)))


@converter("Slice")
def _slice(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    if ctx.since() < 10:  # Slice-1: starts, ends and axes are attrs; no steps
        starts, ends = list(n.attrs["starts"]), list(n.attrs["ends"])
        axes = list(n.attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = ctx.known_ints(n.inputs[1], "the starts")
        ends = ctx.known_ints(n.inputs[2], "the ends")
        assert starts is not None and ends is not None
        axes = ctx.known_ints(n.input(3), "the axes") or list(range(len(starts)))
        steps = ctx.known_ints(n.input(4), "the steps") or [1] * len(starts)
    big = 2**62  # ONNX clamps out-of-range starts/ends; python slices do the same
    clamp = [max(min(int(v), big), -big) for v in starts], [max(min(int(v), big), -big) for v in ends]
    return [ctx.emit("slice", x, starts=tuple(clamp[0]), ends=tuple(clamp[1]),
                     axes=tuple(int(a) for a in axes), steps=tuple(int(s) for s in steps))]


@converter("Squeeze")
def _squeeze(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    axes = axes_of(ctx, n, 1)
    if axes is None:
        axes = [i for i, d in enumerate(ctx.shape(x)) if d == 1]
    return [ctx.emit("squeeze", x, axes=tuple(axes))]


@converter("Unsqueeze")
def _unsqueeze(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("unsqueeze", n.inputs[0], axes=tuple(axes_of(ctx, n, 1) or ()))]  # type: ignore[arg-type]


@converter("Expand")
def _expand(ctx: Ctx, n: Node) -> list[V]:
    shape = ctx.known_ints(n.inputs[1], "the shape")
    return [ctx.emit("expand", n.inputs[0], shape=tuple(shape or ()))]  # type: ignore[arg-type]


@converter("Tile")
def _tile(ctx: Ctx, n: Node) -> list[V]:
    reps = ctx.known_ints(n.inputs[1], "the repeats")
    return [ctx.emit("tile", n.inputs[0], repeats=tuple(reps or ()))]  # type: ignore[arg-type]


@converter("Gather")
def _gather(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("gather", *n.inputs, axis=int(n.attrs.get("axis", 0)))]  # type: ignore[arg-type]


@converter("GatherND")
def _gather_nd(ctx: Ctx, n: Node) -> list[V]:
    return [ctx.emit("gather_nd", *n.inputs, batch_dims=int(n.attrs.get("batch_dims", 0)))]  # type: ignore[arg-type]


@converter("Pad")
def _pad(ctx: Ctx, n: Node) -> list[V]:
    x = n.inputs[0]
    assert x is not None
    rank = len(ctx.shape(x))
    if ctx.since() < 11:  # Pad-2: pads and value are attrs
        pads, value = list(n.attrs["pads"]), [float(n.attrs.get("value", 0.0))]
    else:
        pads = ctx.known_ints(n.input(1), "the pads")
        value = ctx.known_floats(n.input(2), "the constant value")
    assert pads is not None
    axes = ctx.known_ints(n.input(3), "the axes")
    if axes is not None:  # pads given for `axes` only: spread over every dim
        full = [0] * (2 * rank)
        for i, ax in enumerate(axes):
            ax = int(ax) % rank
            full[ax], full[ax + rank] = pads[i], pads[i + len(axes)]
        pads = full
    mode = n.attrs.get("mode", "constant")
    return [ctx.emit("pad", x, pads=tuple(int(p) for p in pads), mode=mode,
                     value=value[0] if value else 0.0)]
