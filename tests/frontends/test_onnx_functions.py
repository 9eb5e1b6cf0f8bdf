"""ONNX ops through function-body expansion (`frontends.onnx_functions`) and the math
converters (`frontends.onnx_math`), each on a tiny model, against onnx's reference
evaluator; plus the expansion's own rules (renaming, optional inputs, attr defaults,
nesting, the body's opset, the error when a body cannot convert)."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from vcompile.frontends import UnsupportedOp, onnx_functions
from vcompile.frontends import onnx as onnx_frontend
from vcompile.frontends.onnx_ops import CONVERTERS
from vcompile.ir import interp, verify

rng = np.random.default_rng(0)


def _f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], outputs: list[str],
           opset: int, inits: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for k, v in inputs.items()]
    outs = [helper.make_empty_tensor_value_info(o) for o in outputs]
    init = [onnx.numpy_helper.from_array(v, k) for k, v in (inits or {}).items()]
    g = helper.make_graph(nodes, "t", ins, outs, initializer=init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    m = onnx.shape_inference.infer_shapes(m)  # output types, which the checker requires
    inferred = {v.name: v for v in (*m.graph.value_info, *m.graph.output)
                if v.type.tensor_type.HasField("shape")}
    first = next(iter(inputs))
    del m.graph.output[:]
    for o in outputs:  # an op without shape inference keeps its input's type (MVN-13)
        m.graph.output.append(inferred.get(o) or helper.make_tensor_value_info(
            o, helper.np_dtype_to_tensor_dtype(inputs[first].dtype), inputs[first].shape))
    return m


def _run(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    g = verify(onnx_frontend.load(model))
    with np.errstate(all="ignore"):
        return interp.run(g, *inputs.values())


def _check(model: onnx.ModelProto, inputs: dict[str, np.ndarray], rtol: float = 1e-5,
           atol: float = 1e-6, ref: str = "onnx") -> None:
    """Against onnx's reference evaluator, or onnxruntime (`ref="ort"`) where the two
    disagree and the reference is the odd one out."""
    if ref == "ort":
        ort = pytest.importorskip("onnxruntime")
        want = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, inputs)
    else:
        with np.errstate(all="ignore"):
            want = ReferenceEvaluator(model).run(None, inputs)
    got = _run(model, inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


X = {"x": _f(2, 3, 4, 5)}
# (op, attrs, opset): single-input float ops, by body or by converter
ORT_ONLY: list[tuple[str, dict[str, Any], int]] = [
    # the reference evaluator differs from onnxruntime and the spec on these: its
    # LpNormalization p=1 sums x, not |x|; its LRN loops the channel window over the batch
    # dim; its Hardmax-11 and LpPool ceil_mode disagree with both too
    ("LpNormalization", {"p": 1, "axis": 1}, 22), ("Hardmax", {}, 11),
    ("LRN", {"size": 3, "alpha": 0.1, "beta": 0.6, "bias": 1.5}, 13), ("LRN", {"size": 5}, 13),
    ("LpPool", {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1}, 22)]
UNARY: list[tuple[str, dict[str, Any], int]] = [
    ("Elu", {}, 22), ("Elu", {"alpha": 0.5}, 13), ("Selu", {}, 22), ("Celu", {"alpha": 2.0}, 22),
    ("Mish", {}, 22), ("Swish", {"alpha": 1.5}, 24), ("ThresholdedRelu", {"alpha": 0.3}, 22),
    ("Softsign", {}, 22), ("Shrink", {"lambd": 0.4, "bias": 0.1}, 22), ("Softplus", {}, 22),
    ("MeanVarianceNormalization", {}, 13), ("MeanVarianceNormalization", {"axes": [1]}, 18),
    ("HardSwish", {}, 22), ("Tan", {}, 22), ("Atan", {}, 22), ("Sinh", {}, 22), ("Cosh", {}, 22),
    ("Asinh", {}, 22), ("Sign", {}, 22), ("LpNormalization", {}, 22),
    ("Hardmax", {"axis": 2}, 13), ("LpPool", {"kernel_shape": [2, 2], "p": 3, "pads": [1, 0, 1, 1]}, 22),
    ("LpPool", {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"}, 18),
    *[(op, {"keepdims": k}, 18) for op in ("ReduceL1", "ReduceL2", "ReduceSumSquare")
      for k in (0, 1)],
    ("ReduceLogSumExp", {"keepdims": 0}, 18), ("ReduceLogSumExp", {}, 13),
]


@pytest.mark.parametrize("op,attrs,opset", UNARY, ids=[f"{u[0]}-{u[2]}-{i}" for i, u in enumerate(UNARY)])
def test_unary_ops_match_the_reference(op: str, attrs: dict[str, Any], opset: int) -> None:
    _check(_model([helper.make_node(op, ["x"], ["y"], **attrs)], X, ["y"], opset), X)


@pytest.mark.parametrize("op,attrs,opset", ORT_ONLY, ids=[f"{u[0]}-{u[2]}" for u in ORT_ONLY])
def test_ops_match_onnxruntime(op: str, attrs: dict[str, Any], opset: int) -> None:
    _check(_model([helper.make_node(op, ["x"], ["y"], **attrs)], X, ["y"], opset), X, ref="ort")


def test_domain_edges_match_the_reference() -> None:
    x = {"x": np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -1.0, 1.0, 2.0, -3.0, 1e-3,
                        100.0, -100.0], np.float32)}
    nodes = [helper.make_node(op, ["x"], [op.lower()]) for op in
             ("Asin", "Acos", "Atanh", "Acosh", "Sign", "IsNaN", "IsInf", "Softplus", "Elu")]
    nodes.append(helper.make_node("IsInf", ["x"], ["neg_inf"], detect_positive=0))
    _check(_model(nodes, x, [n.output[0] for n in nodes], 22), x)


def test_log_reductions_of_positive_and_empty_inputs() -> None:
    x = {"x": np.abs(_f(3, 4)) + 0.1}
    nodes = [helper.make_node("ReduceLogSum", ["x", "ax"], ["a"], keepdims=0),
             helper.make_node("ReduceLogSumExp", ["x", "ax"], ["b"]),
             helper.make_node("ReduceL2", ["x"], ["c"], keepdims=0)]
    _check(_model(nodes, x, ["a", "b", "c"], 18, {"ax": np.array([-1], np.int64)}), x)
    e = {"x": np.zeros((2, 0), np.float32)}
    nodes = [helper.make_node(op, ["x", "ax"], [op], keepdims=1) for op in
             ("ReduceLogSum", "ReduceLogSumExp", "ReduceL1", "ReduceSumSquare")]
    _check(_model(nodes, e, [n.output[0] for n in nodes], 18, {"ax": np.array([1], np.int64)}), e)


def test_integer_and_bitwise_ops_match_the_reference() -> None:
    a = rng.integers(-50, 50, (3, 4)).astype(np.int32)
    x = {"a": a, "b": rng.integers(-50, 50, (4,)).astype(np.int32),
         "u": rng.integers(0, 255, (3, 4)).astype(np.uint8),
         "s": rng.integers(0, 9, (3, 4)).astype(np.uint8)}
    N = helper.make_node
    nodes = [N("BitwiseAnd", ["a", "b"], ["and"]), N("BitwiseOr", ["a", "b"], ["or"]),
             N("BitwiseXor", ["a", "b"], ["xor"]), N("BitwiseNot", ["a"], ["not"]),
             N("BitShift", ["u", "s"], ["shl"], direction="LEFT"),
             N("BitShift", ["u", "s"], ["shr"], direction="RIGHT"),
             N("Sign", ["a"], ["sign"]), N("Size", ["a"], ["size"]),
             N("CumSum", ["a", "ax"], ["cs"], exclusive=1),
             N("CumSum", ["a", "ax"], ["cs_rev"], reverse=1),
             N("Trilu", ["a"], ["triu"]), N("Trilu", ["a", "k"], ["tril"], upper=0),
             N("ReduceL1", ["a"], ["l1"]), N("ReduceSumSquare", ["a"], ["ss"], keepdims=0)]
    inits = {"ax": np.array(1, np.int64), "k": np.array(-1, np.int64)}
    # NOTE: onnxruntime: the reference sums int32 squares into int64 (numpy's sum)
    _check(_model(nodes, x, [n.output[0] for n in nodes], 18, inits), x, ref="ort")


def test_prelu_trilu_and_cumprod() -> None:
    x = {"x": _f(2, 3, 4), "slope": np.abs(_f(3, 1))}
    N = helper.make_node
    nodes = [N("PRelu", ["x", "slope"], ["p"]), N("Trilu", ["x", "k"], ["t"]),
             N("CumProd", ["x", "ax"], ["cp"], exclusive=1, reverse=1)]
    inits = {"k": np.array(2, np.int64), "ax": np.array(-1, np.int64)}
    _check(_model(nodes, x, ["p", "t", "cp"], 26, inits), x)


# ---- context-dependent bodies ---------------------------------------------------------------

def test_losses_with_and_without_optional_inputs() -> None:
    x = {"scores": _f(3, 5, 2), "labels": rng.integers(0, 5, (3, 2)).astype(np.int64),
         "w": np.abs(_f(5))}
    N = helper.make_node
    nodes = [N("NegativeLogLikelihoodLoss", ["scores", "labels"], ["nll"], reduction="none"),
             N("NegativeLogLikelihoodLoss", ["scores", "labels", "w"], ["nll_w"],
               ignore_index=1),
             N("SoftmaxCrossEntropyLoss", ["scores", "labels"], ["sce"]),
             N("SoftmaxCrossEntropyLoss", ["scores", "labels", "w"], ["sce_w", "log_prob"],
               reduction="sum")]
    _check(_model(nodes, x, ["nll", "nll_w", "sce", "sce_w", "log_prob"], 22), x)


def test_attention_and_rms_norm() -> None:
    x = {"q": _f(2, 3, 4, 8), "k": _f(2, 3, 6, 8), "v": _f(2, 3, 6, 8), "s": _f(8)}
    N = helper.make_node
    nodes = [N("Attention", ["q", "k", "v"], ["attn"], is_causal=1),
             N("RMSNormalization", ["q", "s"], ["rms"], epsilon=1e-3)]
    _check(_model(nodes, x, ["attn", "rms"], 23), x, rtol=1e-4, atol=1e-5)


# ---- the expansion itself -------------------------------------------------------------------

def _expand(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx_functions.expand(model, lambda n: n.op_type in CONVERTERS)


def test_two_nodes_of_one_op_get_distinct_names_and_defaults() -> None:
    nodes = [helper.make_node("Elu", ["x"], ["a"], name="e"),
             helper.make_node("Elu", ["a"], ["b"], name="e2", alpha=0.5)]
    m = _expand(_model(nodes, X, ["b"], 22))
    names = [o for n in m.graph.node for o in n.output]
    assert len(names) == len(set(names)) and "a" in names and "b" in names
    assert all(n.op_type != "Elu" for n in m.graph.node)
    assert {n.name.split("/")[0] for n in m.graph.node} == {"e", "e2"}
    _check(_model(nodes, X, ["b"], 22), X)


def test_a_body_newer_than_the_model_keeps_its_opset() -> None:
    m = _expand(_model([helper.make_node("Elu", ["x"], ["y"])], X, ["y"], 13))
    assert {onnx_functions.node_opset(n, 13) for n in m.graph.node} == {18}
    m = _expand(_model([helper.make_node("Elu", ["x"], ["y"])], X, ["y"], 22))
    assert {onnx_functions.node_opset(n, 22) for n in m.graph.node} == {18}


def test_nothing_to_expand_returns_the_model_itself() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])], X, ["y"], 22)
    assert _expand(model) is model


def test_a_body_that_cannot_convert_keeps_the_op_in_the_error() -> None:
    # Bernoulli's body needs RandomUniformLike, which has no converter: Bernoulli is named
    node = helper.make_node("Bernoulli", ["x"], ["z"], name="coin")
    with pytest.raises(UnsupportedOp, match=r"Bernoulli \(nodes: 'coin'\)"):
        onnx_frontend.load(_model([node], X, ["z"], 22))


def test_the_models_own_functions_expand_with_attr_defaults_and_nesting() -> None:
    scale = helper.make_function("my.dom", "Scale", ["x"], ["y"], [
        helper.make_node("Constant", [], ["s"], value_float=3.0),
        helper.make_node("Mul", ["x", "s"], ["y"])], [helper.make_opsetid("", 18)])
    const = helper.make_node("Constant", [], ["s"])
    ref = const.attribute.add()
    ref.name, ref.ref_attr_name, ref.type = "value_float", "scale", onnx.AttributeProto.FLOAT
    scaled_tanh = helper.make_function("my.dom", "ScaledTanh", ["x"], ["y"], [
        const, helper.make_node("Mul", ["x", "s"], ["t"]), helper.make_node("Tanh", ["t"], ["u"]),
        helper.make_node("Scale", ["u"], ["y"], domain="my.dom")],
        [helper.make_opsetid("", 18), helper.make_opsetid("my.dom", 1)],
        attribute_protos=[helper.make_attribute("scale", 0.5)])
    nodes = [helper.make_node("ScaledTanh", ["x"], ["y"], domain="my.dom"),
             helper.make_node("ScaledTanh", ["y"], ["z"], domain="my.dom", scale=2.0)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [2, 3])],
                          [helper.make_tensor_value_info("z", 1, [2, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18),
                                            helper.make_opsetid("my.dom", 1)],
                          functions=[scale, scaled_tanh], ir_version=10)
    x = {"x": _f(2, 3)}  # NOTE: the reference evaluator lacks a function's attr defaults
    (z,) = _run(m, x)
    np.testing.assert_allclose(z, 3 * np.tanh(2 * 3 * np.tanh(0.5 * x["x"])), rtol=1e-6)


@pytest.mark.parametrize("size", [(2, 3, 4, 5), (1, 1, 3, 2, 4), (2, 3, 1, 3)])
@pytest.mark.parametrize("align", [0, 1])
def test_affine_grid(size: tuple[int, ...], align: int) -> None:
    nd = len(size) - 2
    x = {"theta": _f(size[0], nd, nd + 1)}
    node = helper.make_node("AffineGrid", ["theta", "size"], ["grid"], align_corners=align)
    m = _model([node], x, ["grid"], 20, {"size": np.array(size, np.int64)})
    _check(m, x)
