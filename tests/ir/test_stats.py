"""graph_stats: op counts, parameters and FLOPs, checked against hand counts."""
from __future__ import annotations

import numpy as np
import pytest

from vcompile.ir import OPS, Builder, Graph
from vcompile.ir.stats import FLOP_RULES, format_stats, graph_stats, node_flops


def _w(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def _one_op(op: str, in_shapes: list[tuple[int, ...]], consts: list[np.ndarray] = (),  # type: ignore[assignment]
            **attrs: object) -> Graph:
    bb = Builder(op)
    xs = [bb.input(s, hint=f"x{i}") for i, s in enumerate(in_shapes)]
    cs = [bb.const(c, hint=f"c{i}") for i, c in enumerate(consts)]
    return bb.build(bb.emit(op, *xs, *cs, **attrs))


@pytest.mark.parametrize(("g", "flops"), [
    # 2 * out_elems(1*4*8*8) * Cin(3) * 3*3
    (_one_op("conv2d", [(1, 3, 8, 8)], [_w(4, 3, 3, 3), _w(4)], pads=(1, 1, 1, 1)), 2 * 256 * 27),
    # depthwise: Cin/groups = 1
    (_one_op("conv2d", [(1, 8, 8, 8)], [_w(8, 1, 3, 3), _w(8)], pads=(1, 1, 1, 1), groups=8),
     2 * 512 * 9),
    # stride 2 halves each spatial dim: out 1*16*4*4
    (_one_op("conv2d", [(1, 3, 8, 8)], [_w(16, 3, 1, 1), _w(16)], strides=(2, 2)), 2 * 256 * 3),
    (_one_op("conv1d", [(2, 4, 10)], [_w(6, 4, 3), _w(6)]), 2 * (2 * 6 * 8) * 12),
    # transposed: each input element meets C_out/groups * k*k weights
    (_one_op("conv_transpose2d", [(1, 4, 5, 5)], [_w(4, 2, 3, 3), _w(2)], strides=(2, 2)),
     2 * 100 * 2 * 9),
    (_one_op("matmul", [(2, 3, 4), (4, 5)]), 2 * 30 * 4),
    (_one_op("matmul", [(1, 3, 197, 64), (1, 3, 64, 197)]), 2 * 3 * 197 * 197 * 64),
    (_one_op("gemm", [(2, 8)], [_w(16, 8), _w(16)], trans_b=True), 2 * 2 * 16 * 8),
    (_one_op("gemm", [(8, 2), (8, 16)], trans_a=True), 2 * 2 * 16 * 8),
    (_one_op("einsum", [(2, 3, 4), (2, 4, 5)], equation="bij,bjk->bik"), 2 * 2 * 3 * 4 * 5),
    (_one_op("einsum", [(2, 3, 4), (4, 5)], equation="...ij,jk->...ik"), 2 * 2 * 3 * 4 * 5),
    (_one_op("einsum", [(3, 4)], equation="ij->"), 2 * 12),
    (_one_op("relu", [(1, 4, 8, 8)]), 256),
    (_one_op("gelu", [(1, 197, 768)]), 197 * 768),
    (_one_op("add", [(1, 4, 8, 8), (4, 1, 1)]), 256),  # broadcast: per output element
    (_one_op("cast", [(1, 4, 8, 8)], to="f16"), 0),
    (_one_op("identity", [(3, 3)]), 0),
    (_one_op("reshape", [(1, 4, 8, 8)], shape=(1, 256)), 0),
    (_one_op("transpose", [(2, 3)], perm=(1, 0)), 0),
    (_one_op("reduce_mean", [(2, 3, 4)], axes=(2,)), 24),  # per input element
    (_one_op("softmax", [(2, 10)]), 5 * 20),
    (_one_op("layer_norm", [(1, 197, 192)], [_w(192), _w(192)]), 7 * 197 * 192),
    (_one_op("batch_norm", [(1, 4, 8, 8)], [_w(4)] * 4), 2 * 256),
])
def test_flops_per_op(g: Graph, flops: int) -> None:
    assert node_flops(g.nodes[0]) == flops
    assert graph_stats(g).flops == flops


def test_every_anchor_op_has_a_flop_rule() -> None:
    # NOTE: anchors are the compute-heavy ops; one without a rule would silently count 0.
    missing = [name for name, op in OPS.items() if op.kind == "anchor" and name not in FLOP_RULES]
    assert not missing


def test_pool_flops_one_per_tap() -> None:
    if "max_pool2d" not in OPS:
        pytest.skip("pooling ops not registered")
    g = _one_op("max_pool2d", [(1, 2, 8, 8)], kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1))
    assert graph_stats(g).flops == (2 * 4 * 4) * 9


def _small_net() -> Graph:
    """conv 3->4 (3x3, pad 1) on 8x8, relu, flatten, gemm 256->2, plus unused and int consts."""
    bb = Builder("net")
    x = bb.input((1, 3, 8, 8), hint="x")
    w, b = bb.const(_w(4, 3, 3, 3), hint="w"), bb.const(_w(4), hint="b")
    fw, fb = bb.const(_w(2, 256), hint="fw"), bb.const(_w(2), hint="fb")
    bb.const(_w(1000), hint="unused")
    idx = bb.const(np.array([0], np.int64), hint="idx")
    y = bb.emit("relu", bb.emit("conv2d", x, w, b, pads=(1, 1, 1, 1)))
    y = bb.emit("gemm", bb.emit("reshape", y, shape=(1, 256)), fw, fb, trans_b=True)
    return bb.build(bb.emit("gather", y, idx, axis=1))


def test_small_net_totals() -> None:
    s = graph_stats(_small_net())
    assert s.op_counts == {"conv2d": 1, "gather": 1, "gemm": 1, "relu": 1, "reshape": 1}
    assert s.nodes == 5
    assert s.op_flops["conv2d"] == 13824 and s.op_flops["relu"] == 256
    assert s.op_flops["gemm"] == 2 * 2 * 256
    assert s.flops == 13824 + 256 + 1024
    assert s.params == 108 + 4 + 512 + 2  # float consts in use: no `unused`, no i64 `idx`
    assert s.param_bytes == 4 * s.params


def test_format_stats_table() -> None:
    text = format_stats(graph_stats(_small_net()))
    lines = text.splitlines()
    assert lines[0] == "graph @net: inputs f32[1,3,8,8] -> outputs f32[1,1]"
    assert lines[1].split() == ["op", "count", "FLOPs", "%"]
    assert lines[2].split() == ["conv2d", "1", "13,824", "91.5"]
    assert lines[-3].split() == ["total", "5", "15,104", "100.0"]
    assert lines[-2] == "parameters: 626 (626, 0.0 MiB)"
    assert lines[-1] == "FLOPs: 15,104 (0.000 GFLOP; multiply-add = 2 FLOPs)"


def test_symbolic_batch_counts_as_one() -> None:
    bb = Builder("dyn")
    x = bb.input(("N", 3, 4), hint="x")
    g = bb.build(bb.emit("relu", x))
    s = graph_stats(g)
    assert (s.flops, s.symbols) == (12, ("N",))
    assert "GFLOP per N=1;" in format_stats(s)


def test_fused_region_counts_its_body() -> None:
    inner = Builder("body")
    a = inner.input((2, 8), hint="a")
    body = inner.build(inner.emit("sigmoid", inner.emit("relu", a)))
    bb = Builder("outer")
    x = bb.input((2, 8), hint="x")
    (y,) = bb.emit_multi("fused", x, region=body)
    s = graph_stats(bb.build(y))
    assert s.op_counts == {"relu": 1, "sigmoid": 1}
    assert s.flops == 32


# Multiply-adds of the conv/linear/matmul layers, counted independently with torch
# forward hooks on timm's modules (resnet18: convs 1,813,561,344 + fc 512,000), and by
# hand for deit-tiny (197 tokens, width 192, 3 heads, 12 blocks):
#   patch conv 196*192*768 + 12 * (qkv 197*192*576 + q@k and attn@v 2*3*197*197*64
#   + proj 197*192*192 + mlp 2*197*192*768) + head 192*1000 = 1,253,683,200
ANCHOR_MACS = {"resnet18": 1_813_561_344 + 512_000, "deit_tiny_patch16_224": 1_253_683_200}


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("name", sorted(ANCHOR_MACS))
def test_timm_model_flops(name: str, exporter: str) -> None:
    from tests.models import onnx_model
    from vcompile.frontends import onnx as onnx_frontend

    s = graph_stats(onnx_frontend.load(onnx_model(name, exporter)))
    anchors = sum(f for op, f in s.op_flops.items() if OPS[op].kind == "anchor"
                  and not op.endswith(("pool1d", "pool2d", "pool3d")))
    assert anchors == 2 * ANCHOR_MACS[name]
    print(f"{name} {exporter}: {s.flops / 1e9:.3f} GFLOP in all, {anchors / 1e9:.3f} in "
          f"conv/matmul/gemm, {s.params:,} parameters")
