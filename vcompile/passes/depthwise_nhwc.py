"""depthwise-nhwc: a depthwise conv whose input arrives channels-last runs channels-last.

    conv2d(x, w, b) {groups = C}     => transpose(depthwise_conv2d_nhwc(transpose(x, [0,2,3,1]),
      x = a token/NHWC tensor viewed      w, b), [0,3,1,2])
      as NCHW by reshape/transpose

PVT's and SegFormer's MLP (`fc1 -> DWConv -> GELU -> fc2`) hold tokens [N, H*W, C] and
view them as an image for the depthwise conv: `x.transpose(1, 2).view(N, C, H, W)`, and
back with `flatten(2).transpose(1, 2)`. Written NCHW, the conv costs two full transposes
of the widest activation of the block (pvt_v2_b0: [1, 3136, 256], 0.17 and 0.23 ms of a
7 ms model). Channels-last, the transposes this pass adds meet the exporter's and
`simplify-layout` cancels both pairs: the conv reads fc1's output as it is and fc2 reads
the conv's. The GELU moves before the transpose (simplify-layout), into the conv's group.

The rule fires only when the transpose it puts before the conv cancels, which it checks
by tracing element indices through the layout chain that feeds the conv (one
`arange` through the same reshapes and transposes): a conv fed NCHW data (a CNN) is left
as it is. Output side: if the model does not go back to tokens, one transpose remains
after the conv, the one removed before it.
"""
from __future__ import annotations

import numpy as np

from vcompile.ir.graph import Graph, Node, Value
from vcompile.ir.types import Dim
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, rewrite, rule
from vcompile.passes.infra.registry import register
from vcompile.passes.infra.rewriter import GraphEditor
from vcompile.passes.layout import simplify_layout

LAYOUT_OPS = ("reshape", "transpose")
MAX_CHAIN = 4


def _channels_last_source(ed: GraphEditor, x: Value) -> bool:
    """True when transpose(x, [0,2,3,1]) only reshapes the tensor that the layout chain
    feeding `x` (reshapes and transposes, at most MAX_CHAIN) starts from."""
    chain: list[Node] = []
    v = x
    while len(chain) < MAX_CHAIN:
        n = ed.producer.get(v)
        if n is None or n.op not in LAYOUT_OPS:
            break
        chain.append(n)
        v = n.inputs[0]
    static = all(n.inputs[0].type.is_static and n.output.type.is_static for n in chain)
    if not chain or not (static or all(_per_sample(n, x.shape[0]) for n in chain)):
        return False
    idx = np.arange(_sample(v.type.shape), dtype=np.int64).reshape(_sample_shape(v.type.shape))
    for n in reversed(chain):
        if n.op == "transpose":
            idx = idx.transpose(n.attrs.ints("perm"))
        else:
            idx = idx.reshape(_sample_shape(n.output.shape))
    flat = idx.transpose(0, 2, 3, 1).reshape(-1)
    return bool(np.array_equal(flat, np.arange(flat.size)))


def _per_sample(n: Node, batch: Dim) -> bool:
    """Whether layout op `n` is static but for a symbolic batch that stays dim 0: it then
    moves data within each sample, and tracing one sample (batch 1) traces them all."""
    ts = (n.inputs[0].type, n.output.type)
    if not isinstance(batch, str) or (n.op == "transpose" and n.attrs.ints("perm")[0] != 0):
        return False
    return all(t.shape and t.shape[0] == batch and all(isinstance(d, int) for d in t.shape[1:])
               for t in ts)


def _sample_shape(shape: tuple[Dim, ...]) -> tuple[int, ...]:
    """`shape` with a symbolic batch dim traced at 1."""
    return (shape[0] if isinstance(shape[0], int) else 1,) + tuple(int(d) for d in shape[1:])


def _sample(shape: tuple[Dim, ...]) -> int:
    return int(np.prod(_sample_shape(shape), dtype=np.int64))


@rule(P.op("conv2d", P.any("x"), P.const("w"), P.const("b")))
def channels_last_depthwise(m: Match, bb: RewriteBuilder) -> Value | None:
    x, w = m["x"], m["w"]
    if x.type.rank != 4 or not all(isinstance(d, int) for d in x.shape[1:]):
        return None
    c = int(x.shape[1])
    groups = m.root.attrs.int("groups")
    if groups != c or tuple(w.shape[:2]) != (c, 1) or not _channels_last_source(m.ed, x):
        return None
    xt = bb.emit("transpose", x, perm=(0, 2, 3, 1))
    y = bb.emit("depthwise_conv2d_nhwc", xt, w, m["b"], strides=m.root.attrs["strides"],
                pads=m.root.attrs["pads"], dilations=m.root.attrs["dilations"])
    return bb.emit("transpose", y, perm=(0, 3, 1, 2))


@register("depthwise-nhwc")
def depthwise_nhwc(g: Graph) -> Graph:
    out = rewrite(g, [channels_last_depthwise])
    return out if out is g else simplify_layout(out)
