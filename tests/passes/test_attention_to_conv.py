"""attention-to-conv: transformer blocks in a channel-first layout (the rule-by-rule IR
is in tests/golden/attention-to-conv). Here: every layout keeps the numbers on
generated blocks (hypothesis) and on the timm suite, the transposes it leaves, the
--attn-layout option and its errors, and layer_norm over channels."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.models import cached_path, onnx_model, sample_input
from tests.strategies import assert_close
from vcompile import passes
from vcompile.cli import main
from vcompile.cli.passopts import pass_list
from vcompile.ir import interp, parse_graph, print_graph
from vcompile.ir.builder import Builder, BuildError
from vcompile.ir.graph import Graph, Node, users
from vcompile.ir.verify import verify
from vcompile.passes.attention_to_conv import AttnLayoutError, check_layout

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "attention-to-conv"
SPEC = "attention-to-conv,canonicalize,dce"


def spec(layout: str) -> str:
    """SPEC with attention-to-conv in `layout` (a pass option, MLIR-style)."""
    return SPEC.replace("attention-to-conv", f"attention-to-conv{{layout={layout}}}")


def _golden_input(name: str) -> Graph:
    body = (GOLDEN / f"{name}.vir").read_text().split("# ---- expected")[0]
    return parse_graph("\n".join(body.splitlines()[1:]) + "\n", consts=0)


def _close(got: Graph, want: Graph, seed: int = 0, rtol: float = 1e-5) -> None:
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(v.shape).astype(np.float32) for v in want.inputs]
    w = interp.run(want, *xs)
    scale = max(1.0, *(float(np.abs(a).max()) for a in w))
    assert_close(interp.run(got, *xs), w, rtol=rtol, atol=rtol * scale)


def _ops(g: Graph) -> Counter[str]:
    return Counter(n.op for n in g.nodes)


@pytest.mark.parametrize("layout", ["bchw", "ane"])
@pytest.mark.parametrize("name", ["vit_block", "swin_window_block", "levit_block", "hybrid_block"])
def test_blocks_in_every_layout(name: str, layout: str) -> None:
    g = _golden_input(name)
    out = passes.run(g, spec(layout), verify_each=True)
    assert passes.run(out, f"attention-to-conv{{layout={layout}}}") is out  # idempotent
    ops = _ops(out)
    assert ops["linear"] == 0 and ops["attention"] == 0
    assert ops["conv2d"] == _ops(g)["linear"] + _ops(g)["conv2d"]
    heads = 2
    assert ops["softmax"] == (heads if layout == "ane" else 1)
    _close(out, g)


def test_hybrid_block_keeps_one_layout() -> None:
    """conv stage -> attention -> conv stage: only the K^T inside attention is a transpose."""
    out = passes.run(_golden_input("hybrid_block"), SPEC)
    assert [n.op for n in out.nodes].count("transpose") == 1
    assert _inner_transposes(out) == 1


def test_bnc_leaves_the_graph_alone() -> None:
    g = _golden_input("vit_block")
    assert passes.run(g, "attention-to-conv{layout=bnc}") is g
    assert passes.get_pass("attention-to-conv")(g, layout="bnc") is g


def test_unknown_layout_is_one_line_error() -> None:
    with pytest.raises(AttnLayoutError, match=r"unknown --attn-layout 'nchw'; use one of bnc, bchw, ane"):
        check_layout("nchw")


def test_cli_unknown_layout(capsys: pytest.CaptureFixture[str]) -> None:
    path = cached_path("deit_tiny_patch16_224")  # never read: the option fails first
    rc = main(["inspect", str(path), "-O2", "--attn-layout", "chw"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("vcompile: error: unknown --attn-layout 'chw'") and err.count("\n") == 1


def _args(**kw: object) -> argparse.Namespace:
    base = {"opt_level": None, "passes": None, "disable_pass": [], "print_after": [], "attn_layout": None}
    return argparse.Namespace(**{**base, **kw})


def test_attn_layout_puts_the_pass_in_or_takes_it_out() -> None:
    o2 = pass_list(_args(opt_level=2))
    assert "attention-to-conv" not in o2  # off at -O2
    on = pass_list(_args(opt_level=2, attn_layout="ane"))
    at = on.index("attention-to-conv")
    assert on[at:at + 3] == ["attention-to-conv", "canonicalize", "dce"] and on[at + 3] == "fuse"
    assert pass_list(_args(passes="attention-to-conv,dce", attn_layout="bnc")) == ["dce"]
    assert passes.O3.count("attention-to-conv") == 0


def test_cli_inspect_runs_the_layout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    vir = tmp_path / "vit.vir"
    rc = main(["inspect", str(onnx_model("deit_tiny_patch16_224")), "-O2", "--disable-pass", "fuse",
               "--attn-layout", "ane", "--stats"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = {ln.split()[0]: ln.split()[1] for ln in out.splitlines()[2:-3] if ln.split()}
    assert rows["softmax"] == str(12 * 3) and "attention" not in rows and rows["conv2d"] == "49"
    assert not vir.exists()


def test_layer_norm_over_channels() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)
    s, b = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    bb = Builder("ln")
    y = bb.emit("layer_norm", bb.input(x.shape), bb.const(s), bb.const(b), axis=1, naxes=1)
    (got,) = interp.run(bb.build(y), x)
    mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    want = (x - mu) / np.sqrt(var + 1e-5) * s[:, None, None] + b[:, None, None]
    assert_close(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(BuildError, match="naxes=4 at axis 1 reaches past rank 4"):
        bb.emit("layer_norm", bb.input(x.shape), bb.const(s), axis=1, naxes=4)
    with pytest.raises(BuildError, match=r"must broadcast to the normalized dims \[5\]"):
        bb.emit("layer_norm", bb.input(x.shape), bb.const(np.ones(4, np.float32)), axis=1, naxes=1)


# ---- generated blocks ---------------------------------------------------------------------

@st.composite
def blocks(draw: st.DrawFn) -> Graph:
    """A random transformer block: ViT-style or LeViT-style q/k/v, from tokens or from a
    conv stage, with or without layer norm, a roll, bias, layer scale and a conv stage after."""
    b, h, d = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([2, 4]))
    hw = draw(st.sampled_from([(1, 5), (2, 3), (3, 3)]))
    n, c = hw[0] * hw[1], h * d
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    bb = Builder("block")

    def k(*s: int) -> object:
        return bb.const((rng.standard_normal(s) * 0.3).astype(np.float32))
    conv_in = draw(st.booleans())
    if conv_in:
        img = bb.input((b, c, *hw), hint="img")
        f = bb.emit("relu", bb.emit("conv2d", img, k(c, 1, 3, 3), k(c), pads=(1, 1, 1, 1), groups=c))
        x = bb.emit("transpose", bb.emit("reshape", f, shape=(b, c, n)), perm=(0, 2, 1))
    else:
        x = bb.input((b, n, c), hint="x")
    t = bb.emit("layer_norm", x, k(c), k(c)) if draw(st.booleans()) else x
    if hw[0] > 1 and draw(st.booleans()):  # Swin's roll: slice + concat on [B, H, W, C]
        g4 = bb.emit("reshape", t, shape=(b, *hw, c))
        ax = draw(st.sampled_from([1, 2]))
        cut = hw[ax - 1] - 1
        lo = bb.emit("slice", g4, starts=(cut,), ends=(hw[ax - 1],), axes=(ax,), steps=(1,))
        hi = bb.emit("slice", g4, starts=(0,), ends=(cut,), axes=(ax,), steps=(1,))
        t = bb.emit("reshape", bb.emit("concat", lo, hi, axis=ax), shape=(b, n, c))
    if draw(st.booleans()):  # ViT: [3, h, d] split
        qkv = bb.emit("linear", t, k(c, 3 * c), k(3 * c))
        r = bb.emit("transpose", bb.emit("reshape", qkv, shape=(b, n, 3, h, d)), perm=(2, 0, 3, 1, 4))
        split = bb.emit_multi("split", r, axis=0, sizes=(1, 1, 1))
        q, kk, v = [bb.emit("squeeze", z, axes=(0,)) for z in split]
    else:  # LeViT: per head [q k v]
        qkv = bb.emit("linear", t, k(c, 3 * c))
        heads = bb.emit("reshape", qkv, shape=(b, n, h, 3 * d))
        parts = bb.emit_multi("split", heads, axis=3, sizes=(d, d, d))
        q, kk, v = [bb.emit("transpose", z, perm=(0, 2, 1, 3)) for z in parts]
    extra = [k(h, n, n)] if draw(st.booleans()) else []
    a = bb.emit("attention", q, kk, v, *extra, scale=d ** -0.5)
    a = bb.emit("reshape", bb.emit("transpose", a, perm=(0, 2, 1, 3)), shape=(b, n, c))
    a = bb.emit(draw(st.sampled_from(["gelu", "hard_swish", "identity"])), a)
    p = bb.emit("linear", a, k(c, c), k(c))
    if draw(st.booleans()):
        p = bb.emit("mul", p, k(c))  # layer scale
    y = bb.emit("add", x, p)
    if draw(st.booleans()):
        y = bb.emit("conv2d", bb.emit("reshape", bb.emit("transpose", y, perm=(0, 2, 1)), shape=(b, c, *hw)),
                    k(c, c, 1, 1), k(c))
    return verify(bb.build(y))


@settings(max_examples=40, deadline=None)
@given(blocks(), st.sampled_from(["bchw", "ane"]))
def test_generated_blocks_are_sound_and_idempotent(g: Graph, layout: str) -> None:
    out = passes.run(g, spec(layout), verify_each=True)
    assert passes.run(out, f"attention-to-conv{{layout={layout}}}") is out
    assert _ops(out)["linear"] == 0 and _ops(out)["attention"] == 0
    _close(out, g)


# ---- the timm suite -----------------------------------------------------------------------

# Hybrid models: no transpose of rank <= 4 may be left between conv and attention stages,
# only the K^T inside each attention (efficientvit_m0 keeps its window partition, rank 5).
HYBRIDS = ("nextvit_small", "lowformer_b0", "efficientvit_m0")
SUITE_A2C = {"deit_tiny_patch16_224": 12, "swin_tiny_patch4_window7_224": 12, "levit_128s": 11,
             "efficientvit_m0": 24, "mobilevitv2_050": 0, "nextvit_small": 4, "lowformer_b0": 7,
             "pvt_v2_b0": 8, "convnext_atto": 0}
# ... and every transpose of these goes (ConvNeXt's channels-last LayerNorm, PVT's blocks)
ONLY_KT = ("deit_tiny_patch16_224", "levit_128s", "nextvit_small", "lowformer_b0", "pvt_v2_b0",
           "convnext_atto")


def _is_kt(n: Node, us: dict) -> bool:
    """A K^T of a channel-first attention: a transpose only a matmul reads, as its lhs."""
    return [(u.op, u.inputs[0] is n.outputs[0]) for u in us.get(n.outputs[0], [])] == [("matmul", True)]


def _inner_transposes(g: Graph) -> int:
    us = users(g)
    return sum(1 for n in g.nodes if n.op == "transpose" and _is_kt(n, us))


def _stage_switches(g: Graph) -> int:
    us = users(g)
    return sum(1 for n in g.nodes if n.op == "transpose" and n.inputs[0].type.rank <= 4 and not _is_kt(n, us))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SUITE_A2C))
def test_suite_outputs_and_transposes(name: str) -> None:
    from vcompile.api import to_graph
    exporter = "legacy" if cached_path(name, "legacy").exists() or name not in HYBRIDS[:2] else "dynamo"
    # as `with_attn_layout` runs it: without the token-layout-only rewrites
    from vcompile.passes.infra.pipeline import BNC_ONLY
    g = passes.run(to_graph(str(onnx_model(name, exporter))),
                   [p for p in passes.O2[:-1] if p not in BNC_ONLY])
    out = passes.run(g, SPEC)
    before, after = _ops(g), _ops(out)
    assert after["attention"] == 0 and after["matmul"] >= 2 * SUITE_A2C[name]
    assert after["linear"] <= 2  # classifier heads on [B, C]
    assert _inner_transposes(out) == SUITE_A2C[name]
    if name in HYBRIDS:
        assert _stage_switches(out) == 0
    if name in ONLY_KT:
        assert after["transpose"] == SUITE_A2C[name]
    if SUITE_A2C[name] or name in ONLY_KT:
        assert after["transpose"] - SUITE_A2C[name] < before["transpose"]
    else:  # mobilevitv2: separable attention of 1x1 convs, nothing to move
        assert after["transpose"] == before["transpose"]
    x = sample_input(name)
    want = interp.run(g, x)[0]
    assert_close(interp.run(out, x)[0], want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    assert print_graph(out)


@pytest.mark.parametrize("layout", ["bchw", "ane"])
def test_compiled_block_matches_interpreter(layout: str) -> None:
    """The channel-first ops (layer_norm over C, softmax over keys, 1x1 convs on
    [B, C, 1, N]) through TVM, fused, against the interpreter on the original block."""
    pytest.importorskip("tvm")
    import vcompile
    g = _golden_input("hybrid_block")
    m = vcompile.compile(g, target="host", opt_level=2, attn_layout=layout)
    assert "attention-to-conv" in m.meta["passes"]
    rng = np.random.default_rng(3)
    x = rng.standard_normal(g.inputs[0].shape).astype(np.float32)
    want = interp.run(g, x)[0]
    assert_close(m(x)[0], want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


def test_compile_cli_rejects_a_bad_layout_before_loading(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    missing = tmp_path / "never_read.onnx"
    missing.write_bytes(b"not onnx")
    rc = main([str(missing), "--attn-layout", "nhwc", "-o", str(tmp_path / "m.so")])
    err = capsys.readouterr().err
    assert rc == 1 and "unknown --attn-layout 'nhwc'" in err and "not onnx" not in err.lower()


def test_o3_leaves_attention_to_conv_off_everywhere() -> None:
    """The per-model -O3 table is gone (every entry was off): -O3 on any target has no
    attention-to-conv unless --attn-layout asks for it."""
    from vcompile.planner import CompileOptions, plan
    for target in ("host", "arm64", "cuda"):
        names = [s.name for s in plan(CompileOptions(target=target, opt_level=3)).passes]
        assert "attention-to-conv" not in names
    on = plan(CompileOptions(opt_level=3, attn_layout="bchw")).passes
    assert "attention-to-conv{layout=bchw}" in [str(s) for s in on]


# ---- index maps -----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.randoms(use_true_random=False), st.booleans())
def test_index_maps_find_transposes_and_boxes(shape: list[int], rnd: object, stepped: bool) -> None:
    """Any transpose of a reshape is found, and any box (unit steps) of it, transposed;
    boxes with steps are found often (a stride-2 box whose runs merge across axes is
    not: the pass then converts). Whatever is returned rebuilds the index array exactly."""
    from vcompile.passes.infra.index_maps import as_transpose, stepped_box, strided_box
    a = np.arange(int(np.prod(shape))).reshape(shape)
    perm = list(range(len(shape)))
    rnd.shuffle(perm)  # type: ignore[attr-defined]
    flat = a.transpose(perm).reshape(-1)
    got = as_transpose(flat, a.size)
    assert got is not None
    assert np.array_equal(np.arange(a.size).reshape(got[0]).transpose(got[1]).reshape(-1), flat)
    box = tuple(slice(rnd.randrange(d), d, rnd.choice([1, 2]) if stepped else 1)  # type: ignore[attr-defined]
                for d in shape)
    sub = a[box].transpose(perm).reshape(-1)
    found = strided_box(sub, a.size) or stepped_box(sub, tuple(shape))
    if found is None:
        assert stepped, f"unit-step box {box} under {perm} not found"
        return
    sh, starts, ends, p, *steps = found
    k = steps[0] if steps else [1] * len(sh)
    rebuilt = np.arange(a.size).reshape(sh)[tuple(slice(*z) for z in zip(starts, ends, k, strict=True))]
    assert np.array_equal(rebuilt.transpose(p).reshape(-1), sub)


def test_index_maps_reject_what_is_no_view() -> None:
    from vcompile.passes.infra.index_maps import as_transpose, stepped_box, strided_box
    shuffled = np.random.default_rng(0).permutation(24)
    assert as_transpose(shuffled, 24) is None
    assert strided_box(shuffled[:6], 24) is None and stepped_box(shuffled[:6], (2, 3, 4)) is None
    rolled = np.roll(np.arange(12), 1)  # a cyclic shift: Swin's roll of a permuted tensor
    assert as_transpose(rolled, 12) is None
