"""Hypothesis strategies for conv/BN/linear graphs: the shapes fold-batchnorm,
reparameterize and fold-scale look for, with random sizes, groups, strides, pads
and constants (BN variances positive)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from vcompile.ir.builder import Builder
from vcompile.ir.graph import Graph, Value


class _Ctx:
    def __init__(self, draw: Callable[..., Any], bb: Builder, seed: int) -> None:
        self.draw, self.bb, self.rng = draw, bb, np.random.default_rng(seed)

    def arr(self, *shape: int, positive: bool = False) -> Value:
        a = self.rng.uniform(0.5, 1.5, shape) if positive else self.rng.standard_normal(shape)
        return self.bb.const(a.astype(np.float32), hint="c")

    def bn(self, x: Value) -> Value:
        c = int(x.shape[1])
        return self.bb.emit("batch_norm", x, self.arr(c), self.arr(c), self.arr(c),
                            self.arr(c, positive=True), epsilon=1e-5)

    def conv(self, x: Value, k: int, groups: int, stride: int, pad: int, dil: int = 1) -> Value:
        c = int(x.shape[1])
        return self.bb.emit("conv2d", x, self.arr(c, c // groups, k, k), self.arr(c), groups=groups,
                            strides=(stride, stride), pads=(pad,) * 4, dilations=(dil, dil))

    def scale(self, x: Value) -> Value:
        shape = self.draw(st.sampled_from([(), (int(x.shape[1]), 1, 1), (1, int(x.shape[1]), 1, 1)]))
        op = self.draw(st.sampled_from(["mul", "add", "div"]))
        c = self.arr(*shape, positive=True) if shape else self.bb.const(np.float32(1.5), hint="c")
        return self.bb.emit(op, x, c)


def _branch(ctx: _Ctx, x: Value, groups: int, stride: int) -> Value:
    kind = ctx.draw(st.sampled_from(["conv_bn", "conv", "bn", "identity", "pool", "conv_scale"]))
    k = ctx.draw(st.sampled_from([1, 3, 5]))
    pad = k // 2 if ctx.draw(st.booleans()) or stride > 1 else ctx.draw(st.integers(0, k // 2))
    pad = k // 2 if stride > 1 else pad
    if kind in ("bn", "identity", "pool") and stride == 1:
        if kind == "pool":
            return ctx.bb.emit("avg_pool2d", x, kernel=(3, 3), pads=(1, 1, 1, 1), count_include_pad=True)
        return ctx.bn(x) if kind == "bn" else x
    y = ctx.conv(x, k, groups, stride, k // 2)
    if kind == "conv_bn":
        return ctx.bn(y)
    return ctx.scale(y) if kind == "conv_scale" else y


@st.composite
def conv_bn_graphs(draw: Callable[..., Any]) -> Graph:
    """Conv/linear blocks with BN before, after or alone, parallel branches, scales."""
    bb = Builder("block")
    ctx = _Ctx(draw, bb, draw(st.integers(0, 2**16)))
    c = draw(st.sampled_from([2, 4]))
    x = bb.input((1, c, 6, 6), hint="x")
    groups = draw(st.sampled_from([1, c]))
    stride = draw(st.sampled_from([1, 1, 2]))
    y = _branch(ctx, x, groups, stride)
    for _ in range(draw(st.integers(0, 3))):
        other = _branch(ctx, x, groups, stride)
        if other.type == y.type:
            y = bb.emit(draw(st.sampled_from(["add", "add", "sub"])), y, other)
    if draw(st.booleans()):
        y = ctx.bn(y)
    if draw(st.booleans()):
        y = ctx.scale(y)
    if draw(st.booleans()):  # a pre-BN 1x1 conv, or a padded conv after a BN
        k = draw(st.sampled_from([1, 3]))
        y = ctx.conv(ctx.bn(bb.emit("relu", y)), k, 1, 1, k // 2)
    outs = [y]
    if draw(st.booleans()):  # linear with BN before and after
        f = bb.emit("reshape", bb.emit("reduce_mean", y, axes=(2, 3)), shape=(1, -1))
        f = ctx.bn(f) if draw(st.booleans()) else f
        n = int(f.shape[1])
        f = bb.emit("gemm", f, ctx.arr(n, 3), ctx.arr(3), trans_b=False)
        outs.append(ctx.bn(f) if draw(st.booleans()) else f)
    return bb.build(*outs)
