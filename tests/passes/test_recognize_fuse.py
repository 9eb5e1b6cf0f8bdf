"""recognize and fuse on the timm suite (both ONNX exporters) and on small graphs:
what is recognized, that numerics hold, that groups are legal and become one kernel
each. The rule-by-rule IR is in tests/golden/recognize and tests/golden/fuse."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.models import SUITE, onnx_model, sample_input
from tests.strategies import assert_close
from vcompile import passes
from vcompile.ir import interp, parse_graph, print_graph
from vcompile.ir.builder import Builder
from vcompile.ir.graph import Graph
from vcompile.passes import fuse as F

# Every attention block of these models must come out as one attention op.
ATTENTION_BLOCKS = {"deit_tiny_patch16_224": 12, "swin_tiny_patch4_window7_224": 12,
                    "levit_128s": 11, "efficientvit_m0": 24, "pvt_v2_b0": 8}
# ... and these decomposed operators must be recognized (at least this many).
EXPECTED = {
    "convnext_atto": {"gelu": 12, "layer_norm": 17},
    "deit_tiny_patch16_224": {"gelu": 12, "layer_norm": 25, "linear": 49},
    "swin_tiny_patch4_window7_224": {"gelu": 12, "linear": 52},
    "efficientvit_b0": {"hard_swish": 24},
    "fastvit_t8": {"gelu": 17},
    "levit_128s": {"hard_swish": 25, "linear": 48},
    "mobilevitv2_050": {"silu": 25, "group_norm": 21},
    "repvit_m0_9": {"gelu": 27},
    "poolformer_s12": {"gelu": 12, "group_norm": 24},
}
LEFTOVERS = ("erf", "tanh", "softmax", "instance_norm", "reduce_mean")


def _load(name: str, exporter: str) -> Graph:
    from vcompile.api import to_graph
    return to_graph(str(onnx_model(name, exporter)))


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("name", SUITE)
def test_suite_recognized_and_sound(name: str, exporter: str) -> None:
    g1 = passes.run(_load(name, exporter), passes.O1)
    g2 = passes.run(g1, "recognize,canonicalize,dce")
    ops = Counter(n.op for n in g2.nodes)
    if name in ATTENTION_BLOCKS:
        assert ops["attention"] == ATTENTION_BLOCKS[name]
        assert ops["softmax"] == 0  # no attention left in pieces
    for op, count in EXPECTED.get(name, {}).items():
        assert ops[op] >= count, f"{op}: {ops[op]} < {count}"
    assert ops["erf"] == 0 and ops["instance_norm"] == 0
    x = sample_input(name)
    want, got = interp.run(g1, x)[0], interp.run(g2, x)[0]
    assert_close(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


@pytest.mark.slow
@pytest.mark.parametrize("name", SUITE)
def test_suite_fusion_groups_are_legal(name: str) -> None:
    g = passes.run(_load(name, "legacy"), passes.O2[:-1])  # everything but fuse
    groups = F.partition(g)
    F.check(g, groups)  # one group per node, convex
    assert all(len(grp.nodes) <= F.MAX_NODES for grp in groups)
    fused = F.fuse(g)
    assert len(fused.nodes) < len(g.nodes)
    x = sample_input(name)
    assert_close(interp.run(fused, x)[0], interp.run(g, x)[0], rtol=1e-6, atol=1e-6)
    assert parse_graph(print_graph(fused), consts=F_consts(fused)) is not None


def F_consts(g: Graph) -> dict:
    from vcompile.ir.printer import const_names
    return const_names(g)


def test_group_that_is_not_convex_is_rejected() -> None:
    bb = Builder("nc")
    x = bb.input((2, 4), hint="x")
    a = bb.emit("exp", x)
    b = bb.emit("tanh", a)
    c = bb.emit("add", a, b)
    g = bb.build(c)
    # {exp, add} without tanh: a path leaves the group (exp -> tanh) and comes back
    bad = [F.Group([g.nodes[0], g.nodes[2]]), F.Group([g.nodes[1]])]
    with pytest.raises(F.FuseError, match="not convex"):
        F.check(g, bad)
    with pytest.raises(F.FuseError, match="in no group"):
        F.check(g, bad[:1])


def test_a_value_with_two_users_ends_its_group() -> None:
    bb = Builder("two")
    x = bb.input((2, 4), hint="x")
    a = bb.emit("relu", bb.emit("exp", x))
    g = bb.build(bb.emit("add", bb.emit("tanh", a), bb.emit("sigmoid", a)))
    sizes = sorted(len(grp.nodes) for grp in F.partition(g))
    assert sizes == [1, 2, 2]  # {exp, relu}, {tanh}, {sigmoid, add}


def test_group_size_limit() -> None:
    bb = Builder("long")
    y = bb.input((2, 4), hint="x")
    for _ in range(40):
        y = bb.emit("tanh", y)
    groups = F.partition(bb.build(y))
    assert [len(grp.nodes) for grp in groups] == [16, 16, 8]


def _attention_graph() -> Graph:
    rng = np.random.default_rng(0)
    bb = Builder("attn")
    q = bb.input((1, 3, 197, 64), hint="q")
    k = bb.input((1, 3, 197, 64), hint="k")
    v = bb.input((1, 3, 197, 64), hint="v")
    bias = bb.const(rng.standard_normal((3, 197, 197)).astype(np.float32), hint="bias")
    y = bb.emit("attention", q, k, v, bias, scale=0.125)
    return bb.build(bb.emit("gelu", bb.emit("add", y, q)))


def test_attention_group_is_one_kernel_and_matches() -> None:
    import vcompile
    g = _attention_graph()
    fused = F.fuse(g)
    assert [n.op for n in fused.nodes] == ["fused"]
    m = vcompile.compile(fused, opt_level=2, passes=[])
    assert m.meta["fusion"] == "vcompile" and m.meta["kernels"] == 1
    xs = [np.random.default_rng(i).standard_normal((1, 3, 197, 64)).astype(np.float32) for i in range(3)]
    want = interp.run(g, *xs)[0]
    assert_close(m(*xs)[0], want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def _qkv_attention_graph(extra_user: bool = False, tokens: int = 197, heads: int = 3) -> Graph:
    """timm's Attention as recognize and slices-before-transpose leave it: the qkv
    projection sliced and transposed into q, k and v, the output transposed back."""
    rng = np.random.default_rng(1)
    c = 64 * heads
    bb = Builder("qkv_attn")
    x = bb.input((1, tokens, c), hint="x")
    w = bb.const(rng.standard_normal((c, 3 * c)).astype(np.float32) * 0.1, hint="w")
    qkv = bb.emit("reshape", bb.emit("linear", x, w), shape=(1, tokens, 3, heads, 64))
    parts = []
    for i in range(3):
        s = bb.emit("slice", qkv, axes=(2,), starts=(i,), ends=(i + 1,), steps=(1,))
        t = bb.emit("transpose", s, perm=(2, 0, 3, 1, 4))
        parts.append(bb.emit("squeeze", t, axes=(0,)))
    y = bb.emit("attention", *parts, scale=0.125)
    y = bb.emit("reshape", bb.emit("transpose", y, perm=(0, 2, 1, 3)), shape=(1, tokens, c))
    wo = bb.const(rng.standard_normal((c, c)).astype(np.float32) * 0.1, hint="wo")
    y = bb.emit("add", bb.emit("linear", y, wo), x)
    if extra_user:  # k also leaves the block: its slice and transpose stay a kernel
        y = bb.emit("add", y, bb.emit("reshape", parts[1], shape=(1, tokens, c)))
    return bb.build(y)


def test_attention_takes_its_layout_prologue_and_epilogue() -> None:
    import vcompile
    g = _qkv_attention_graph()
    groups = F.partition(g)
    F.check(g, groups)
    attn = next(grp for grp in groups if any(n.op == "attention" for n in grp.nodes))
    assert Counter(n.op for n in attn.nodes) == {"slice": 3, "transpose": 4, "squeeze": 3,
                                                 "attention": 1, "reshape": 1}
    assert F.kernel_name(attn.nodes) == "attention_transpose"
    fused = F.fuse(g)
    # linear, view, attention (with its slices and transposes), linear+add
    assert [str(n.attrs.get("kernel", n.op)) for n in fused.nodes] == [
        "linear", "reshape", "attention_transpose", "linear_add"]
    x = np.random.default_rng(0).standard_normal((1, 197, 192)).astype(np.float32)
    want = interp.run(g, x)[0]
    assert_close(interp.run(fused, x)[0], want, rtol=1e-6, atol=1e-6)
    m = vcompile.compile(fused, opt_level=2, passes=[])
    assert m.meta["kernels"] == 3
    assert_close(m(x)[0], want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def test_a_layout_prologue_with_another_user_stays_apart() -> None:
    g = _qkv_attention_graph(extra_user=True)
    groups = F.partition(g)
    F.check(g, groups)
    attn = next(grp for grp in groups if any(n.op == "attention" for n in grp.nodes))
    # q and v come in; k's slice/transpose/squeeze has a second user and stays out
    assert Counter(n.op for n in attn.nodes)["slice"] == 2
    assert any([n.op for n in grp.nodes] == ["slice", "transpose", "squeeze"] for grp in groups)
    x = np.random.default_rng(0).standard_normal((1, 197, 192)).astype(np.float32)
    assert_close(interp.run(F.fuse(g), x)[0], interp.run(g, x)[0], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_deit_kernels_fewer_than_tvm_fuseops() -> None:
    import vcompile
    path = str(onnx_model("deit_tiny_patch16_224", "legacy"))
    ours = vcompile.compile(path, opt_level=2)
    tvm_fused = vcompile.compile(path, opt_level=2, passes=[p for p in passes.O2 if p != "fuse"])
    unfused = vcompile.compile(path, opt_level=1)
    modes = (ours.meta["fusion"], tvm_fused.meta["fusion"], unfused.meta["fusion"])
    assert modes == ("vcompile", "tvm", "none")
    assert ours.meta["kernels"] < tvm_fused.meta["kernels"] < unfused.meta["kernels"]
    x = sample_input("deit_tiny_patch16_224")
    assert_close(ours(x)[0], tvm_fused(x)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "efficientvit_m0"])
def test_torch_frontend_attention_recognized(name: str) -> None:
    import torch

    from vcompile.frontends import torch as torch_frontend
    from vcompile.ir.stats import all_nodes
    from vcompile.models import create_timm
    model, shape = create_timm(name)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    g = passes.run(torch_frontend.load(model, (x,)), passes.O2)
    ops = Counter(n.op for n in all_nodes(g))
    assert ops["attention"] == ATTENTION_BLOCKS[name] and ops["softmax"] == 0
    with torch.inference_mode():
        want = model(x).numpy()
    assert_close(interp.run(g, x.numpy())[0], want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
