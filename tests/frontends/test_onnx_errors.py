"""Every ONNX frontend error: a FrontendError (VcompileError) with a one-line message."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vcompile.errors import VcompileError
from vcompile.frontends import FrontendError, UnsupportedOp
from vcompile.frontends.onnx import (
    ConversionError,
    InputShapeError,
    InvalidModel,
    ModelNotFound,
    NotOnnx,
    UnsupportedOpset,
    UnsupportedType,
    load,
)

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _relu(shape=(1, 3), opset=17) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", F, list(shape) if shape is not None else None)
    y = helper.make_tensor_value_info("y", F, list(shape) if shape is not None else [2, 5])
    return _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [x], [y], opset=opset)


def _raises(cls: type[Exception], match: str, *args, **kw) -> FrontendError:
    with pytest.raises(cls, match=match) as info:
        load(*args, **kw)
    err = info.value
    assert isinstance(err, FrontendError) and isinstance(err, VcompileError)
    assert "\n" not in str(err), "messages are one line"
    assert err.__cause__ is None, "no library traceback"
    assert err.__context__ is None or err.__suppress_context__, "no library traceback"
    return err


def test_missing_file(tmp_path):
    _raises(ModelNotFound, r"ONNX model not found: '.*nope\.onnx'", tmp_path / "nope.onnx")


def test_not_onnx(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01" * 10)
    _raises(NotOnnx, r"junk\.onnx' is not an ONNX model", p)


def test_checker_failure():
    m = _relu()
    m.graph.node[0].input[0] = "undefined_tensor"
    _raises(InvalidModel, r"the ONNX checker rejects the model: .*undefined_tensor", m)


@pytest.mark.parametrize("opset,to", [(1, 7), (6, 7), (29, 28), (99, 28)])
def test_opset_out_of_range(opset, to):
    m = _relu(opset=opset)
    _raises(UnsupportedOpset, rf"^the model uses opset {opset} of the default domain \(ai\.onnx\); "
            rf"supported opsets: 7 to 28 \(convert it with onnx\.version_converter\."
            rf"convert_version\(model, {to}\)\)$", m)


def test_custom_domain_op_is_listed_with_its_domain():
    """An op of an unknown domain names the domain, with the other unsupported ops; a model
    importing only such a domain gets the same listing (not an opset error)."""
    x = helper.make_tensor_value_info("x", F, [2])
    y = helper.make_tensor_value_info("y", F, [2])
    nodes = [helper.make_node("Foo", ["x"], ["a"], name="foo", domain="com.example"),
             helper.make_node("StringNormalizer", ["a"], ["y"], name="norm")]
    m = _model(nodes, [x], [y])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    err = _raises(UnsupportedOp, r"^unsupported ONNX op\(s\): StringNormalizer \(nodes: "
                  r"'norm'\); com\.example\.Foo \(nodes: 'foo'\)\. Supported ONNX ops: ", m)
    assert err.unsupported == {"StringNormalizer": ["norm"], "com.example.Foo": ["foo"]}
    only = _model(nodes[:1], [x], [helper.make_tensor_value_info("a", F, [2])])
    del only.opset_import[:]
    only.opset_import.append(helper.make_opsetid("com.example", 1))
    _raises(UnsupportedOp, r"^unsupported ONNX op\(s\): com\.example\.Foo \(nodes: 'foo'\)",
            only)


def test_input_shape_names_unknown_input():
    _raises(InputShapeError, r"input_shapes names 'image', which is not an input of the "
            r"model; its inputs are: x", _relu(), input_shapes={"image": (1, 3)})


def test_input_shape_wrong_rank():
    _raises(InputShapeError, r"gives 'x' rank 3 \(1, 3, 1\), but the model says rank 2 "
            r"\(1, 3\)", _relu(), input_shapes={"x": (1, 3, 1)})


def test_input_shape_contradicts_fixed_dim():
    _raises(InputShapeError, r"the model fixes dim 1 to 3", _relu(("N", 3)),
            input_shapes={"x": (2, 4)})


def test_input_shape_missing_entirely():
    _raises(InputShapeError, r"input 'x' has no shape \(not even a rank\)", _relu(None))
    g = load(_relu(None), input_shapes={"x": (2, 5)})  # giving it fixes the error
    assert g.inputs[0].type.shape == (2, 5)


def test_unsupported_ops_listed_together():
    x = helper.make_tensor_value_info("x", F, [2, 2])
    y = helper.make_tensor_value_info("y", F, [2, 2])
    # NOTE: ops of a made-up domain, which no converter added later will take
    nodes = [helper.make_node("Foo", ["x"], ["a"], name="foo_1", domain="com.example"),
             helper.make_node("Foo", ["a"], ["b"], name="foo_2", domain="com.example"),
             helper.make_node("Bar", ["b"], ["c"], name="bar", domain="com.example"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    m = _model(nodes, [x], [y])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    err = _raises(UnsupportedOp, r"unsupported ONNX op\(s\): com\.example\.Bar \(nodes: "
                  r"'bar'\); com\.example\.Foo \(nodes: 'foo_1', 'foo_2'\)\. Supported ONNX ops: "
                  r"Abs, ", m)
    assert isinstance(err, UnsupportedOp)
    assert err.unsupported == {"com.example.Foo": ["foo_1", "foo_2"], "com.example.Bar": ["bar"]}
    assert "Relu" in err.supported and "Conv" in err.supported


def test_unsupported_input_type():
    x = helper.make_tensor_value_info("x", TensorProto.STRING, [2])
    y = helper.make_tensor_value_info("y", TensorProto.STRING, [2])
    m = _model([helper.make_node("Identity", ["x"], ["y"], name="id")], [x], [y])
    _raises(UnsupportedType, r"input 'x' has ONNX type STRING, which vcompile cannot represent",
            m)


def test_runtime_shape_tensor_is_a_conversion_error():
    x = helper.make_tensor_value_info("x", F, [2, 3])
    s = helper.make_tensor_value_info("s", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", F, [3, 2])
    m = _model([helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape_1")], [x, s], [y])
    _raises(ConversionError, r"ONNX node 'reshape_1' \(Reshape\): needs the target shape known "
            r"at import time", m)


def test_symbolic_shape_arithmetic_asks_for_input_shapes():
    x = helper.make_tensor_value_info("x", F, ["N", 6])
    y = helper.make_tensor_value_info("y", F, ["N", 6])
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Mul", ["s", "two"], ["s2"], name="double"),
             helper.make_node("Reshape", ["x", "s2"], ["y"], name="reshape")]
    two = numpy_helper.from_array(np.array([1, 1], np.int64), "two")
    _raises(ConversionError, r"'double' \(Mul\): cannot compute mul on symbolic dims .*"
            r"input_shapes", _model(nodes, [x], [y], [two]))
