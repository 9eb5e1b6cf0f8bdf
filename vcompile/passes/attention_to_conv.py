"""attention-to-conv: transformer blocks in a channel-first, convolution-friendly layout.

    linear(x: [B,N,C] | [B,H,W,C], w, b)   => conv2d(X: [B,C,H,W], w^T[:, :, None, None], b)
                                              (H*W = N: the conv's own grid when the tokens
                                              came from one, else H = 1: [B, C, 1, N])
    layer_norm(x) {axis=-1}                => layer_norm(X) {axis=1, naxes=1}   (over C)
    attention(q, k, v, bias?) {scale}      => O = V @ softmax(scale * (K^T @ Q) + bias^T, axis=-2)
        on Q, K, V: [B, h, D, N], the per-head channel slices of the projections (a reshape
        of the conv output, read directly); the softmax runs over the key axis; O: [B, h, D, N]
    elementwise(x, y | const)              => the same op on the twins (constants re-laid out)
    reshape/transpose/split/squeeze/slice  => nothing, or a reshape/channel slice of the twin;
                                              transposes back to tokens appear only where a
                                              consumer needs the token layout (layout_twins.py)

Layouts (`--attn-layout`, `attention-to-conv{layout=ane}` in a pipeline, `layout=`
when called): `bchw` (default) as above; `ane`
always [B, C, 1, N] with the attention split into one matmul chain per head (the form
Apple's Neural Engine paper uses); `bnc` leaves the graph unchanged. Preconditions: run
after `recognize` (it makes the linear, layer_norm and attention ops this pass moves);
static shapes (values with symbolic dims keep their layout). Exact up to float
reassociation in the softmax/matmul order.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np

from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph, Node, Value
from vcompile.ir.ops import OPS
from vcompile.passes.dce import dce
from vcompile.passes.infra.layout_twins import Relayout, Twin, token_twin, tokens_ok, trackable
from vcompile.passes.infra.registry import note, register

Layout = Literal["bnc", "bchw", "ane"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
# layout ops a twin follows by evaluating them on its index array (`OpDef.selection`)
VIEWS = frozenset(name for name, op in OPS.items() if op.selection and op.category == "layout")


class AttnLayoutError(VcompileError):
    pass


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise AttnLayoutError(f"unknown --attn-layout {layout!r}; use one of {', '.join(LAYOUTS)} "
                              "(bnc: unchanged, bchw: channel-first, ane: [B, C, 1, N] per head)")
    return layout


class _Pass(Relayout):
    def __init__(self, g: Graph, layout: str) -> None:
        super().__init__(g, layout)
        self.changed = False

    def run(self) -> Graph:
        for n in self.g.nodes:
            rule = RULES.get(n.op) or (_elementwise if OPS[n.op].kind == "elementwise" else None)
            if not (rule is not None and n.region is None and rule(self, n)):
                self.emit_as_is(n)
        return self.bb.build(*(self.tok_of(o) for o in self.g.outputs))

def _linear(p: _Pass, n: Node) -> bool:
    x, w = n.inputs[0], n.inputs[1]
    if not tokens_ok(x) or w not in p.consts or (len(n.inputs) == 3 and n.inputs[2] not in p.consts):
        return False
    wa = p.consts[w]
    b = p.consts[n.inputs[2]] if len(n.inputs) == 3 else np.zeros(wa.shape[1], wa.dtype)
    wc = p.bb.const(np.ascontiguousarray(wa.T[:, :, None, None]), hint=w.hint or "w")
    bc = p.bb.const(np.ascontiguousarray(b), hint=n.inputs[2].hint if len(n.inputs) == 3 else "b")
    y = p.emit("conv2d", p.tokens(x), wc, bc, like=n)
    p.set_tokens(n.outputs[0], y)
    p.changed = True
    note("attention-to-conv: linear -> conv2d 1x1")
    return True


def _layer_norm(p: _Pass, n: Node) -> bool:
    x = n.inputs[0]
    if not tokens_ok(x) or n.attrs.int("axis") % x.type.rank != x.type.rank - 1 or n.attrs["naxes"] \
            or any(i not in p.consts for i in n.inputs[1:]):
        return False
    c = int(x.shape[-1])
    params = [p.bb.const(np.ascontiguousarray(np.broadcast_to(p.consts[i], (c,))), hint=i.hint)
              for i in n.inputs[1:]]
    y = p.emit("layer_norm", p.tokens(x), *params, like=n, axis=1, naxes=1, epsilon=n.attrs["epsilon"])
    p.set_tokens(n.outputs[0], y)
    p.changed = True
    return True


def _concat(p: _Pass, n: Node) -> bool:
    """concat of tokens (a class token before the patches, Swin's roll and patch merging)
    => concat of their channel-first views along the matching axis."""
    out = n.outputs[0]
    rank = out.type.rank
    # only where an input already lives channel-first (its twin is laid out differently):
    # an NCHW concat (Next-ViT) is not tokens
    if not tokens_ok(out) or not any((tw := p.twin_of(i)) is not None and tw.moved
                                     for i in n.inputs if i not in p.consts):
        return False
    axis = n.attrs.int("axis") % rank
    cf_axis = {3: {1: 3, 2: 1}, 4: {1: 2, 2: 3, 3: 1}}[rank].get(axis)
    if cf_axis is None:
        return False
    perm = (0, 2, 1) if rank == 3 else (0, 3, 1, 2)

    def cf(i: Value) -> Value:
        if i not in p.consts:
            return p.tokens(i, flat=rank == 3)
        c = p.consts[i].transpose(perm)
        return p.bb.const(np.ascontiguousarray(c[:, :, None, :] if rank == 3 else c), hint=i.hint)
    p.set_tokens(out, p.emit("concat", *(cf(i) for i in n.inputs), like=n, axis=cf_axis))
    return True


def _gather(p: _Pass, n: Node) -> bool:
    """x[:, i] of tokens (the class token) => the same pick along W of [B, C, 1, N]."""
    x, i = n.inputs
    if not tokens_ok(x) or x.type.rank != 3 or i not in p.consts or p.consts[i].ndim \
            or n.attrs.int("axis") % 3 != 1 or (tw := p.twin_of(x)) is None or not tw.recipe:
        return False
    y = p.emit("gather", p.tokens(x, flat=True), i, axis=3)
    p.tok[n.outputs[0]] = p.reshape(y, tuple(int(d) for d in n.outputs[0].shape))
    return True


def _mean_tokens(p: _Pass, n: Node) -> bool:
    """mean over the tokens [B, N, C] or [B, H, W, C] -> [B, C] (LeViT's and Swin's heads)
    => mean over H, W."""
    x = n.inputs[0]
    tw = p.twin_of(x) if tokens_ok(x) else None
    rank = x.type.rank
    axes = tuple(sorted(a % rank for a in n.attrs.ints("axes")))
    if tw is None or not tw.moved or n.attrs["keepdims"] or axes != tuple(range(1, rank - 1)):
        return False
    p.tok[n.outputs[0]] = p.emit("reduce_mean", p.tokens(x), like=n, axes=(2, 3), keepdims=False)
    return True


def _view(p: _Pass, n: Node) -> bool:
    tw = p.twin_of(n.inputs[0])
    if tw is None:
        return False
    outs = OPS[n.op].eval([tw.idx], n.attrs)
    for o, ix in zip(n.outputs, outs, strict=True):
        p.twins[o] = Twin(tw.t, np.asarray(ix), None)
        p.pending[o] = n
    return True


def _elementwise(p: _Pass, n: Node) -> bool:
    """Any elementwise op, in the layout of its first channel-first input (else of its
    first input with a twin); the other inputs follow (constants re-laid out)."""
    out = n.outputs[0]
    live = [i for i in n.inputs if i not in p.consts]
    twins = [tw for i in live if (tw := p.twin_of(i)) is not None and tw.full]
    base = next((tw for tw in twins if tw.recipe), twins[0] if twins else None)
    if base is None or len(n.outputs) != 1 or any(i.shape != out.shape for i in live):
        return False
    if not trackable(out) or base.idx.shape != tuple(out.shape):
        return False
    if not base.recipe and tokens_ok(out) and out.type.rank == 3 and any(tw.recipe is None for tw in twins):
        # an input comes out of channel-first code through views (Swin's window
        # reverse): compute in the canonical channel-first token layout instead
        first = p.tokens(live[0])
        base = Twin(first, *token_twin(first, out.type.rank))
    ins: list[Value] = []
    for i in n.inputs:
        got = (p.relay_const(base, p.consts[i], tuple(out.shape), i.hint or "c") if i in p.consts
               else p.follow(base, i))
        if got is None:
            return False
        ins.append(got)
    y = p.emit(n.op, *ins, like=n, **n.attrs)
    p.twins[out] = Twin(y, base.idx, base.recipe)
    if base.recipe is None:
        p.pending[out] = n
    return True


def _heads(p: _Pass, v: Value) -> Value | None:
    """q/k/v [..., N, D] as [..., D, N] read straight from its twin, or None."""
    tw = p.twin_of(v) if trackable(v) else None
    return None if tw is None else p.view_of(tw, np.swapaxes(tw.idx, -1, -2))


def _attention(p: _Pass, n: Node) -> bool:
    q = n.inputs[0]
    if q.type.rank < 3 or q.dtype[0] != "f":
        return False
    qkv = [_heads(p, v) for v in n.inputs[:3]]
    if any(x is None for x in qkv) or not trackable(n.outputs[0]):
        return False
    bias = None
    if len(n.inputs) == 4:
        s_shape = (*q.shape[:-1], n.inputs[1].shape[-2])
        b = n.inputs[3]
        if b in p.consts:
            bt = np.swapaxes(np.broadcast_to(p.consts[b], s_shape), -1, -2)
            bias = p.bb.const(np.ascontiguousarray(bt), hint=b.hint or "bias")
        elif b.type.rank == q.type.rank:
            bias = _swapped(p, b)
        else:
            return False
    qc, kc, vc = qkv
    if p.layout == "ane" and q.type.rank == 4 and int(q.shape[1]) > 1:
        o = _per_head(p, n, qc, kc, vc, bias)  # type: ignore[arg-type]
    else:
        o = _cf_attention(p, n, qc, kc, vc, bias)  # type: ignore[arg-type]
    rank = o.type.rank
    p.twins[n.outputs[0]] = Twin(o, np.swapaxes(np.arange(o.type.size).reshape(o.shape), -1, -2),
                                 (("transpose", {"perm": _swap(rank)}),))
    p.changed = True
    note("attention-to-conv: channel-first attention")
    return True


def _swapped(p: _Pass, v: Value, depth: int = 4) -> Value:
    """v with its last two axes swapped; through expand and add/mul of constants (Swin's
    relative-position bias plus shifted-window mask), so that the swap lands on the
    small constants instead of the expanded [B*nW, h, N, N] tensor."""
    n = p.producer.get(v)
    if v in p.consts:
        c = p.consts[v]
        c = c.reshape((1,) * (2 - c.ndim) + c.shape) if c.ndim < 2 else c
        return p.bb.const(np.ascontiguousarray(np.swapaxes(c, -1, -2)), hint=v.hint or "bias")
    if depth and n is not None and n.region is None and n.op in ("expand", "add", "mul") \
            and all(i.type.rank == v.type.rank or i in p.consts for i in n.inputs):
        if n.op == "expand" and len(n.attrs.dims("shape")) == v.type.rank:
            shape = n.attrs.dims("shape")
            return p.emit("expand", _swapped(p, n.inputs[0], depth - 1),
                          shape=(*shape[:-2], shape[-1], shape[-2]))
        if n.op != "expand":
            return p.emit(n.op, *(_swapped(p, i, depth - 1) for i in n.inputs))
    return p.emit("transpose", p.tok_of(v), perm=_swap(v.type.rank))


def _swap(rank: int) -> tuple[int, ...]:
    return (*range(rank - 2), rank - 1, rank - 2)


def _cf_attention(p: _Pass, n: Node, q: Value, k: Value, v: Value, bias: Value | None) -> Value:
    """O[.., D, N] = V[.., D, M] @ softmax(scale * K^T[.., M, D] @ Q[.., D, N] + bias^T, keys)."""
    kt = p.emit("transpose", k, perm=_swap(k.type.rank))
    s = p.emit("matmul", kt, q)
    s = p.emit("mul", s, p.bb.const(np.asarray(n.attrs["scale"], np.float32), hint="scale"))
    if bias is not None:
        s = p.emit("add", s, bias)
    return p.emit("matmul", v, p.emit("softmax", s, axis=-2), like=n)


def _per_head(p: _Pass, n: Node, q: Value, k: Value, v: Value, bias: Value | None) -> Value:
    h = int(q.shape[1])
    parts = [p.bb.emit_multi("split", x, axis=1, sizes=(1,) * h) for x in (q, k, v)]
    bparts: list[Value | None] = [None] * h
    if bias is not None and int(bias.shape[1]) == h:
        bparts = list(p.bb.emit_multi("split", bias, axis=1, sizes=(1,) * h))
    elif bias is not None:
        bparts = [bias] * h
    outs = [_cf_attention(p, n, parts[0][i], parts[1][i], parts[2][i], bparts[i]) for i in range(h)]
    return p.emit("concat", *outs, axis=1)


RULES: dict[str, Callable[[_Pass, Node], bool]] = {
    "linear": _linear, "layer_norm": _layer_norm, "attention": _attention, "concat": _concat,
    "gather": _gather, "reduce_mean": _mean_tokens,
    **{op: _view for op in VIEWS},
}


@register("attention-to-conv")
def attention_to_conv(g: Graph, *, layout: Layout = "bchw") -> Graph:
    check_layout(layout)
    if layout == "bnc" or not any(n.op in ("linear", "attention") for n in g.nodes):
        return g
    p = _Pass(g, layout)
    out = p.run()
    return dce(out) if p.changed else g
