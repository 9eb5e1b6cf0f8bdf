"""The ONNX frontend on small hand-built models: shape folding, symbolic dims,
input_shapes, canonical conv bias, hints and locs, outputs checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vcompile.frontends.onnx import OPSET_RANGE, load
from vcompile.ir import interp, op_counts, print_graph, verify

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=17, name="g") -> onnx.ModelProto:
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _ort(m: onnx.ModelProto, *xs: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs, strict=True)})


def _shape_chain_model(batch: int | str = 2) -> onnx.ModelProto:
    """y = Reshape(x, Concat(Gather(Shape(x), 0), [-1])): flatten all but the batch dim."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    x = helper.make_tensor_value_info("x", F, [batch, 3, 4, 5])
    y = helper.make_tensor_value_info("y", F, [batch, 60])
    return _model(nodes, [x], [y], inits)


def test_reshape_from_shape_gather_concat_folds_to_attrs():
    m = _shape_chain_model()
    g = verify(load(m))
    assert op_counts(g) == {"reshape": 1}
    assert g.nodes[0].attrs["shape"] == (2, -1)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(interp.run(g, x)[0], _ort(m, x)[0])


def test_symbolic_batch_stays_a_symbol():
    g = verify(load(_shape_chain_model("batch size")))
    assert g.inputs[0].type.shape == ("batch_size", 3, 4, 5)
    assert g.outputs[0].type.shape == ("batch_size", 60)
    x = np.ones((7, 3, 4, 5), np.float32)
    assert interp.run(g, x)[0].shape == (7, 60)


def test_input_shapes_fix_symbolic_dims():
    g = verify(load(_shape_chain_model("N"), input_shapes={"x": (4, 3, 4, 5)}))
    assert g.inputs[0].type.shape == (4, 3, 4, 5)
    assert g.outputs[0].type.shape == (4, 60)


def _conv_model(bias: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")]
    ins = ["input.1", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"))
        ins.append("b")
    nodes = [helper.make_node("Conv", ins, ["/conv1/Conv_output_0"], name="/conv1/Conv",
                              auto_pad="SAME_UPPER", strides=[2, 2]),
             helper.make_node("Relu", ["/conv1/Conv_output_0"], ["out"], name="/act/Relu")]
    x = helper.make_tensor_value_info("input.1", F, [1, 3, 9, 9])
    y = helper.make_tensor_value_info("out", F, [1, 4, 5, 5])
    return _model(nodes, [x], [y], inits)


@pytest.mark.parametrize("bias", [False, True])
def test_conv_gets_bias_and_explicit_pads(bias: bool):
    m = _conv_model(bias)
    g = verify(load(m))
    conv = g.nodes[0]
    assert conv.op == "conv2d" and len(conv.inputs) == 3
    assert conv.attrs["pads"] == (1, 1, 1, 1)
    b = g.consts[conv.inputs[2]]
    if not bias:
        assert b.shape == (4,) and not b.any()
    x = np.random.default_rng(2).standard_normal((1, 3, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(interp.run(g, x)[0], _ort(m, x)[0], rtol=1e-5, atol=1e-5)


def test_hints_and_locs():
    g = load(_conv_model(True))
    assert g.inputs[0].hint == "input_1"
    assert [n.loc for n in g.nodes] == ["/conv1/Conv", "/act/Relu"]
    assert g.nodes[0].output.hint == "conv"
    text = print_graph(g)
    assert "%input_1: f32[1,3,9,9]" in text and "%conv = conv2d(" in text


def test_identity_dropped_but_outputs_stay_distinct():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Identity", ["r"], ["y1"], name="id1"),
             helper.make_node("Identity", ["r"], ["y2"], name="id2"),
             helper.make_node("Identity", ["x"], ["y3"], name="id3")]
    x = helper.make_tensor_value_info("x", F, [2])
    outs = [helper.make_tensor_value_info(n, F, [2]) for n in ("y1", "y2", "y3")]
    g = verify(load(_model(nodes, [x], outs)))
    assert op_counts(g) == {"identity": 2, "relu": 1}
    assert len({id(v) for v in g.outputs}) == 3 and g.outputs[2] is not g.inputs[0]


def test_layer_norm_mean_and_inv_std_dev_outputs():
    nodes = [helper.make_node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "inv"],
                              name="ln", axis=-1, epsilon=1e-5)]
    inits = [numpy_helper.from_array(np.full(8, 1.5, np.float32), "s"),
             numpy_helper.from_array(np.full(8, 0.25, np.float32), "b")]
    x = helper.make_tensor_value_info("x", F, [2, 8])
    outs = [helper.make_tensor_value_info(n, F, s)
            for n, s in (("y", [2, 8]), ("mean", [2, 1]), ("inv", [2, 1]))]
    m = _model(nodes, [x], outs, inits)
    g = verify(load(m))
    xv = np.random.default_rng(3).standard_normal((2, 8)).astype(np.float32)
    for got, want in zip(interp.run(g, xv), _ort(m, xv), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_quantize_without_zero_point_gets_u8_zero():
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale"], ["q"], name="q")]
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "scale")]
    x = helper.make_tensor_value_info("x", F, [4])
    q = helper.make_tensor_value_info("q", TensorProto.UINT8, [4])
    g = verify(load(_model(nodes, [x], [q], inits)))
    zp = g.consts[g.nodes[0].inputs[2]]
    assert zp.dtype == np.uint8 and zp.item() == 0


def test_clip_and_pad_inputs_become_attrs():
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["c"], name="clip"),
             helper.make_node("Pad", ["c", "pads", "val"], ["y"], name="pad", mode="constant")]
    inits = [numpy_helper.from_array(np.array(-1, np.float32), "lo"),
             numpy_helper.from_array(np.array(1, np.float32), "hi"),
             numpy_helper.from_array(np.array([0, 1, 0, 2], np.int64), "pads"),
             numpy_helper.from_array(np.array(7, np.float32), "val")]
    x = helper.make_tensor_value_info("x", F, [2, 3])
    y = helper.make_tensor_value_info("y", F, [2, 6])
    g = verify(load(_model(nodes, [x], [y], inits)))
    clip, pad = g.nodes
    assert (clip.attrs["min"], clip.attrs["max"]) == (-1.0, 1.0)
    assert pad.attrs["pads"] == (0, 1, 0, 2) and pad.attrs["value"] == 7.0
    assert len(clip.inputs) == len(pad.inputs) == 1


def test_load_from_path(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(_shape_chain_model(), str(p))
    assert op_counts(load(p)) == {"reshape": 1}


def test_opset_range_covers_7_to_28():
    assert OPSET_RANGE == (7, 28)


def test_symbolic_where_equal_expand_as_torch_exports_it():
    """Expand(cls, Where(Equal(shape, -1), 1, shape)) with shape = [N, -1, -1]."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus1s"], ["target"], name="concat", axis=0),
        helper.make_node("Equal", ["target", "minus1s3"], ["is_neg"], name="equal"),
        helper.make_node("Where", ["is_neg", "ones3", "target"], ["fixed"], name="where"),
        helper.make_node("Expand", ["cls", "fixed"], ["y"], name="expand"),
    ]
    arr = {"zero": np.array(0, np.int64), "axes0": np.array([0], np.int64),
           "minus1s": np.array([-1, -1], np.int64), "minus1s3": np.full(3, -1, np.int64),
           "ones3": np.ones(3, np.int64), "cls": np.arange(4, dtype=np.float32).reshape(1, 1, 4)}
    inits = [numpy_helper.from_array(v, k) for k, v in arr.items()]
    x = helper.make_tensor_value_info("x", F, ["N", 4])
    y = helper.make_tensor_value_info("y", F, ["N", 1, 4])
    m = _model(nodes, [x], [y], inits)
    g = verify(load(m))
    assert op_counts(g) == {"expand": 1} and g.nodes[0].attrs["shape"] == ("N", 1, 1)
    xv = np.zeros((3, 4), np.float32)
    np.testing.assert_array_equal(interp.run(g, xv)[0], _ort(m, xv)[0])


@pytest.mark.parametrize("batch_dims,dshape,ishape,oshape", [
    (0, (196, 4), (3, 5, 1), (3, 5, 4)),   # levit's attention-bias lookup (dynamo export)
    (0, (5, 6, 7), (4, 2), (4, 7)),
    (1, (2, 5, 6), (2, 3, 1), (2, 3, 6)),
])
def test_gather_nd_matches_onnx_reference(batch_dims, dshape, ishape, oshape):
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    node = helper.make_node("GatherND", ["d", "i"], ["y"], batch_dims=batch_dims)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, dshape),
         helper.make_tensor_value_info("i", TensorProto.INT64, ishape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, oshape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(0)
    d = rng.random(dshape, dtype=np.float32)
    i = rng.integers(-2, 5, ishape).astype(np.int64)   # negative indices count from the end
    expected = ReferenceEvaluator(model).run(None, {"d": d, "i": i})[0]
    np.testing.assert_array_equal(interp.run(load(model), d, i)[0], expected)
