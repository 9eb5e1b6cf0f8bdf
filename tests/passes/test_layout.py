"""simplify-layout: transposes move whole dims, activations sit before layout moves.

    transpose(reshape(x)) => reshape(transpose(x))  (groups kept together), exact
    transpose of size-1 dims => reshape
    gelu(transpose(x)) => transpose(gelu(x))
    window_partition(layer_norm(x)) => layer_norm(window_partition(x))  (whole rows move)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vcompile import passes
from vcompile.ir import interp
from vcompile.ir.builder import Builder
from vcompile.passes.layout import dim_groups

RNG = np.random.default_rng(3)


def _ops(g: Any) -> list[tuple[str, Any]]:
    return [(n.op, n.attrs.get("perm")) for n in g.nodes]


def _run(g: Any, name: str = "simplify-layout") -> Any:
    out = passes.run(g, name, verify_each=True)
    x = RNG.standard_normal(tuple(g.inputs[0].type.shape)).astype(np.float32)
    np.testing.assert_array_equal(interp.run(out, x)[0], interp.run(g, x)[0])
    return out


def test_dim_groups() -> None:
    assert dim_groups((1, 256, 56, 56), (1, 256, 3136)) == [
        (range(0, 1), range(0, 1)), (range(1, 2), range(1, 2)), (range(2, 4), range(2, 3))]
    assert dim_groups((1, 3136, 256), (1, 56, 56, 256))[1] == (range(1, 2), range(1, 3))
    assert dim_groups((2, 3, 4), (4, 6)) == [(range(0, 3), range(0, 2))]
    assert dim_groups((1, 8, 1), (8,)) == [(range(0, 3), range(0, 1))]
    assert dim_groups((2, 3), (7,)) is None


def test_flatten_then_transpose_becomes_transpose_then_view() -> None:
    """PVT's x.flatten(2).transpose(1, 2): the transpose reads plain strides after."""
    bb = Builder("pvt")
    x = bb.input((1, 16, 7, 8), hint="x")
    y = bb.emit("transpose", bb.emit("reshape", x, shape=(1, 16, 56)), perm=(0, 2, 1))
    out = _run(bb.build(y))
    assert _ops(out) == [("transpose", (0, 2, 3, 1)), ("reshape", None)]


def test_unflatten_then_transpose() -> None:
    """[1, HW, C] -> [1, H, W, C] -> [1, C, H, W]: one transpose of the 3-d tensor."""
    bb = Builder("tokens_to_image")
    x = bb.input((1, 56, 24), hint="x")
    r = bb.emit("reshape", x, shape=(1, 7, 8, 24))
    out = _run(bb.build(bb.emit("transpose", r, perm=(0, 3, 1, 2))))
    assert _ops(out) == [("transpose", (0, 2, 1)), ("reshape", None)]


def test_transpose_that_splits_a_group_is_kept() -> None:
    bb = Builder("heads")
    x = bb.input((1, 10, 24), hint="x")
    r = bb.emit("reshape", x, shape=(1, 10, 4, 6))
    out = _run(bb.build(bb.emit("transpose", r, perm=(0, 2, 1, 3))))
    assert [op for op, _ in _ops(out)] == ["reshape", "transpose"]


def test_transpose_of_unit_dims_is_a_reshape() -> None:
    bb = Builder("unit")
    x = bb.input((1, 49, 1, 32), hint="x")
    out = _run(bb.build(bb.emit("transpose", x, perm=(0, 2, 1, 3))))
    assert [op for op, _ in _ops(out)] == ["reshape"]


@pytest.mark.parametrize("act", ["gelu", "relu", "hard_swish"])
def test_activation_moves_before_the_layout_op(act: str) -> None:
    """conv -> transpose -> reshape -> gelu: the gelu joins the conv's epilogue."""
    bb = Builder("act")
    x = bb.input((1, 8, 4, 4), hint="x")
    c = bb.emit("conv2d", x, bb.const(RNG.standard_normal((8, 1, 3, 3)).astype(np.float32)),
                bb.const(np.zeros(8, np.float32)), pads=(1, 1, 1, 1), groups=8)
    t = bb.emit("reshape", bb.emit("transpose", c, perm=(0, 2, 3, 1)), shape=(1, 16, 8))
    out = _run(bb.build(bb.emit(act, t)))
    assert [op for op, _ in _ops(out)] == ["conv2d", act, "transpose", "reshape"]
    fused = passes.run(out, "fuse")
    assert [n.op for n in fused.nodes][0] == "fused"
    assert [o.op for o in fused.nodes[0].region.nodes] == ["conv2d", act]


def test_attention_bias_folds_past_the_growth_limit() -> None:
    """Swin's shifted-window mask + relative-position bias is a constant, however big:
    folded once instead of expanded and added per inference; other expands stay."""
    from vcompile.passes.fold_constants import GROWTH_LIMIT
    w, h, n, d = 64, 3, 49, 8
    assert w * h * n * n > GROWTH_LIMIT
    bb = Builder("swin")
    q = bb.input((w, h, n, d), hint="q")
    mask = bb.const(RNG.standard_normal((w, 1, n, n)).astype(np.float32), hint="mask")
    pos = bb.const(RNG.standard_normal((1, h, n, n)).astype(np.float32), hint="pos")
    bias = bb.emit("add", bb.emit("expand", mask, shape=(w, h, n, n)),
                   bb.emit("expand", pos, shape=(w, h, n, n)))
    y = bb.emit("attention", q, q, q, bias, scale=0.25)
    big = bb.emit("expand", pos, shape=(w, h, n, n))  # not a bias: stays an expand
    g = bb.build(y, big)
    out = passes.run(g, "fold-constants", verify_each=True)
    assert [nd.op for nd in out.nodes] == ["attention", "expand"]
    x = RNG.standard_normal((w, h, n, d)).astype(np.float32)
    for a, b in zip(interp.run(out, x), interp.run(g, x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["avg_pool2d", "max_pool2d"])
def test_pool1d_spelled_as_2d_becomes_pool1d(op: str) -> None:
    """torch.export writes avg_pool1d as unsqueeze -> avg_pool2d (1, k) -> squeeze."""
    bb = Builder("pool1d")
    x = bb.input((1, 6, 20), hint="x")
    u = bb.emit("unsqueeze", x, axes=(2,))
    p = bb.emit(op, u, kernel=(1, 3), strides=(1, 2), pads=(0, 1, 0, 1))
    g = bb.build(bb.emit("squeeze", p, axes=(-2,)))
    out = passes.run(g, "canonicalize", verify_each=True)
    assert [(n.op, n.attrs["kernel"], n.attrs["pads"]) for n in out.nodes] == [
        (op.replace("2d", "1d"), (3,), (1, 1))]
    xv = RNG.standard_normal((1, 6, 20)).astype(np.float32)
    np.testing.assert_allclose(interp.run(out, xv)[0], interp.run(g, xv)[0], rtol=1e-6, atol=1e-6)


def test_quantized_weights_stay_quantized() -> None:
    """dequantize_linear(const int8 w) is the weight of a quantized model: folding it would
    make float weights four times the size that lower-integer can no longer lower."""
    bb = Builder("qdq")
    x = bb.input((2, 8), hint="x")
    wq = bb.const(RNG.integers(-127, 128, (8, 4)).astype(np.int8), hint="wq")
    scale = bb.const(np.full(4, 0.02, np.float32), hint="s")
    zp = bb.const(np.zeros(4, np.int8), hint="zp")
    w = bb.emit("dequantize_linear", wq, scale, zp, axis=1)
    g = bb.build(bb.emit("matmul", x, w))
    for name in ("fold-constants", "canonicalize"):
        out = passes.run(g, name, verify_each=True)
        assert [nd.op for nd in out.nodes] == ["dequantize_linear", "matmul"], name


def test_simplify_layout_sees_through_dead_users() -> None:
    """A reshape read by a dead cast as well as a live one: the live cast still moves above
    it in one run (hypothesis found the pass needing two runs)."""
    bb = Builder("dead")
    x = bb.input((), "bool", hint="x")
    r = bb.emit("reshape", x, shape=(1,))
    bb.emit("cast", r, to="f32")  # dead
    g = bb.build(bb.emit("cast", r, to="f32"))
    once = passes.run(g, "simplify-layout", verify_each=True)
    assert [n.op for n in once.nodes] == ["cast", "reshape"]
    assert passes.run(once, "simplify-layout") is once


def _swin_partition(shift: bool) -> Any:
    """Swin's norm1, shifted-window roll (two gathers) and window partition."""
    bb = Builder("swin")
    x = bb.input((1, 14, 14, 8), hint="x")
    y = bb.emit("layer_norm", x, bb.const(RNG.standard_normal(8).astype(np.float32)),
                bb.const(RNG.standard_normal(8).astype(np.float32)), axis=3)
    if shift:
        idx = bb.const(np.roll(np.arange(14), -3).astype(np.int64))
        y = bb.emit("gather", bb.emit("gather", y, idx, axis=1), idx, axis=2)
    y = bb.emit("reshape", y, shape=(1, 2, 7, 2, 7, 8))
    y = bb.emit("transpose", y, perm=(0, 1, 3, 2, 4, 5))
    return bb.build(bb.emit("reshape", y, shape=(4, 49, 8)))


@pytest.mark.parametrize("shift", [False, True])
def test_layer_norm_moves_after_whole_row_moves(shift: bool) -> None:
    g = _swin_partition(shift)
    out = passes.run(g, "simplify-layout", verify_each=True)
    assert [n.op for n in out.nodes][-1] == "layer_norm"
    ln = out.nodes[-1]
    assert ln.inputs[0].type.shape == (4, 49, 8) and int(ln.attrs["axis"]) % 3 == 2
    x = RNG.standard_normal((1, 14, 14, 8)).astype(np.float32)
    np.testing.assert_allclose(interp.run(out, x)[0], interp.run(g, x)[0], rtol=1e-6, atol=1e-6)


def test_layer_norm_stays_before_a_move_of_its_rows_contents() -> None:
    """PVT's norm then [1,HW,C] -> [1,C,HW]: the transpose splits the normalized rows."""
    bb = Builder("pvt")
    x = bb.input((1, 49, 8), hint="x")
    y = bb.emit("layer_norm", x, bb.const(np.ones(8, np.float32)), bb.const(np.zeros(8, np.float32)))
    g = bb.build(bb.emit("transpose", y, perm=(0, 2, 1)))
    assert passes.run(g, "simplify-layout") is g


def _qkv_split(extra_user: bool) -> Any:
    """timm's `qkv.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)` then q, k, v = qkv[0..2]."""
    bb = Builder("qkv")
    x = bb.input((2, 5, 3, 4, 8), hint="x")
    t = bb.emit("transpose", x, perm=(2, 0, 3, 1, 4))
    parts = [bb.emit("squeeze", bb.emit("slice", t, starts=(i,), ends=(i + 1,), axes=(0,), steps=(1,)),
                     axes=(0,)) for i in range(3)]
    y = bb.emit("add", bb.emit("add", parts[0], parts[1]), parts[2])
    if extra_user:
        y = bb.emit("add", y, bb.emit("reduce_sum", t, axes=(0,), keepdims=False))
    return bb.build(y)


def test_qkv_unbind_as_split_becomes_three_slices_before_transposes() -> None:
    """The legacy exporter writes `unbind(0)` as Split: its outputs become slices."""
    bb = Builder("qkv")
    x = bb.input((2, 5, 3, 4, 8), hint="x")
    t = bb.emit("transpose", x, perm=(2, 0, 3, 1, 4))
    q, k, v = bb.emit_multi("split", t, axis=0, sizes=(1, 1, 1))
    y = bb.emit("add", bb.emit("mul", q, k), v)
    g = bb.build(y)
    out = _run(g, "slices-before-transpose")
    assert [n.op for n in out.nodes].count("split") == 0
    assert [int(n.attrs["axes"][0]) for n in out.nodes if n.op == "slice"] == [2, 2, 2]
    assert sum(n.op == "transpose" for n in out.nodes) == 3


def test_qkv_split_slices_before_its_transpose() -> None:
    g = _qkv_split(extra_user=False)
    out = _run(g, "slices-before-transpose")
    slices = [n for n in out.nodes if n.op == "slice"]
    assert [int(n.attrs["axes"][0]) for n in slices] == [2, 2, 2]  # the transpose's axis 0 is x's 2
    assert all(n.inputs[0] is out.inputs[0] for n in slices)
    assert sum(n.op == "transpose" for n in out.nodes) == 3


def test_a_transpose_read_by_more_than_slices_stays() -> None:
    g = _qkv_split(extra_user=True)
    out = _run(g, "slices-before-transpose")
    assert all(n.inputs[0].type.shape == (3, 2, 4, 5, 8) for n in out.nodes if n.op == "slice")


def test_levit_split_then_transposes_becomes_slices() -> None:
    """LeViT: view(B, N, H, -1).split([16, 16, 64], 3), each part permute(0, 2, 1, 3)."""
    bb = Builder("levit")
    x = bb.input((1, 6, 2, 24), hint="x")
    q, k, v = bb.emit_multi("split", x, axis=3, sizes=(4, 4, 16))
    q, k, v = (bb.emit("transpose", p, perm=(0, 2, 1, 3)) for p in (q, k, v))
    s = bb.emit("matmul", q, bb.emit("transpose", k, perm=(0, 1, 3, 2)))
    g = bb.build(bb.emit("matmul", s, v))
    out = _run(g, "slices-before-transpose")
    assert [n.op for n in out.nodes].count("split") == 0
    assert [n.op for n in out.nodes].count("slice") == 3
