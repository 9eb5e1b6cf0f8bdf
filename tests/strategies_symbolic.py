"""Hypothesis strategies for graphs with symbolic dims: the ops the passes rewrite, on
inputs whose batch is the symbol `N` and, for token graphs, whose sequence length is
sometimes the symbol `S` (a model exported with `dynamic_axes`).

    from tests.strategies_symbolic import SIZES, cnn_graphs, token_graphs, nhwc_chains

    @given(cnn_graphs())
    def test_pass_copes(g):
        for sizes in SIZES:                       # two bindings of the symbols
            x = seeded_inputs(g, seed=0, sizes=sizes)
            ...

What they make:
- `cnn_graphs()`: f32[N,C,H,W] through convs (grouped, strided, padded), BN before,
  after or alone, per-channel scales and shifts, parallel conv/BN/identity/avg-pool
  branches summed (re-parameterizable), activations, then sometimes a head: global
  average pool, flatten to [N, C] (`reshape {shape=[N,-1]}`), BN, linear (MatMul + Add
  or Gemm), a BN and a scale on the logits.
- `token_graphs()`: f32[N,S,D] (or f32[N,L,D] with a static L) through pre-norm
  transformer blocks spelled as exporters spell them: layer norm as ReduceMean / Sub /
  Pow / Sqrt / Div (or Mul by a reciprocal), MatMul + Add linears, GELU as erf or tanh,
  attention with the head reshape [N,S,3,H,Dh] -> transpose(2,0,3,1,4) -> split, a scale
  on q, softmax(q @ kT) @ v, the merge back; layer scales, residual adds.
- `nhwc_chains()`: tf2onnx's NHWC idiom, f32[N,H,W,C] -> transpose(0,3,1,2) -> conv ->
  transpose(0,2,3,1) -> elementwise ops (unary, binary with NHWC constants) -> ...
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from vcompile.ir.builder import Builder
from vcompile.ir.graph import Graph, Value
from vcompile.ir.types import Dim, TensorType

# Two bindings of the symbols: a run at each must agree before and after every pass.
# N=1 is the edge case (a symbol bound to 1 must not have been treated as broadcasting).
SIZES: tuple[dict[str, int], ...] = ({"N": 1, "S": 5, "H": 4, "W": 3},
                                    {"N": 3, "S": 2, "H": 2, "W": 5})
UNARY = ("relu", "gelu", "silu", "sigmoid", "tanh", "hard_swish", "neg", "abs")


class _Ctx:
    def __init__(self, draw: Callable[..., Any], bb: Builder, seed: int) -> None:
        self.draw, self.bb, self.rng = draw, bb, np.random.default_rng(seed)

    def arr(self, *shape: int, positive: bool = False, scale: float = 1.0) -> Value:
        a = self.rng.uniform(0.5, 1.5, shape) if positive else self.rng.standard_normal(shape) * scale
        return self.bb.const(a.astype(np.float32), hint="c")

    def pick(self, options: Any) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def bn(self, x: Value) -> Value:
        c = int(x.shape[1])
        return self.bb.emit("batch_norm", x, self.arr(c), self.arr(c), self.arr(c),
                            self.arr(c, positive=True), epsilon=1e-5)

    def conv(self, x: Value, k: int, groups: int = 1, stride: int = 1, out: int | None = None) -> Value:
        c = int(x.shape[1])
        o = c if out is None else out
        return self.bb.emit("conv2d", x, self.arr(o, c // groups, k, k, scale=0.5), self.arr(o),
                            groups=groups, strides=(stride, stride), pads=(k // 2,) * 4)

    def channel_const(self, x: Value, axis: int = 1, positive: bool = False) -> Value:
        """A constant that varies along `axis` of x only (a scale, a shift, a BN)."""
        c = int(x.shape[axis])
        rank = x.type.rank
        shape = self.pick([(1,) * axis + (c,) + (1,) * (rank - axis - 1),
                           (c,) + (1,) * (rank - axis - 1), ()])
        if not shape:
            return self.bb.const(np.float32(1.5), hint="c")
        return self.arr(*shape, positive=positive)

    def scale(self, x: Value, axis: int = 1) -> Value:
        op = self.pick(["mul", "add", "div"])
        return self.bb.emit(op, x, self.channel_const(x, axis, positive=op == "div"))

    def act(self, x: Value) -> Value:
        return self.bb.emit(self.pick(UNARY), x)


# ---- CNNs ---------------------------------------------------------------------------------

def _branch(ctx: _Ctx, x: Value, groups: int, stride: int) -> Value:
    kind = ctx.pick(["conv_bn", "conv", "bn", "identity", "pool", "conv_scale"])
    k = ctx.pick([1, 3])
    if kind in ("bn", "identity", "pool") and stride == 1:
        if kind == "pool":
            return ctx.bb.emit("avg_pool2d", x, kernel=(3, 3), pads=(1, 1, 1, 1), count_include_pad=True)
        return ctx.bn(x) if kind == "bn" else x
    y = ctx.conv(x, k, groups, stride)
    if kind == "conv_bn":
        return ctx.bn(y)
    return ctx.scale(y) if kind == "conv_scale" else y


def _head(ctx: _Ctx, y: Value) -> Value:
    """Global pool, flatten, BN, linear (MatMul + Add or Gemm), BN or scale."""
    bb, draw = ctx.bb, ctx.draw
    f = bb.emit("reduce_mean", y, axes=(2, 3), keepdims=True)
    f = bb.emit("reshape", f, shape=ctx.pick([("N", -1), (y.shape[0], int(y.shape[1]))]))
    c = int(f.shape[1])
    if draw(st.booleans()):
        f = ctx.bn(f)
    o = ctx.pick([3, 4])
    if draw(st.booleans()):
        f = bb.emit("add", bb.emit("matmul", f, ctx.arr(c, o)), ctx.arr(o))
    else:
        f = bb.emit("gemm", f, ctx.arr(o, c), ctx.arr(o), trans_b=True)
    if draw(st.booleans()):
        f = ctx.bn(f)
    if draw(st.booleans()):
        f = ctx.scale(f, axis=1)
    return f


def _hard_swish(ctx: _Ctx, x: Value) -> Value:
    bb = ctx.bb
    hs = bb.emit("div", bb.emit("clip", bb.emit("add", x, bb.const(np.float32(3.0))), min=0.0, max=6.0),
                 bb.const(np.float32(6.0)))
    return bb.emit("mul", x, hs) if ctx.draw(st.booleans()) else hs


def _group_norm(ctx: _Ctx, x: Value) -> Value:
    """GroupNorm as the legacy exporter writes it: reshape [N, G, -1], instance norm,
    reshape back, per-channel affine."""
    bb = ctx.bb
    c = int(x.shape[1])
    g = ctx.pick([1, c // 2, c])
    t = bb.emit("reshape", x, shape=(x.shape[0], g, -1))
    if ctx.draw(st.booleans()):
        t = bb.emit("instance_norm", t, bb.const(np.ones(g, np.float32)), bb.const(np.zeros(g, np.float32)),
                    epsilon=1e-5)
    else:
        t = bb.emit("layer_norm", t, bb.const(np.ones(int(t.shape[2]), np.float32)), epsilon=1e-5)
    t = bb.emit("reshape", t, shape=x.shape)
    return bb.emit("add", bb.emit("mul", t, ctx.arr(c, 1, 1, positive=True)), ctx.arr(c, 1, 1))


def _channel_norm(ctx: _Ctx, x: Value) -> Value:
    """ConvNeXt's channels-last layer norm: permute, layer norm over C, permute back."""
    bb = ctx.bb
    t = bb.emit("transpose", x, perm=(0, 2, 3, 1))
    c = int(x.shape[1])
    t = _layer_norm(ctx, t) if ctx.draw(st.booleans()) else \
        bb.emit("layer_norm", t, ctx.arr(c, positive=True), ctx.arr(c), epsilon=1e-6)
    return bb.emit("transpose", t, perm=(0, 3, 1, 2))


def _token_dwconv(ctx: _Ctx, x: Value) -> Value:
    """PVT's DWConv: an image flattened to tokens, back to an image for a depthwise conv,
    and flattened again: [N,C,H,W] -> [N,HW,C] -> [N,C,H,W] -> dwconv -> [N,HW,C]."""
    bb = ctx.bb
    n, c, h, w = x.shape
    tok = bb.emit("transpose", bb.emit("reshape", x, shape=(n, c, -1)), perm=(0, 2, 1))
    if ctx.draw(st.booleans()):
        tok = _linear(ctx, tok, int(c))
    img = bb.emit("reshape", bb.emit("transpose", tok, perm=(0, 2, 1)), shape=(n, c, h, w))
    img = ctx.conv(img, 3, groups=int(c))
    if ctx.draw(st.booleans()):
        img = bb.emit("gelu", img)
    tok = bb.emit("transpose", bb.emit("reshape", img, shape=(n, c, -1)), perm=(0, 2, 1))
    return bb.emit("reshape", bb.emit("transpose", tok, perm=(0, 2, 1)), shape=(n, c, h, w))


def _cnn_extra(ctx: _Ctx, y: Value) -> Value:
    kind = ctx.pick(["hard_swish", "group_norm", "channel_norm", "dwconv", "pool", "concat"])
    bb = ctx.bb
    if kind == "hard_swish":
        return _hard_swish(ctx, y)
    if kind == "group_norm":
        return _group_norm(ctx, y)
    if kind == "channel_norm":
        return _channel_norm(ctx, y)
    if kind == "dwconv":
        return _token_dwconv(ctx, y)
    if kind == "pool":
        return bb.emit("max_pool2d", y, kernel=(3, 3), pads=(1, 1, 1, 1))
    z = bb.emit("concat", y, ctx.conv(y, 1), axis=1)
    return ctx.conv(z, 1, out=int(y.shape[1]))


@st.composite
def cnn_graphs(draw: Callable[..., Any]) -> Graph:
    """A conv block (or two) on f32[N,C,H,W], N symbolic, and sometimes a linear head."""
    bb = Builder("cnn")
    ctx = _Ctx(draw, bb, draw(st.integers(0, 2**16)))
    c = ctx.pick([2, 4])
    x = bb.input(("N", c, 6, 6), hint="x")
    y = x
    for _ in range(draw(st.integers(1, 2))):
        groups, stride = ctx.pick([1, c]), ctx.pick([1, 1, 2])
        z = _branch(ctx, y, groups, stride)
        for _ in range(draw(st.integers(0, 2))):
            other = _branch(ctx, y, groups, stride)
            if other.type == z.type:
                z = bb.emit(ctx.pick(["add", "add", "sub"]), z, other)
        if draw(st.booleans()):
            z = ctx.bn(z)
        if draw(st.booleans()):
            z = ctx.scale(z)
        if draw(st.booleans()):  # a pre-BN 1x1 conv, or a padded conv after a BN
            z = ctx.conv(ctx.bn(ctx.act(z)), ctx.pick([1, 3]))
        if draw(st.booleans()):
            z = ctx.act(z)
        if draw(st.booleans()):
            z = _cnn_extra(ctx, z)
        y = z
    outs = [y]
    if draw(st.booleans()):
        outs.append(_head(ctx, y))
    return bb.build(*outs)


# ---- token graphs -------------------------------------------------------------------------

def _layer_norm(ctx: _Ctx, x: Value) -> Value:
    """Layer norm over the last axis as the exporters spell it, with its affine."""
    bb = ctx.bb
    d = int(x.shape[-1])
    mu = bb.emit("reduce_mean", x, axes=(-1,), keepdims=True)
    xc = bb.emit("sub", x, mu)
    sq = bb.emit("pow", xc, bb.const(np.float32(2.0))) if ctx.draw(st.booleans()) else bb.emit("mul", xc, xc)
    var = bb.emit("add", bb.emit("reduce_mean", sq, axes=(-1,), keepdims=True), bb.const(np.float32(1e-5)))
    std = bb.emit("sqrt", var)
    y = bb.emit("div", xc, std) if ctx.draw(st.booleans()) else bb.emit("mul", xc, bb.emit("reciprocal", std))
    if ctx.draw(st.booleans()):
        y = bb.emit("add", bb.emit("mul", y, ctx.arr(d, positive=True)), ctx.arr(d))
    return y


def _linear(ctx: _Ctx, x: Value, out: int) -> Value:
    y = ctx.bb.emit("matmul", x, ctx.arr(int(x.shape[-1]), out, scale=0.3))
    return ctx.bb.emit("add", y, ctx.arr(out)) if ctx.draw(st.booleans()) else y


def _gelu(ctx: _Ctx, x: Value) -> Value:
    bb = ctx.bb
    kind = ctx.pick(["erf", "tanh", "op", "silu"])
    if kind == "op":
        return bb.emit("gelu", x)
    if kind == "silu":
        return bb.emit("mul", x, bb.emit("sigmoid", x))
    if kind == "erf":
        e = bb.emit("erf", bb.emit("div", x, bb.const(np.float32(np.sqrt(2.0)))))
        return bb.emit("mul", bb.emit("mul", x, bb.emit("add", e, bb.const(np.float32(1.0)))),
                       bb.const(np.float32(0.5)))
    inner = bb.emit("mul", bb.emit("add", x, bb.emit("mul", bb.emit("pow", x, bb.const(np.float32(3.0))),
                                                        bb.const(np.float32(0.044715)))),
                    bb.const(np.float32(np.sqrt(2 / np.pi))))
    t = bb.emit("add", bb.emit("tanh", inner), bb.const(np.float32(1.0)))
    return bb.emit("mul", bb.emit("mul", bb.const(np.float32(0.5)), x), t)


def _attention(ctx: _Ctx, x: Value, seq: Dim) -> Value:
    """timm's attention: qkv linear, head reshape and permute, split, q scale, softmax."""
    bb = ctx.bb
    d = int(x.shape[-1])
    h = ctx.pick([1, 2])
    dh = d // h
    qkv = _linear(ctx, x, 3 * d)
    qkv = bb.emit("transpose", bb.emit("reshape", qkv, shape=("N", seq, 3, h, dh)), perm=(2, 0, 3, 1, 4))
    if ctx.draw(st.booleans()):
        q, k, v = bb.emit_multi("split", qkv, axis=0, sizes=(1, 1, 1))
        q, k, v = (bb.emit("squeeze", t, axes=(0,)) for t in (q, k, v))
    else:
        q, k, v = (bb.emit("squeeze", bb.emit("slice", qkv, starts=(i,), ends=(i + 1,), axes=(0,),
                                              steps=(1,)), axes=(0,)) for i in range(3))
    q = bb.emit("mul", q, bb.const(np.float32(dh ** -0.5)))
    a = bb.emit("matmul", q, bb.emit("transpose", k, perm=(0, 1, 3, 2)))
    if isinstance(seq, int) and ctx.draw(st.booleans()):  # a relative-position bias
        a = bb.emit("add", a, ctx.arr(*ctx.pick([(h, seq, seq), (1, h, seq, seq), (seq, seq)])))
    a = bb.emit("softmax", a, axis=-1)
    o = bb.emit("transpose", bb.emit("matmul", a, v), perm=(0, 2, 1, 3))
    return _linear(ctx, bb.emit("reshape", o, shape=("N", seq, d)), d)


def _residual(ctx: _Ctx, x: Value, y: Value) -> Value:
    if ctx.draw(st.booleans()):  # a layer scale
        y = ctx.bb.emit("mul", y, ctx.arr(int(y.shape[-1]), positive=True))
    return ctx.bb.emit("add", x, y)


@st.composite
def token_graphs(draw: Callable[..., Any]) -> Graph:
    """Pre-norm transformer blocks on f32[N,S,D] (S symbolic or static)."""
    bb = Builder("tokens")
    ctx = _Ctx(draw, bb, draw(st.integers(0, 2**16)))
    seq: Dim = ctx.pick(["S", 4])
    d = ctx.pick([4, 8])
    x = bb.input(("N", seq, d), hint="x")
    for _ in range(draw(st.integers(1, 2))):
        kind = ctx.pick(["attn", "mlp", "norm", "elementwise"])
        if kind == "attn":
            x = _residual(ctx, x, _attention(ctx, _layer_norm(ctx, x), seq))
        elif kind == "mlp":
            hid = _gelu(ctx, _linear(ctx, _layer_norm(ctx, x), 2 * d))
            x = _residual(ctx, x, _linear(ctx, hid, d))
        elif kind == "norm":
            x = _layer_norm(ctx, x)
        else:
            x = ctx.scale(ctx.act(x), axis=2)
    if draw(st.booleans()):  # tokens -> image and back (PVT's flatten(2).transpose(1, 2))
        t = bb.emit("transpose", x, perm=(0, 2, 1))
        x = bb.emit("transpose", ctx.act(t), perm=(0, 2, 1))
    return bb.build(x)


@st.composite
def image_graphs(draw: Callable[..., Any]) -> Graph:
    """f32[N,C,H,W] with symbolic H and W (convs need static spatial dims, so no convs):
    BNs, scales, activations, channel layer norms, a pooled linear head."""
    bb = Builder("image")
    ctx = _Ctx(draw, bb, draw(st.integers(0, 2**16)))
    x = bb.input(("N", ctx.pick([2, 4]), "H", "W"), hint="x")
    y = x
    for _ in range(draw(st.integers(1, 4))):
        kind = ctx.pick(["bn", "scale", "act", "norm", "hard_swish", "residual"])
        if kind == "bn":
            y = ctx.bn(y)
        elif kind == "scale":
            y = ctx.scale(y)
        elif kind == "act":
            y = ctx.act(y)
        elif kind == "norm":
            y = _channel_norm(ctx, y)
        elif kind == "hard_swish":
            y = _hard_swish(ctx, y)
        else:
            y = bb.emit("add", y, x)
    outs = [y]
    if draw(st.booleans()):
        outs.append(_head(ctx, y))
    return bb.build(*outs)


@st.composite
def symbolic_graphs(draw: Callable[..., Any]) -> Graph:
    """`tests.strategies.graphs()` whose inputs all lead with the batch symbol N."""
    from tests.strategies import graphs, tensor_types

    def batched(t: TensorType) -> TensorType:
        return t.with_shape(("N", *t.shape[1:])) if t.rank else t.with_shape(("N",))
    types = st.lists(tensor_types(symbolic=False).map(batched), min_size=1, max_size=3)
    return draw(graphs(inputs=types))


# ---- tf2onnx's NHWC chains ----------------------------------------------------------------

def _nhwc_elementwise(ctx: _Ctx, y: Value) -> Value:
    """An elementwise op on an NHWC value: unary, or binary with an NHWC constant."""
    bb = ctx.bb
    c = int(y.shape[3])
    kind = ctx.pick(["unary", "bias", "scale", "scalar", "clip"])
    if kind == "unary":
        return ctx.act(y)
    if kind == "clip":
        return bb.emit("clip", y, min=0.0, max=6.0)
    if kind == "scalar":
        return bb.emit(ctx.pick(["mul", "add", "max"]), y, bb.const(np.float32(0.5)))
    shape = ctx.pick([(c,), (1, 1, 1, c), (1, 1, c)])
    op = "add" if kind == "bias" else ctx.pick(["mul", "sub"])
    cv = ctx.arr(*shape)
    return bb.emit(op, *((y, cv) if ctx.draw(st.booleans()) else (cv, y)))


@st.composite
def nhwc_chains(draw: Callable[..., Any], symbolic: bool | None = None) -> Graph:
    """tf2onnx's idiom: each conv wrapped in NHWC <-> NCHW transposes, elementwise ops
    in NHWC between them; input f32[N,H,W,C] (N symbolic or 1), output NHWC."""
    bb = Builder("nhwc")
    ctx = _Ctx(draw, bb, draw(st.integers(0, 2**16)))
    sym = draw(st.booleans()) if symbolic is None else symbolic
    c = ctx.pick([2, 3])
    x = bb.input(("N" if sym else 1, 6, 6, c), hint="x")
    y = x
    for _ in range(draw(st.integers(1, 3))):
        t = bb.emit("transpose", y, perm=(0, 3, 1, 2))
        t = ctx.conv(t, ctx.pick([1, 3]), out=ctx.pick([2, 3]))
        z = z0 = bb.emit("transpose", t, perm=(0, 2, 3, 1))
        for _ in range(draw(st.integers(0, 3))):
            z = _nhwc_elementwise(ctx, z)
        if z.type == y.type and y is not x and draw(st.booleans()):  # a residual add
            z = bb.emit("add", z, y)
        elif z is not z0 and draw(st.booleans()):  # a shortcut from the conv's own output
            z = bb.emit("add", z, z0)
        y = z
    return bb.build(y)
