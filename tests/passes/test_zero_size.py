"""A valid model with a zero-sized batch: every -O level's pass pipeline keeps what the
interpreter computes (an empty [0, N]), the shapes onnxruntime gives; the compiled model
returns [0, N] too.

At -O1/-O2 codegen used to fail (issue 25): with CPU tiles, the tiled gemm / linear rule
(`codegen/emit/tiled.py: _dense`) ran before the empty-result shortcut of
`codegen/emit/relax.py: _emit_node` and emitted `R.reshape(x, [1, 0, 256])`, in which Relax
reads the 0 as "copy the input's dim 1" (256). The shortcut now comes first.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vcompile.api import optimize
from vcompile.frontends.onnx import load
from vcompile.ir import Graph, interp

F = TensorProto.FLOAT


def _model(tail: list[onnx.NodeProto], tail_inits: list[onnx.TensorProto],
           out: list[int], bn: bool = False) -> onnx.ModelProto:
    """x[0,3,8,8] -> Conv(4, 3x3, pad 1) [-> BatchNorm] -> Relu -> tail -> y[out]."""
    rng = np.random.default_rng(0)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
    inits = [w("w", 4, 3, 3, 3), w("b", 4)]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1],
                              kernel_shape=[3, 3])]
    if bn:
        inits += [w("g", 4), w("be", 4), w("m", 4),
                  numpy_helper.from_array(np.abs(rng.standard_normal(4)).astype(np.float32)
                                          + 0.5, "v")]
        nodes.append(helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["cb"],
                                      name="bn"))
    nodes.append(helper.make_node("Relu", ["cb" if bn else "c"], ["r"], name="relu"))
    graph = helper.make_graph(
        nodes + tail, "zero", [helper.make_tensor_value_info("x", F, [0, 3, 8, 8])],
        [helper.make_tensor_value_info("y", F, out)], inits + tail_inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8  # onnxruntime reads up to 13
    onnx.checker.check_model(m)
    return m


def _fc(bn: bool = False) -> onnx.ModelProto:
    """The issue's model: conv -> relu -> flatten -> gemm(256 -> 2)."""
    fw = numpy_helper.from_array(np.random.default_rng(1).standard_normal((2, 256))
                                 .astype(np.float32), "fw")
    fb = numpy_helper.from_array(np.ones(2, np.float32), "fb")
    return _model([helper.make_node("Flatten", ["r"], ["f"], name="flatten", axis=1),
                   helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)],
                  [fw, fb], [0, 2], bn=bn)


def _reshape_matmul() -> onnx.ModelProto:
    s = numpy_helper.from_array(np.array([-1, 256], np.int64), "s")
    mw = numpy_helper.from_array(np.ones((256, 5), np.float32), "mw")
    return _model([helper.make_node("Reshape", ["r", "s"], ["f"], name="reshape"),
                   helper.make_node("MatMul", ["f", "mw"], ["y"], name="mm")], [s, mw], [0, 5],
                  bn=True)


def _pool_softmax() -> onnx.ModelProto:
    return _model([helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
                   helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
                   helper.make_node("Softmax", ["f"], ["y"], name="softmax")], [], [0, 4])


def _transpose_mean() -> onnx.ModelProto:
    return _model([helper.make_node("Transpose", ["r"], ["t"], name="t", perm=[0, 2, 3, 1]),
                   helper.make_node("ReduceMean", ["t"], ["y"], name="mean", axes=[1, 2],
                                    keepdims=0)], [], [0, 4])


MODELS = {"fc": _fc, "fc_bn": lambda: _fc(bn=True), "reshape_matmul": _reshape_matmul,
          "pool_softmax": _pool_softmax, "transpose_mean": _transpose_mean}
X = np.zeros((0, 3, 8, 8), np.float32)


def _ort(m: onnx.ModelProto) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X})[0]


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_level_keeps_the_interpreters_result(name: str) -> None:
    m = MODELS[name]()
    g = load(m)
    want = _ort(m)
    base = interp.run(g, X)[0]
    _same(base, want)
    for level in (0, 1, 2, 3):
        out, ran = optimize(g, level)
        _same(interp.run(out, X)[0], base)


def test_the_passes_run_on_the_zero_batch() -> None:
    """-O2 really rewrites the graph (BN folded, conv+relu fused), not a no-op."""
    g = load(_fc(bn=True))
    out, ran = optimize(g, 2)
    assert {"fold-batchnorm", "fuse"} <= set(ran)
    assert not any(n.op == "batch_norm" for n in _all(out))
    assert any(n.region is not None for n in out.nodes)


def _all(g: Graph) -> list:
    return [m for n in g.nodes for m in (_all(n.region) if n.region is not None else [n])]


@pytest.mark.tvm
@pytest.mark.parametrize("level", [0, 1, 2])
def test_compiled_zero_batch_matches_onnxruntime(level: int) -> None:
    import vcompile
    m = _fc()
    want = _ort(m)
    assert want.shape == (0, 2)
    compiled = vcompile.compile(m, opt_level=level)
    got = compiled(X)
    assert len(got) == 1
    _same(np.asarray(got[0]), want)
