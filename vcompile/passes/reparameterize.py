"""Structural re-parameterization: merge parallel conv branches on one input.

    add(conv_a(x), conv_b(x)), identity x, scale-shift(x), avg_pool(x), ...
      => conv(x, w, b)    one conv computing the same affine function of x

Any sum/difference of terms that are each an affine function of the same `x` --
a conv (any kernel size, groups, stride, padding, dilation), a per-channel
scale-shift of x (what a BN-only identity branch becomes after fold-batchnorm),
x itself, an exact avg_pool (zero padding or count_include_pad, no ceil mode), or
a per-channel mul/div/add of such a sum -- is one conv: kernels are embedded into the
largest window (offset so every branch keeps its own padding; a dilated kernel
becomes a sparse dense one), grouped kernels are re-blocked into the gcd of the
group counts, and weights and biases add. This covers RepVGG, MobileOne, FastViT's
RepMixer and large-kernel reparam, and RepViT without model code.

Preconditions: conv weights and biases constant, every intermediate value used
once (else the branch would still be computed), equal strides, all branches of the
same output type. Merging happens only when it saves work: the merged conv must
not cost more multiply-adds per output pixel than the branches it replaces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from vcompile.ir.graph import Graph, Node, Value
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, rewrite, rule
from vcompile.passes.infra.registry import register
from vcompile.passes.infra.rewriter import GraphEditor
from vcompile.passes.infra.weights import conv_in_fold, f64, is_conv, per_channel


@dataclass(frozen=True)
class Term:
    """conv(x, w, b) with dilation 1; `cost` is the work of the branches it stands for,
    `branches` how many convs, pools and bare inputs went into it."""
    x: Value
    w: np.ndarray  # float64 (O, C/groups, k...)
    b: np.ndarray  # float64 (O,)
    groups: int
    strides: tuple[int, ...]
    pads: tuple[int, ...]  # begins, then ends
    cost: int
    branches: int
    convs: int

    @property
    def nd(self) -> int:
        return self.w.ndim - 2

    def own_cost(self) -> int:
        return int(np.prod(self.w.shape))


def _identity(x: Value) -> Term | None:
    if x.type.rank < 3 or not isinstance(x.shape[1], int):
        return None
    c, nd = int(x.shape[1]), x.type.rank - 2
    return Term(x, np.ones((c, 1) + (1,) * nd), np.zeros(c), c, (1,) * nd, (0,) * (2 * nd), c, 1, 0)


def _undilate(w: np.ndarray, d: tuple[int, ...]) -> np.ndarray:
    if all(x == 1 for x in d):
        return w
    k = tuple((s - 1) * di + 1 for s, di in zip(w.shape[2:], d, strict=True))
    out = np.zeros(w.shape[:2] + k)
    out[(slice(None), slice(None)) + tuple(slice(None, None, di) for di in d)] = w
    return out


def _conv_term(n: Node, ed: GraphEditor) -> Term | None:
    w, b = ed.consts.get(n.inputs[1]), ed.consts.get(n.inputs[2])
    if w is None or b is None:
        return None
    a = n.attrs
    wf = _undilate(f64(w), a.ints("dilations"))
    cost = int(np.prod(w.shape))
    return Term(n.inputs[0], wf, f64(b), a.int("groups"), a.ints("strides"),
                a.ints("pads"), cost, 1, 1)


def _pool_term(n: Node) -> Term | None:
    a, x = n.attrs, n.inputs[0]
    exact = not a.bool("ceil_mode") and all(d == 1 for d in a.ints("dilations"))
    exact = exact and (a.bool("count_include_pad") or not any(a.ints("pads")))
    if not exact or not isinstance(x.shape[1], int):
        return None
    k, c = a.ints("kernel"), int(x.shape[1])
    w = np.full((c, 1) + k, 1.0 / math.prod(k))
    return Term(x, w, np.zeros(c), c, a.ints("strides"), a.ints("pads"),
                c * math.prod(k), 1, 1)


def _regroup(t: Term, g: int) -> Term:
    """The same conv expressed with `g` groups (g divides t.groups)."""
    if g == t.groups:
        return t
    o, cg1 = t.w.shape[0], t.w.shape[1]
    c = cg1 * t.groups
    cg = c // g
    rows = np.arange(o)
    off = (rows // (o // t.groups)) * cg1 - (rows // (o // g)) * cg
    w = np.zeros((o, cg) + t.w.shape[2:])
    w[rows[:, None], off[:, None] + np.arange(cg1)[None, :]] = t.w
    return replace(t, w=w, groups=g)


def _embed(t: Term, pb: tuple[int, ...], k: tuple[int, ...]) -> Term:
    """Place t's kernel in a window of size k with begin padding pb."""
    nd = t.nd
    off = [pb[i] - t.pads[i] for i in range(nd)]
    w = np.zeros(t.w.shape[:2] + k)
    window = tuple(slice(o, o + s) for o, s in zip(off, t.w.shape[2:], strict=True))
    w[(slice(None), slice(None)) + window] = t.w
    pe = tuple(t.pads[nd + i] + k[i] - t.w.shape[2 + i] - off[i] for i in range(nd))
    return replace(t, w=w, pads=tuple(pb) + pe)


def _lift(t: Term, base: Value, ed: GraphEditor) -> Term:
    """t on `base` when t's input is mul(base, c) with c per channel (a scale commutes
    with zero padding), e.g. the 0.5 of an exported GELU that fold-scale moved."""
    n = ed.producer.get(t.x)
    if t.x is base or n is None or n.op != "mul" or n.inputs[0] is not base:
        return t
    c = ed.consts.get(n.inputs[1])
    if c is None or base.type != t.x.type:
        return t
    vec = per_channel(c, base.type.rank, 1, int(base.shape[1]))
    if vec is None:
        return t
    w, _ = conv_in_fold(t.w, t.groups, vec, None)
    return replace(t, x=base, w=w)


def combine(a: Term, b: Term, sign: float, ed: GraphEditor | None = None) -> Term | None:
    """a + sign * b as one conv, or None if the geometries cannot agree."""
    if ed is not None and a.x is not b.x:
        a, b = _lift(a, b.x, ed), _lift(b, a.x, ed)
    if a.x is not b.x or a.strides != b.strides or a.w.shape[0] != b.w.shape[0] or a.nd != b.nd:
        return None
    nd = a.nd
    pb = tuple(max(a.pads[i], b.pads[i]) for i in range(nd))
    k = tuple(max(t.w.shape[2 + i] + pb[i] - t.pads[i] for t in (a, b)) for i in range(nd))
    ea, eb = _embed(a, pb, k), _embed(b, pb, k)
    if ea.pads != eb.pads:
        return None
    g = math.gcd(a.groups, b.groups)
    ea, eb = _regroup(ea, g), _regroup(eb, g)
    return replace(ea, w=ea.w + sign * eb.w, b=ea.b + sign * eb.b, cost=a.cost + b.cost,
                   branches=a.branches + b.branches, convs=a.convs + b.convs)


def _scaled(t: Term, c: np.ndarray, op: str) -> Term:
    if op == "add":
        return replace(t, b=t.b + c, cost=t.cost + len(c))
    return replace(t, w=t.w * c.reshape((-1,) + (1,) * (t.w.ndim - 1)), b=t.b * c,
                   cost=t.cost + len(c))


def analyze(v: Value, ed: GraphEditor) -> Term | None:
    """`v` as a conv of some value: a merged expression, or the identity of `v`."""
    n = ed.producer.get(v)
    if n is None or ed.uses[v] != 1 or len(n.outputs) != 1:
        return _identity(v)
    t: Term | None = None
    if is_conv(n.op):
        t = _conv_term(n, ed)
    elif n.op.startswith("avg_pool"):
        t = _pool_term(n)
    elif n.op in ("add", "sub", "mul", "div") and len(n.inputs) == 2:
        t = _binary(n, ed)
    if t is None or t.w.shape[0] != v.shape[1]:
        return _identity(v)
    return t


def _binary(n: Node, ed: GraphEditor) -> Term | None:
    a, b = n.inputs
    out = n.outputs[0].type
    c = ed.consts.get(b)
    if c is not None:
        if n.op == "sub" or a.type != out or not isinstance(out.shape[1], int):
            return None
        vec = per_channel(c, out.rank, 1, int(out.shape[1]))
        if vec is not None and n.op == "div":
            vec = 1.0 / vec if np.all(vec) else None
        ta = analyze(a, ed)
        return None if vec is None or ta is None else _scaled(ta, vec, "add" if n.op == "add" else "mul")
    if n.op in ("mul", "div") or a.type != out or b.type != out:
        return None
    ta, tb = analyze(a, ed), analyze(b, ed)
    return None if ta is None or tb is None else combine(ta, tb, -1.0 if n.op == "sub" else 1.0, ed)


@rule(P.op(("add", "sub"), P.any("a"), P.any("b")))
def merge_branches(m: Match, bb: RewriteBuilder) -> Value | None:
    y = m.root.outputs[0]
    if m.const_of(m["b"]) is not None or m.const_of(m["a"]) is not None or y.type.rank < 3:
        return None
    t = _binary(m.root, m.ed)
    if t is None or t.branches < 2 or t.convs < 1 or t.own_cost() > t.cost:
        return None
    dt = y.type.np_dtype
    w = bb.const(t.w.astype(dt), hint="w")
    b = bb.const(t.b.astype(dt), hint="b")
    return bb.emit(f"conv{t.nd}d", t.x, w, b, strides=t.strides, pads=t.pads,
                   dilations=(1,) * t.nd, groups=t.groups)


@register("reparameterize")
def reparameterize(g: Graph) -> Graph:
    return rewrite(g, [merge_branches])
