"""Passes on graphs with symbolic dims (a batch `N`, a sequence length `S`): every
registered pass and every -O pipeline runs without raising, keeps `verify` passing and
keeps the interpreter's outputs at two bindings of the symbols; and the rewrites that
do not depend on those dims still fire (issue 20, groundwork for dynamic shapes)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import assert_close, seeded_inputs
from tests.strategies_symbolic import SIZES, cnn_graphs, image_graphs, symbolic_graphs, token_graphs
from vcompile import passes
from vcompile.ir import Builder, Graph, interp, verify
from vcompile.ir.stats import all_nodes
from vcompile.passes.infra.registry import PASSES

# attention-to-conv moves what recognize makes, so it also runs after it, in both layouts
SPECS = sorted(PASSES) + ["O1", "O2", "O3", "recognize,attention-to-conv",
                          "recognize,attention-to-conv{layout=ane}"]
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _spec(name: str) -> str:
    return ",".join(passes.pipeline(name)) if name.startswith("O") and name[1:].isdigit() else name


def _check(g: Graph, spec: str) -> Graph:
    out = passes.run(g, _spec(spec), verify_each=True)
    verify(out)
    for sizes in SIZES:
        x = seeded_inputs(g, seed=0, sizes=sizes)
        want, got = interp.run(g, *x), interp.run(out, *x)
        for a, b in zip(got, want, strict=True):
            scale = max(float(np.max(np.abs(b))) if b.size else 1.0, 1.0)
            assert_close(a, b, rtol=1e-4, atol=1e-4 * scale)
    return out


@pytest.mark.parametrize("spec", SPECS)
@SETTINGS
@given(g=cnn_graphs())
def test_cnn_graphs_with_symbolic_batch(spec: str, g: Graph) -> None:
    _check(g, spec)


@pytest.mark.parametrize("spec", SPECS)
@SETTINGS
@given(g=token_graphs())
def test_token_graphs_with_symbolic_batch_and_sequence(spec: str, g: Graph) -> None:
    _check(g, spec)


@pytest.mark.parametrize("spec", SPECS)
@SETTINGS
@given(g=image_graphs())
def test_image_graphs_with_symbolic_spatial_dims(spec: str, g: Graph) -> None:
    _check(g, spec)


@pytest.mark.parametrize("spec", SPECS)
@SETTINGS
@given(g=symbolic_graphs())
def test_general_graphs_with_symbolic_batch(spec: str, g: Graph) -> None:
    _check(g, spec)


# ---- the dim-independent rewrites still fire -------------------------------------------------

def _ops(g: Graph) -> list[str]:
    return [n.op for n in all_nodes(g)]


def _rng_const(bb: Builder, *shape: int, positive: bool = False, seed: int = 0) -> object:
    rng = np.random.default_rng(seed + len(bb.nodes) + 7 * len(shape))
    a = rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape)
    return bb.const(a.astype(np.float32))


def _bn(bb: Builder, x):  # type: ignore[no-untyped-def]
    c = int(x.shape[1])
    return bb.emit("batch_norm", x, _rng_const(bb, c), _rng_const(bb, c), _rng_const(bb, c),
                   _rng_const(bb, c, positive=True), epsilon=1e-5)


def _conv(bb: Builder, x, k: int = 3, groups: int = 1):  # type: ignore[no-untyped-def]
    c = int(x.shape[1])
    return bb.emit("conv2d", x, _rng_const(bb, c, c // groups, k, k), _rng_const(bb, c),
                   groups=groups, pads=(k // 2,) * 4)


def test_fold_batchnorm_folds_with_symbolic_batch() -> None:
    bb = Builder("cnn")
    x = bb.input(("N", 4, 6, 6))
    y = _bn(bb, _conv(bb, x))
    f = bb.emit("reshape", bb.emit("reduce_mean", y, axes=(2, 3), keepdims=True), shape=("N", -1))
    f = _bn(bb, bb.emit("gemm", f, _rng_const(bb, 4, 3), _rng_const(bb, 3)))
    out = _check(bb.build(y, f), "fold-batchnorm")
    assert "batch_norm" not in _ops(out) and _ops(out).count("conv2d") == 1


def test_reparameterize_merges_branches_with_symbolic_batch() -> None:
    bb = Builder("rep")
    x = bb.input(("N", 4, 6, 6))
    y = bb.emit("add", bb.emit("add", _conv(bb, x, 3), _conv(bb, x, 1)), x)
    out = _check(bb.build(y), "reparameterize")
    assert _ops(out) == ["conv2d"]


def test_fold_scale_folds_layer_scale_with_symbolic_batch_and_sequence() -> None:
    bb = Builder("ls")
    x = bb.input(("N", "S", 8))
    y = bb.emit("add", bb.emit("matmul", x, _rng_const(bb, 8, 8)), _rng_const(bb, 8))
    y = bb.emit("mul", y, _rng_const(bb, 8, positive=True))
    out = _check(bb.build(bb.emit("add", x, y)), "fold-scale")
    assert _ops(out) == ["matmul", "add", "add"]


def _layer_norm(bb: Builder, x):  # type: ignore[no-untyped-def]
    xc = bb.emit("sub", x, bb.emit("reduce_mean", x, axes=(-1,), keepdims=True))
    var = bb.emit("reduce_mean", bb.emit("pow", xc, bb.const(np.float32(2.0))), axes=(-1,), keepdims=True)
    y = bb.emit("div", xc, bb.emit("sqrt", bb.emit("add", var, bb.const(np.float32(1e-5)))))
    d = int(x.shape[-1])
    return bb.emit("add", bb.emit("mul", y, _rng_const(bb, d, positive=True)), _rng_const(bb, d))


def _attention(bb: Builder, x, h: int = 2):  # type: ignore[no-untyped-def]
    d = int(x.shape[-1])
    qkv = bb.emit("add", bb.emit("matmul", x, _rng_const(bb, d, 3 * d)), _rng_const(bb, 3 * d))
    qkv = bb.emit("transpose", bb.emit("reshape", qkv, shape=("N", "S", 3, h, d // h)), perm=(2, 0, 3, 1, 4))
    q, k, v = (bb.emit("squeeze", s, axes=(0,))
               for s in bb.emit_multi("split", qkv, axis=0, sizes=(1, 1, 1)))
    q = bb.emit("mul", q, bb.const(np.float32((d // h) ** -0.5)))
    a = bb.emit("softmax", bb.emit("matmul", q, bb.emit("transpose", k, perm=(0, 1, 3, 2))), axis=-1)
    o = bb.emit("transpose", bb.emit("matmul", a, v), perm=(0, 2, 1, 3))
    return bb.emit("reshape", o, shape=("N", "S", d))


def test_recognize_with_symbolic_batch_and_sequence() -> None:
    bb = Builder("block")
    x = bb.input(("N", "S", 8))
    y = _attention(bb, _layer_norm(bb, x))
    z = bb.emit("matmul", y, _rng_const(bb, 8, 8))
    e = bb.emit("erf", bb.emit("div", z, bb.const(np.float32(np.sqrt(2.0)))))
    z = bb.emit("mul", bb.emit("mul", z, bb.emit("add", e, bb.const(np.float32(1.0)))),
                bb.const(np.float32(0.5)))
    out = _check(bb.build(z), "recognize")
    ops = _ops(out)
    assert {"layer_norm", "attention", "gelu", "linear"} <= set(ops), ops
    assert "erf" not in ops and "softmax" not in ops and "reduce_mean" not in ops


def test_fuse_fuses_with_symbolic_batch() -> None:
    bb = Builder("f")
    x = bb.input(("N", 4, 6, 6))
    y = bb.emit("relu", bb.emit("add", _conv(bb, x), x))
    out = _check(bb.build(y), "fuse")
    assert len(out.nodes) == 1 and out.nodes[0].region is not None


def test_o2_on_a_transformer_block_with_symbolic_dims() -> None:
    bb = Builder("block")
    x = bb.input(("N", "S", 8))
    y = bb.emit("add", x, _attention(bb, _layer_norm(bb, x)))
    out = _check(bb.build(y), "O2")
    assert "attention" in _ops(out) and "layer_norm" in _ops(out)


def test_group_norm_recognized_with_symbolic_batch() -> None:
    bb = Builder("gn")
    x = bb.input(("N", 4, 3, 3))
    t = bb.emit("reshape", x, shape=("N", 2, -1))
    t = bb.emit("instance_norm", t, bb.const(np.ones(2, np.float32)), bb.const(np.zeros(2, np.float32)),
                epsilon=1e-5)
    y = bb.emit("reshape", t, shape=("N", 4, 3, 3))
    y = bb.emit("add", bb.emit("mul", y, _rng_const(bb, 4, 1, 1, positive=True)), _rng_const(bb, 4, 1, 1))
    out = _check(bb.build(y), "recognize")
    assert _ops(out) == ["group_norm"]


def _tokens_dwconv(bb: Builder):  # type: ignore[no-untyped-def]
    """PVT's DWConv on tokens [N, HW, C]: view as an image, depthwise conv, back to tokens."""
    x = bb.input(("N", 12, 4))
    img = bb.emit("reshape", bb.emit("transpose", x, perm=(0, 2, 1)), shape=("N", 4, 3, 4))
    y = bb.emit("gelu", _conv(bb, img, 3, groups=4))
    return bb.emit("transpose", bb.emit("reshape", y, shape=("N", 4, 12)), perm=(0, 2, 1))


def test_depthwise_nhwc_fires_with_symbolic_batch() -> None:
    bb = Builder("dw")
    out = _check(bb.build(_tokens_dwconv(bb)), "depthwise-nhwc")
    assert "depthwise_conv2d_nhwc" in _ops(out) and "transpose" not in _ops(out), _ops(out)


def test_simplify_layout_moves_whole_dims_with_symbolic_batch() -> None:
    bb = Builder("pvt")
    x = bb.input(("N", 4, 3, 5))
    y = bb.emit("transpose", bb.emit("reshape", x, shape=("N", 4, 15)), perm=(0, 2, 1))
    out = _check(bb.build(y), "simplify-layout")
    got = [(n.op, n.attrs.get("perm")) for n in out.nodes]
    assert got == [("transpose", (0, 2, 3, 1)), ("reshape", None)]


def test_canonicalize_merges_constant_chains_with_symbolic_batch() -> None:
    bb = Builder("chain")
    x = bb.input(("N", "S", 4))
    y = bb.emit("mul", bb.emit("mul", x, _rng_const(bb, 4)), bb.const(np.float32(0.5)))
    out = _check(bb.build(y), "canonicalize")
    assert _ops(out) == ["mul"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a QDQ-rounded variance may be < 0
@pytest.mark.parametrize("make", [cnn_graphs, token_graphs], ids=["cnn", "tokens"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_lower_integer_copes_with_symbolic_dims(make, data) -> None:  # type: ignore[no-untyped-def]
    """QDQ forms of the generated graphs lower without raising and keep verifying; the
    integer numerics themselves are lower-integer's tests' business."""
    from tests.passes.qdq_util import insert_qdq
    g = passes.run(data.draw(make()), ",".join(passes.O1))
    qg = insert_qdq(g, seeded_inputs(g, seed=0, sizes=SIZES[1]))
    low = passes.run(qg, "lower-integer,canonicalize,dce", verify_each=True)
    for sizes in SIZES:
        x = seeded_inputs(g, seed=0, sizes=sizes)
        for a, b in zip(interp.run(low, *x), interp.run(qg, *x), strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype


def test_onnx_model_with_a_named_dynamic_batch() -> None:
    """The reported crash: an ONNX input ['batch', 4, 8] and a scalar scale before a MatMul
    (deit's GELU 0.5) made fold-scale compare 'batch' with an int (TypeError) at -O2."""
    from onnx import TensorProto, helper, numpy_helper

    from vcompile.frontends.onnx import load
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("s", ()), ("w", (8, 6)), ("b", (6,)))]
    nodes = [helper.make_node("Mul", ["x", "s"], ["xs"]), helper.make_node("MatMul", ["xs", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4, c])
          for n, c in (("x", 8), ("y", 6))]
    graph = helper.make_graph(nodes, "g", io[:1], io[1:], inits)
    g = load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert g.inputs[0].shape[0] == "batch"
    for sizes in ({"batch": 1}, {"batch": 3}):
        x = seeded_inputs(g, seed=0, sizes=sizes)
        out = passes.run(g, passes.O2, verify_each=True)
        assert_close(interp.run(out, *x), interp.run(g, *x), rtol=1e-4, atol=1e-4)
    assert "mul" not in _ops(passes.run(g, "fold-scale"))  # the scale folds into the weight
