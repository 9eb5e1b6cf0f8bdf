"""Layout propagation by index maps: the machinery behind `attention-to-conv`.

    old value x (as the source graph has it)  <=>  twin (t, idx): x.flat[i] = t.flat[idx[i]]

The pass rebuilds the graph node by node. A value computed in another layout (a
channel-first conv output, an attention output laid out [B, h, D, N]) is recorded as
a *twin* of the old value instead of being converted back. View ops (reshape,
transpose, split, squeeze, slice, ...) on a value with a twin emit nothing: their
index map is the op's own numpy eval applied to the twin's index array, so any chain
of them is followed exactly. A consumer that wants the channel-first layout asks
`view_of`: when the index map says the wanted tensor is the twin itself, a reshape of
it, or a channel slice of it, that is all it costs; a transpose/reshape pair between
token and channel-first layouts therefore cancels, across block boundaries. Only a
consumer that needs the old layout materializes it (`tok`): by the twin's recipe (the
views that turn t into x) or by re-emitting the old view nodes on materialized inputs.

Every value keeps its exact numbers: twins are permutations of the same elements.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompile.ir.builder import Builder
from vcompile.ir.graph import Graph, Node, Value
from vcompile.passes.infra.index_maps import (
    Recipe,
    as_transpose,
    invert,
    refinements,
    stepped_box,
    strided_box,
)
from vcompile.passes.infra.registry import note

MAX_TWIN = 1 << 23  # elements; index maps of larger values are not tracked (memory)


@dataclass(frozen=True, slots=True)
class Twin:
    t: Value                  # the value in the new graph
    idx: np.ndarray           # old.flat[i] == t.flat[idx.flat[i]], shaped like the old value
    recipe: Recipe | None     # views turning t into the old layout; None: re-emit the old node

    @property
    def full(self) -> bool:
        """Every element of t appears once (views keep elements distinct; slices drop some)."""
        return self.idx.size == self.t.type.size

    @property
    def moved(self) -> bool:
        """The old value is laid out differently from t (not t itself or a reshape of it)."""
        return not (self.full and np.array_equal(self.idx.reshape(-1), np.arange(self.idx.size)))


def token_twin(t: Value, old_rank: int) -> tuple[np.ndarray, Recipe]:
    """Index map and recipe of tokens [B, N, C] (rank 3) or [B, H, W, C] (rank 4) held as
    t = [B, C, H, W]."""
    b, c, h, w = (int(d) for d in t.shape)
    ar = np.arange(b * c * h * w).reshape(b, c, h, w)
    if old_rank == 3:
        return (ar.reshape(b, c, h * w).transpose(0, 2, 1),
                (("reshape", {"shape": (b, c, h * w)}), ("transpose", {"perm": (0, 2, 1)})))
    return ar.transpose(0, 2, 3, 1), (("transpose", {"perm": (0, 2, 3, 1)}),)


def trackable(v: Value) -> bool:
    t = v.type
    return t.is_static and t.rank >= 1 and t.dtype[0] in "fib" and t.size <= MAX_TWIN


class Relayout:
    """The rebuilt graph under construction: materialized values, twins, pending views."""

    def __init__(self, g: Graph, layout: str = "bchw") -> None:
        self.g = g
        self.layout = layout  # bchw: tokens keep a conv's [H, W] grid; else [1, N]
        self.bb = Builder(g.name)
        self.bb.inputs = list(g.inputs)
        self.bb.consts = dict(g.consts)
        self.consts = g.consts
        self.producer = g.producers()
        self.tok: dict[Value, Value] = {v: v for v in (*g.inputs, *g.consts)}
        self.twins: dict[Value, Twin] = {}
        self.pending: dict[Value, Node] = {}
        self.cache: dict[tuple[Value, str], Value] = {}

    # ---- the old layout --------------------------------------------------------------------
    def emit(self, op: str, *ins: Value, like: Node | None = None, **attrs: Any) -> Value:
        hint, loc = (like.outputs[0].hint, like.loc) if like is not None else ("", "")
        return self.bb.emit(op, *ins, hint=hint, loc=loc, **attrs)

    def emit_as_is(self, n: Node) -> None:
        ins = [self.tok_of(i) for i in n.inputs]
        outs = self.bb.emit_multi(n.op, *ins, hint=n.outputs[0].hint, loc=n.loc, region=n.region,
                                  **n.attrs)
        for o, new in zip(n.outputs, outs, strict=True):
            self.tok[o] = new
            self.pending.pop(o, None)

    def tok_of(self, v: Value) -> Value:
        """v in its original layout, materialized on first use."""
        if v not in self.tok:
            tw = self.twins.get(v)
            got = None
            if tw is not None:  # the recipe, or one reshape/slice/transpose of the twin
                got = self.apply(tw.t, tw.recipe) if tw.recipe is not None \
                    else self.view_of(tw, tw.idx, boxes=False)
            if got is None:
                self.emit_as_is(self.pending[v])
            else:
                self.tok[v] = got
        return self.tok[v]

    def apply(self, x: Value, recipe: Recipe) -> Value:
        for op, attrs in recipe:
            x = self.bb.emit(op, x, **attrs)
        return x

    # ---- twins -----------------------------------------------------------------------------
    def twin_of(self, v: Value) -> Twin | None:
        """v's twin; a materialized value of rank 3 or 4 is its own (identity) twin."""
        tw = self.twins.get(v)
        if tw is None and v in self.tok and v not in self.consts and trackable(v) and v.type.rank in (3, 4):
            t = self.tok[v]
            tw = self.twins[v] = Twin(t, np.arange(t.type.size).reshape(t.shape), ())
        return tw

    def reshape(self, x: Value, shape: tuple[int, ...]) -> Value:
        return x if tuple(x.shape) == tuple(shape) else self.bb.emit("reshape", x, shape=tuple(shape))

    def view_of(self, tw: Twin, q: np.ndarray, *, boxes: bool = True) -> Value | None:
        """The tensor whose element i is tw.t.flat[q.flat[i]], when it is t itself, a
        reshape of t, or a slice of t's channel axis (1) reshaped; else None. With `boxes`,
        also any strided box of t moved by one transpose (materializing the old layout
        leaves that off: re-emitting the old slices after one shared transpose is cheaper)."""
        t, flat = tw.t, q.reshape(-1)
        size = t.type.size
        if flat.size == size and np.array_equal(flat, np.arange(size)):
            return self.reshape(t, q.shape)
        if flat.size == size:
            moved = as_transpose(flat, size)
            if moved is not None:  # one transpose: a window partition, a token/channel switch
                x = self.bb.emit("transpose", self.reshape(t, moved[0]), perm=moved[1])
                return self.reshape(x, q.shape)
        b = q.shape[0]
        if t.type.rank < 2 or t.shape[0] != b or flat.size % b:
            return self._strided(t, q) if boxes else None
        if q.ndim == 4 and t.type.rank == 4:
            got = self._head_group(t, q)
            if got is not None:
                return got
        per = flat.reshape(b, -1)
        n, stride, inner = per.shape[1], size // b, int(np.prod(t.shape[2:], dtype=np.int64))
        off = int(per[0, 0])
        if off % inner or n % inner:
            return self._strided(t, q) if boxes else None
        want = off + np.arange(n)[None, :] + (np.arange(b) * stride)[:, None]
        if not np.array_equal(per, want):
            return self._strided(t, q) if boxes else None
        c0 = off // inner
        s = self.bb.emit("slice", t, starts=(c0,), ends=(c0 + n // inner,), axes=(1,), steps=(1,))
        return self.reshape(s, q.shape)

    def _strided(self, t: Value, q: np.ndarray) -> Value | None:
        """q as a box of a reshape of t (slices, LeViT's and Swin's stride-2 subsampling,
        a shifted window's rows) or a stepped slice of t (stride 2 over an odd grid),
        moved by at most one transpose."""
        flat = q.reshape(-1)
        box: tuple[Any, ...] | None = strided_box(flat, t.type.size)  # 4 items, or 5 with steps
        for shape in ([] if box else refinements(tuple(int(d) for d in t.shape))):
            box = stepped_box(flat, shape)
            if box:
                break
        if box is None:
            return None
        shape, starts, ends, perm, *step = box
        steps = step[0] if step else [1] * len(shape)
        x = self.reshape(t, shape)
        axes = [a for a in range(len(shape)) if (starts[a], ends[a], steps[a]) != (0, shape[a], 1)]
        if axes:
            x = self.bb.emit("slice", x, starts=tuple(starts[a] for a in axes),
                             ends=tuple(ends[a] for a in axes), axes=tuple(axes),
                             steps=tuple(steps[a] for a in axes))
        moved = [a for a in perm if int(x.shape[a]) > 1]
        if moved != sorted(moved):  # moving only size-1 axes is a reshape
            x = self.bb.emit("transpose", x, perm=perm)
        return self.reshape(x, q.shape)

    def _head_group(self, t: Value, q: np.ndarray) -> Value | None:
        """q = [B, h, D, HW] taking D channels at the same offset from each of h equal
        channel groups of t = [B, C, H, W] (LeViT interleaves q, k, v per head)."""
        b, h, d, n = q.shape
        c, hw = int(t.shape[1]), int(t.shape[2]) * int(t.shape[3])
        if n != hw or c % h or h == 1:
            return None
        grp = c // h
        s = int(q.reshape(-1)[0]) // hw
        base = np.arange(t.type.size).reshape(b, h, grp, hw)
        if s + d > grp or not np.array_equal(q, base[:, :, s:s + d, :]):
            return None
        r = self.reshape(t, (b, h, grp, hw))
        if d == grp:
            return r
        return self.bb.emit("slice", r, starts=(s,), ends=(s + d,), axes=(2,), steps=(1,))

    def as_layout(self, base: Twin, v: Value, *, convert: bool = True) -> Value | None:
        """v laid out like base.t (so that base.idx maps it back), or None."""
        tw = self.twin_of(v)
        if tw is not None and tw.idx.shape == base.idx.shape:
            q = np.empty(base.t.type.size, np.int64)
            q[base.idx.reshape(-1)] = tw.idx.reshape(-1)
            got = self.view_of(tw, q.reshape(base.t.shape), boxes=False)
            if got is not None:
                return got
        if base.recipe is None or not convert:
            return None
        return self.apply(self.tok_of(v), invert(base.recipe, tuple(int(d) for d in base.t.shape)))

    def relay_const(self, base: Twin, c: np.ndarray, shape: tuple[int, ...], hint: str) -> Value:
        """Constant c (broadcast to the old `shape`) laid out like base.t, each axis
        along which it does not vary kept at size 1."""
        full = np.broadcast_to(c, shape).reshape(-1)
        out = np.empty(base.t.type.size, c.dtype)
        out[base.idx.reshape(-1)] = full
        out = out.reshape(base.t.shape)
        for ax in range(out.ndim):
            first = out.take([0], axis=ax)
            if np.array_equal(out, np.broadcast_to(first, out.shape)):
                out = first
        return self.bb.const(np.ascontiguousarray(out), hint=hint)


    def tokens(self, v: Value, *, flat: bool = False) -> Value:
        """Tokens v ([B, N, C] or [B, H, W, C]) as [B, C, H, W] ([B, C, 1, N] if `flat`):
        a view of its twin when the index map allows, else a transpose (+ reshape)."""
        key = (v, "flat" if flat else self.layout)
        if key in self.cache:
            return self.cache[key]
        tw = self.twin_of(v)
        b, c = int(v.shape[0]), int(v.shape[-1])
        if v.type.rank == 4:
            shape = (b, c, int(v.shape[1]), int(v.shape[2]))
        else:
            n = int(v.shape[1])
            grid = (1, n)
            if self.layout == "bchw" and not flat and tw is not None and tw.t.type.rank == 4 \
                    and int(tw.t.shape[2]) * int(tw.t.shape[3]) == n:
                grid = (int(tw.t.shape[2]), int(tw.t.shape[3]))
            shape = (b, c, *grid)
        perm = (0, 2, 1) if v.type.rank == 3 else (0, 3, 1, 2)
        out = None
        if tw is not None:
            out = self.view_of(tw, tw.idx.transpose(perm).reshape(shape))
        if out is None:
            note("attention-to-conv: token->channel-first transposes")
            out = self.reshape(self.bb.emit("transpose", self.tok_of(v), perm=perm), shape)
        self.cache[key] = out
        return out

    def follow(self, base: Twin, v: Value) -> Value | None:
        """v laid out like base.t: a view of v's twin, the cached token conversion, or
        the inverse of base's recipe applied to v."""
        got = self.as_layout(base, v, convert=False)
        if got is None and tokens_ok(v) and base.t.type.rank == 4 and base.recipe \
                and base.recipe == token_twin(base.t, v.type.rank)[1]:
            got = self.tokens(v)
            got = got if got.shape == base.t.shape else None
        return got if got is not None else self.as_layout(base, v)

    def set_tokens(self, old: Value, t: Value) -> None:
        idx, recipe = token_twin(t, old.type.rank)
        self.twins[old] = Twin(t, idx, recipe)


def tokens_ok(v: Value) -> bool:
    return v.type.rank in (3, 4) and trackable(v) and v.dtype[0] == "f"
