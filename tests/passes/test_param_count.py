"""`graph_stats(g).params` counts the weights inside fused regions too: -O2 keeps the
parameter count, less exactly the folded BatchNorms' own 4 x C parameters."""
from __future__ import annotations

import numpy as np

from vcompile.api import optimize
from vcompile.ir import Builder, Graph, verify
from vcompile.ir.stats import graph_stats, param_arrays


def _conv_bn_net() -> tuple[Graph, int, int]:
    """x -> conv(3->8, 3x3)+BN -> relu -> conv(8->16, 1x1)+BN -> relu -> gemm(16*8*8 -> 10);
    returns the graph, the folded convs' + gemm's parameter count, the BNs' count."""
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    bb = Builder("convbn")
    y = bb.input((1, 3, 8, 8), hint="x")
    kept = bn_params = 0
    for cin, cout, k in ((3, 8, 3), (8, 16, 1)):
        cw, cb = w(cout, cin, k, k), w(cout)
        y = bb.emit("conv2d", y, bb.const(cw, "w"), bb.const(cb, "b"), pads=(k // 2,) * 4)
        bn = [w(cout), w(cout), w(cout), np.abs(w(cout)) + 0.5]
        y = bb.emit("batch_norm", y, *(bb.const(a, "bn") for a in bn))
        y = bb.emit("relu", y)
        kept += cw.size + cb.size
        bn_params += sum(a.size for a in bn)
    y = bb.emit("reshape", y, shape=(1, 16 * 8 * 8))
    fw, fb = w(10, 16 * 8 * 8), w(10)
    y = bb.emit("gemm", y, bb.const(fw, "fw"), bb.const(fb, "fb"), trans_b=True)
    kept += fw.size + fb.size
    return verify(bb.build(y)), kept, bn_params


def test_conv_bn_before_and_after_each_level() -> None:
    g, kept, bn = _conv_bn_net()
    assert graph_stats(g).params == kept + bn
    for level in (1, 2):
        out, _ = optimize(g, level)
        assert not any(n.op == "batch_norm" for n in _all(out)), "the BNs are folded"
        assert graph_stats(out).params == kept, level  # == params of the folded convs + gemm


def test_weights_live_in_regions_after_fusion() -> None:
    g, kept, _ = _conv_bn_net()
    out, ran = optimize(g, 2)
    assert "fuse" in ran and any(n.region is not None and n.region.consts for n in out.nodes)
    assert graph_stats(out).param_bytes == 4 * kept


def test_a_weight_shared_by_two_regions_counts_once() -> None:
    bb = Builder("shared")
    x = bb.input((2, 4), hint="x")
    w = bb.const(np.arange(16, dtype=np.float32).reshape(4, 4), "w")
    y = bb.emit("sigmoid", bb.emit("relu", bb.emit("matmul", x, w)))
    g = bb.build(bb.emit("relu", bb.emit("matmul", y, w)))
    out, _ = optimize(g, 2)
    regions = [n.region for n in out.nodes if n.region is not None and n.region.consts]
    assert len(regions) == 2, "each fused kernel holds the weight"
    assert len(param_arrays(out)) == 1
    assert graph_stats(g).params == graph_stats(out).params == 16


def _all(g: Graph) -> list:
    return [m for n in g.nodes for m in (_all(n.region) if n.region is not None else [n])]
