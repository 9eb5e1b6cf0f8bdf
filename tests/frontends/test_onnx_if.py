"""ONNX If: a condition known at import (exporters test shapes) inlines the taken branch; a
condition computed at run time runs both branches and selects (if-conversion), when they
give equal types; otherwise a one-line error. Checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vcompile.frontends import onnx as onnx_frontend
from vcompile.ir import interp, verify

ort = pytest.importorskip("onnxruntime")
F = TensorProto.FLOAT


def _branch(name: str, op: str, out_shape: list[int]) -> onnx.GraphProto:
    """A branch reading `x` from the enclosing graph: y = op(x) (with a constant of its own)."""
    c = numpy_helper.from_array(np.float32(2.0 if name == "then" else -3.0), f"{name}_c")
    nodes = [helper.make_node(op, ["x", f"{name}_c"], [f"{name}_y"])]
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(f"{name}_y", F, out_shape)],
                             [c])


def _model(cond_nodes: list[onnx.NodeProto], then: onnx.GraphProto, other: onnx.GraphProto,
           shape: list[int]) -> onnx.ModelProto:
    nodes = [*cond_nodes, helper.make_node("If", ["cond"], ["y"], then_branch=then,
                                           else_branch=other)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, shape)],
                          [helper.make_tensor_value_info("y", F, shape)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _run(m: onnx.ModelProto, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]
                                ).run(None, {"x": x})[0]
    g = verify(onnx_frontend.load(m))
    return interp.run(g, x)[0], want


@pytest.mark.parametrize("batch", [1, 2])
def test_condition_on_a_shape_inlines_one_branch(batch: int) -> None:
    cond = [helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
            helper.make_node("Equal", ["b", "one"], ["cond"])]
    m = _model(cond, _branch("then", "Mul", [batch, 4]), _branch("else", "Add", [batch, 4]),
               [batch, 4])
    m.graph.initializer.extend([numpy_helper.from_array(np.int64(0), "zero"),
                                numpy_helper.from_array(np.int64(1), "one")])
    g = verify(onnx_frontend.load(m))
    assert [n.op for n in g.nodes] == ["mul" if batch == 1 else "add"]
    got, want = _run(m, np.arange(4 * batch, dtype=np.float32).reshape(batch, 4))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_condition_on_data_selects_between_both_branches(sign: float) -> None:
    cond = [helper.make_node("ReduceSum", ["x"], ["t"], keepdims=0),
            helper.make_node("Greater", ["t", "zero"], ["cond"])]
    m = _model(cond, _branch("then", "Mul", [2, 3]), _branch("else", "Add", [2, 3]), [2, 3])
    m.graph.initializer.append(numpy_helper.from_array(np.float32(0), "zero"))
    got, want = _run(m, sign * np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(got, want)


def test_run_time_condition_with_unequal_branches_is_one_line() -> None:
    cond = [helper.make_node("ReduceSum", ["x"], ["t"], keepdims=0),
            helper.make_node("Greater", ["t", "zero"], ["cond"])]
    other = helper.make_graph([helper.make_node("ReduceSum", ["x"], ["else_y"], keepdims=0)],
                              "else", [], [helper.make_tensor_value_info("else_y", F, [])])
    m = _model(cond, _branch("then", "Mul", [2, 3]), other, [2, 3])
    m.graph.initializer.append(numpy_helper.from_array(np.float32(0), "zero"))
    with pytest.raises(onnx_frontend.ConversionError, match="differs between the branches") as e:
        onnx_frontend.load(m)
    assert "\n" not in str(e.value)
