"""depthwise-nhwc: PVT's token-layout depthwise conv runs channels-last, its transposes gone.

    tokens -> linear -> transpose/reshape -> conv2d(groups=C) -> gelu -> reshape/transpose -> linear
      => tokens -> linear -> reshape -> depthwise_conv2d_nhwc -> gelu -> reshape -> linear
"""
from __future__ import annotations

import numpy as np
import pytest

from vcompile import passes
from vcompile.ir import interp
from vcompile.ir.builder import Builder, BuildError
from vcompile.ir.graph import Graph

RNG = np.random.default_rng(5)


def f(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _ops(g: Graph, op: str) -> int:
    from vcompile.ir.stats import all_nodes
    return sum(1 for n in all_nodes(g) if n.op == op)


def pvt_mlp(c: int = 32, hid: int = 64, hw: int = 7, stride: int = 1) -> Graph:
    """timm's pvt_v2 Mlp with its DWConv, as the legacy exporter spells it."""
    bb = Builder("pvt_mlp")
    x = bb.input((1, hw * hw, c), hint="x")
    h = bb.emit("linear", x, bb.const(f(c, hid)), bb.const(f(hid)))
    t = bb.emit("reshape", bb.emit("transpose", h, perm=(0, 2, 1)), shape=(1, hid, hw, hw))
    y = bb.emit("conv2d", t, bb.const(f(hid, 1, 3, 3)), bb.const(f(hid)), pads=(1, 1, 1, 1),
                groups=hid, strides=(stride, stride))
    o = hw // stride if stride > 1 else hw
    y = bb.emit("gelu", y)
    y = bb.emit("transpose", bb.emit("reshape", y, shape=(1, hid, o * o)), perm=(0, 2, 1))
    return bb.build(bb.emit("linear", y, bb.const(f(hid, c)), bb.const(f(c))))


@pytest.mark.parametrize("stride", [1, 2])
def test_token_layout_depthwise_goes_channels_last_and_transposes_cancel(stride: int) -> None:
    g = pvt_mlp(hw=8, stride=stride)
    out = passes.run(g, ("depthwise-nhwc",), verify_each=True)
    assert _ops(g, "transpose") == 2
    assert (_ops(out, "transpose"), _ops(out, "conv2d"), _ops(out, "depthwise_conv2d_nhwc")) == (0, 0, 1)
    x = f(1, 64, 32)
    np.testing.assert_allclose(interp.run(out, x)[0], interp.run(g, x)[0], rtol=1e-5, atol=1e-5)
    assert passes.run(out, ("depthwise-nhwc",)) is out  # nothing left to do


def test_gelu_joins_the_conv_group_at_O2() -> None:
    g = passes.run(pvt_mlp(), passes.O2)
    kernels = [str(n.attrs["kernel"]) for n in g.nodes if n.region is not None]
    assert "depthwise_conv2d_nhwc_gelu" in kernels, kernels
    assert _ops(g, "transpose") == 0


def test_nchw_depthwise_of_a_cnn_is_left_alone() -> None:
    """An image that is NCHW already: going channels-last would add two transposes."""
    bb = Builder("cnn")
    x = bb.input((1, 16, 10, 10), hint="x")
    y = bb.emit("conv2d", x, bb.const(f(16, 1, 3, 3)), bb.const(f(16)), pads=(1, 1, 1, 1), groups=16)
    g = bb.build(bb.emit("relu", y))
    assert passes.run(g, ("depthwise-nhwc",)) is g


def test_a_grouped_conv_is_left_alone() -> None:
    bb = Builder("grouped")
    x = bb.input((1, 49, 32), hint="x")
    t = bb.emit("reshape", bb.emit("transpose", x, perm=(0, 2, 1)), shape=(1, 32, 7, 7))
    y = bb.emit("conv2d", t, bb.const(f(32, 2, 3, 3)), bb.const(f(32)), pads=(1, 1, 1, 1), groups=16)
    g = bb.build(y)
    assert passes.run(g, ("depthwise-nhwc",)) is g


def test_op_equals_nchw_conv_and_rejects_bad_weights() -> None:
    x, w, b = f(2, 9, 11, 24), f(24, 1, 3, 3), f(24)
    attrs = {"strides": (2, 1), "pads": (1, 0, 1, 2), "dilations": (1, 1)}
    bb = Builder("nhwc")
    y = bb.emit("depthwise_conv2d_nhwc", bb.input(x.shape, hint="x"), bb.const(w), bb.const(b), **attrs)
    got = interp.run(bb.build(y), x)[0]
    bb = Builder("nchw")
    y = bb.emit("conv2d", bb.input((2, 24, 9, 11), hint="x"), bb.const(w), bb.const(b), groups=24, **attrs)
    want = interp.run(bb.build(y), np.ascontiguousarray(x.transpose(0, 3, 1, 2)))[0]
    np.testing.assert_allclose(got, want.transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-6)
    bb = Builder("bad")
    with pytest.raises(BuildError, match=r"weight must be \[24, 1, KH, KW\]"):
        bb.emit("depthwise_conv2d_nhwc", bb.input(x.shape, hint="x"), bb.const(f(24, 2, 3, 3)), bb.const(b))


def test_profile_counts_it_as_a_conv() -> None:
    from vcompile.report.kernels import name_class, op_class
    assert op_class("depthwise_conv2d_nhwc") == "conv"
    assert name_class("fused_depthwise_conv2d_nhwc_gelu_14_w") == "conv"
