"""Emission rules for data-movement ops: reshape, transpose, concat, split, slice,
squeeze/unsqueeze, expand, tile, pad, gather.

    reshape/squeeze/unsqueeze(x) => R.reshape(x, <inferred output shape>)
    slice(x) with any negative step => R.take(x, <static index list>) per axis
    pad(x) {mode != constant} => R.take(x, np.pad(arange(n), mode)) per axis

Index lists are computed with numpy at compile time from static dims, so edge cases
(clamping, negative steps, reflect/edge/wrap pads, negative pads) follow `interp`
exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tvm import relax, topi

from vcompile.codegen.emit.common import typed_scalar
from vcompile.codegen.emit.relax import TVM_DTYPE, Ctx, np_const, rule
from vcompile.ir.graph import Node

R = relax.op


@rule("reshape", "squeeze", "unsqueeze")
def _reshape(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit(R.reshape(a[0], ctx.shape(n.output.shape)))


@rule("expand")
def _expand(ctx: Ctx, n: Node, a: list) -> Any:
    if n.inputs[0].shape == n.output.shape:
        return a[0]
    return ctx.emit(R.broadcast_to(a[0], ctx.shape(n.output.shape)))


@rule("transpose")
def _transpose(ctx: Ctx, n: Node, a: list) -> Any:
    return ctx.emit(R.permute_dims(a[0], [int(p) for p in n.attrs["perm"]]))  # type: ignore[union-attr]


@rule("concat")
def _concat(ctx: Ctx, n: Node, a: list) -> Any:
    ax = int(n.attrs["axis"])  # type: ignore[arg-type]
    parts = [x for x, v in zip(a, n.inputs, strict=False) if v.shape[ax % v.type.rank] != 0]
    if len(parts) == 1:
        return parts[0]
    return ctx.emit(R.concat(parts or a, ax))


@rule("split")
def _split(ctx: Ctx, n: Node, a: list) -> Any:
    # One strided_slice per part: R.split rejects empty parts (repeated split points).
    sizes = [int(s) for s in n.attrs["sizes"]]  # type: ignore[union-attr]
    ax = int(n.attrs["axis"]) % n.inputs[0].type.rank  # type: ignore[arg-type]
    if len(sizes) == 1:
        return (a[0],)
    outs, start = [], 0
    for size in sizes:
        if size == 0:
            shape = list(n.inputs[0].shape)
            shape[ax] = 0
            outs.append(ctx.emit(R.zeros(ctx.shape(tuple(shape)), TVM_DTYPE[n.inputs[0].dtype])))
        else:
            outs.append(ctx.emit(R.strided_slice(a[0], [ax], [start], [start + size])))
        start += size
    return tuple(outs)


@rule("slice")
def _slice(ctx: Ctx, n: Node, a: list) -> Any:
    shape = n.inputs[0].shape
    axes, begins, ends, strides, takes = [], [], [], [], []
    for st, en, ax, sp in zip(*(n.attrs[k] for k in ("starts", "ends", "axes", "steps")), strict=False):  # type: ignore[call-overload]
        ax = int(ax) % len(shape)
        dim = shape[ax]
        if isinstance(dim, str):
            continue  # the verifier only lets full slices of symbolic dims through
        lo, hi, step = slice(int(st), int(en), int(sp)).indices(dim)
        if step < 0:
            takes.append((ax, np.arange(lo, hi, step)))
        else:
            axes.append(ax)
            begins.append(lo)
            ends.append(max(hi, lo))
            strides.append(step)
    x = a[0]
    if axes:
        x = ctx.emit(R.strided_slice(x, axes, begins, ends, strides))
    for ax, idx in takes:
        x = _take(ctx, x, idx, ax)
    return x


def _take(ctx: Ctx, x: Any, idx: np.ndarray, axis: int) -> Any:
    return ctx.emit(R.take(x, np_const(idx.astype(np.int64)), axis))


@rule("tile")
def _tile(ctx: Ctx, n: Node, a: list) -> Any:
    # reshape to [1,d0,1,d1,..], broadcast to [r0,d0,r1,d1,..], merge pairs
    # (TVM 0.27's tile produced NaNs on ONNX's test_tile).
    reps = [int(r) for r in n.attrs["repeats"]]  # type: ignore[union-attr]
    if all(r == 1 for r in reps):
        return a[0]
    dims = ctx.shape(n.inputs[0].shape)
    inter = [d for dim in dims for d in (1, dim)]
    big = [d for r, dim in zip(reps, dims, strict=False) for d in (r, dim)]
    x = ctx.emit(R.reshape(a[0], inter))
    x = ctx.emit(R.broadcast_to(x, big))
    return ctx.emit(R.reshape(x, ctx.shape(n.output.shape)))


@rule("pad")
def _pad(ctx: Ctx, n: Node, a: list) -> Any:
    t, pads = n.inputs[0].type, [int(p) for p in n.attrs["pads"]]  # type: ignore[union-attr]
    r, x = t.rank, a[0]
    crop = [(ax, max(-pads[ax], 0), max(-pads[ax + r], 0)) for ax in range(r)
            if pads[ax] < 0 or pads[ax + r] < 0]
    if crop:  # negative pads crop first
        x = ctx.emit(R.strided_slice(x, [c[0] for c in crop], [c[1] for c in crop],
                                     [int(t.shape[c[0]]) - c[2] for c in crop]))  # type: ignore[arg-type]
    lo, hi = [max(p, 0) for p in pads[:r]], [max(p, 0) for p in pads[r:]]
    if not any(lo) and not any(hi):
        return x
    mode = str(n.attrs["mode"])
    if mode == "constant":
        value = float(n.attrs["value"])  # type: ignore[arg-type]
        return ctx.emit_te(topi.nn.pad, x, lo, hi, typed_scalar(value, t.dtype))
    for ax in range(r):
        if lo[ax] or hi[ax]:
            size = int(t.shape[ax]) - max(-pads[ax], 0) - max(-pads[ax + r], 0)  # type: ignore[arg-type]
            idx = np.pad(np.arange(size), (lo[ax], hi[ax]), mode=mode)  # type: ignore[call-overload]
            x = _take(ctx, x, idx, ax)
    return x


@rule("gather")
def _gather(ctx: Ctx, n: Node, a: list) -> Any:
    data, idx = n.inputs
    ax = int(n.attrs["axis"]) % data.type.rank  # type: ignore[arg-type]
    dim = data.shape[ax]
    zero = ctx.const(0, idx.dtype)
    size = np_const(np.asarray(dim, dtype=idx.type.np_dtype)) if isinstance(dim, int) else None
    i = a[1]
    if size is not None:
        i = ctx.emit(R.where(R.less(i, zero), R.add(i, size), i))
    return ctx.emit(R.take(a[0], i, ax))


@rule("gather_nd")
def _gather_nd(ctx: Ctx, n: Node, a: list) -> Any:
    data, idx = n.inputs
    b, k = int(n.attrs["batch_dims"]), int(idx.shape[-1])  # type: ignore[arg-type]
    dims = data.shape[b:b + k]
    i = a[1]
    if all(isinstance(d, int) for d in dims):
        size = np_const(np.asarray(dims, dtype=idx.type.np_dtype))
        i = ctx.emit(R.where(R.less(i, ctx.const(0, idx.dtype)), R.add(i, size), i))
    return ctx.emit(R.gather_nd(a[0], i, b))
