"""Default-domain opsets 7-28: each rule that differs between an op's schema versions, on a
tiny model built at that opset, through `frontends.onnx.load` + `ir.interp.run`.

The oracle is onnx's ReferenceEvaluator where it implements the old version; where it does
not (it runs Softmax-1/11 with the opset-13 semantics, Resize-10 with Resize-11's
defaults, BatchNormalization-7 as training), the model converted to a newer opset by
`onnx.version_converter`, onnxruntime, or the formula of the spec is, as each test says.
Each test also checks that the old rule gives another answer than the new one would, so
that following the wrong version fails it.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper, version_converter
from onnx.reference import ReferenceEvaluator

from vcompile.frontends import FrontendError, UnsupportedOp
from vcompile.frontends.onnx import ConversionError, InputShapeError, UnsupportedOpset, load
from vcompile.ir import interp, verify

F = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, opset, inits=()) -> onnx.ModelProto:
    """A model at `opset`; inputs/outputs are (name, shape), shapes may hold names."""
    vis = [helper.make_tensor_value_info(n, F, s) for n, s in inputs]
    vos = [helper.make_tensor_value_info(n, F, s) for n, s in outputs]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()]
    g = helper.make_graph(nodes, "g", vis, vos, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7  # onnxruntime runs opset 7 models of IR version 7 and newer
    return m


def _ours(m: onnx.ModelProto, *xs: np.ndarray, **kw) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return interp.run(verify(load(m, **kw)), *xs)


def _reference(m: onnx.ModelProto, *xs: np.ndarray) -> list[np.ndarray]:
    names = [i.name for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ReferenceEvaluator(m).run(None, dict(zip(names, xs, strict=True)))


def _ort(m: onnx.ModelProto, *xs: np.ndarray) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: x for i, x in zip(s.get_inputs(), xs, strict=True)})


def _same(got: list[np.ndarray], want: list[np.ndarray], rtol: float = 1e-5) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        w = np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-6)


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# ---- Softmax, LogSoftmax: before 13 a 2-D softmax over the flattened tail -------------------

@pytest.mark.parametrize("op,opset,axis", [("Softmax", 11, 1), ("Softmax", 7, None),
                                           ("LogSoftmax", 12, 2), ("LogSoftmax", 9, None)])
def test_old_softmax_normalizes_the_flattened_tail(op, opset, axis):
    attrs = {} if axis is None else {"axis": axis}
    m = _model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", [2, 3, 4, 5])],
               [("y", [2, 3, 4, 5])], opset)
    x = _x(2, 3, 4, 5)
    got = _ours(m, x)
    _same(got, _reference(version_converter.convert_version(m, 13), x))  # Flatten, Softmax, Reshape
    _same(got, _ort(m, x))
    a = 1 if axis is None else axis
    total = np.exp(got[0]).sum(axis=tuple(range(a, 4))) if op == "LogSoftmax" else \
        got[0].sum(axis=tuple(range(a, 4)))
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)  # not 1 over one axis alone
    assert not np.allclose(got[0], _reference(m, x)[0], atol=1e-3)  # the opset-13 rule


def test_softmax_13_keeps_one_axis():
    m = _model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", [2, 3, 4])],
               [("y", [2, 3, 4])], 13)
    x = _x(2, 3, 4)
    _same(_ours(m, x), _reference(m, x))


def test_old_softmax_with_a_symbolic_batch():
    m = _model([helper.make_node("Softmax", ["x"], ["y"])], [("x", ["N", 3, 4])],
               [("y", ["N", 3, 4])], 11)
    x = _x(2, 3, 4)
    _same(_ours(m, x), _ort(m, x))


# ---- attributes that became inputs --------------------------------------------------------

def test_slice_1_attrs():
    m = _model([helper.make_node("Slice", ["x"], ["y"], starts=[1, -3], ends=[100, -1],
                                 axes=[0, 2])], [("x", [3, 4, 5])], [("y", [2, 4, 2])], 9)
    x = _x(3, 4, 5)
    got = _ours(m, x)
    _same(got, _reference(m, x))
    np.testing.assert_array_equal(got[0], x[1:, :, -3:-1])
    m = _model([helper.make_node("Slice", ["x"], ["y"], starts=[0, 1], ends=[2, 3])],
               [("x", [3, 4])], [("y", [2, 2])], 7)  # no axes: the first dims
    x = _x(3, 4)
    _same(_ours(m, x), _reference(m, x))


@pytest.mark.parametrize("mode,attrs", [("constant", {"value": 1.5}), ("constant", {}),
                                        ("reflect", {}), ("edge", {})])
def test_pad_2_attrs(mode, attrs):
    m = _model([helper.make_node("Pad", ["x"], ["y"], mode=mode, pads=[0, 1, 2, 0, 2, 1],
                                 **attrs)], [("x", [2, 3, 4])], [("y", [2, 6, 7])], 10)
    x = _x(2, 3, 4)
    got = _ours(m, x)
    _same(got, _reference(m, x))
    if attrs:
        assert got[0][0, 0, 0] == 1.5


@pytest.mark.parametrize("attrs", [{"min": -0.5, "max": 0.25}, {"min": 0.0}, {"max": 0.1}, {}])
def test_clip_6_attrs(attrs):
    m = _model([helper.make_node("Clip", ["x"], ["y"], **attrs)], [("x", [3, 4])],
               [("y", [3, 4])], 10)
    x = _x(3, 4)
    got = _ours(m, x)
    _same(got, _reference(m, x))
    np.testing.assert_array_equal(got[0], np.clip(x, attrs.get("min"), attrs.get("max"))
                                  if attrs else x)


def test_squeeze_unsqueeze_1_attrs():
    nodes = [helper.make_node("Squeeze", ["x"], ["s"], axes=[1]),
             helper.make_node("Unsqueeze", ["s"], ["y"], axes=[0, 3])]
    m = _model(nodes, [("x", [2, 1, 3, 1])], [("y", [1, 2, 3, 1, 1])], 11)
    x = _x(2, 1, 3, 1)
    got = _ours(m, x)
    _same(got, _reference(m, x))
    assert got[0].shape == (1, 2, 3, 1, 1)
    m = _model([helper.make_node("Squeeze", ["x"], ["y"])], [("x", [2, 1, 3, 1])],
               [("y", [2, 3])], 7)  # no axes: every dim of size 1
    _same(_ours(m, x), _reference(m, x))


@pytest.mark.parametrize("opset,attrs,sizes", [(11, {"split": [1, 3]}, [1, 3]),
                                               (7, {}, [2, 2]), (12, {"axis": -1}, [2, 2])])
def test_split_2_attr(opset, attrs, sizes):
    m = _model([helper.make_node("Split", ["x"], ["a", "b"], **attrs)], [("x", [4, 4])],
               [("a", ["a0", "a1"]), ("b", ["b0", "b1"])], opset)
    x = _x(4, 4)
    got = _ours(m, x)
    _same(got, _reference(m, x))
    axis = attrs.get("axis", 0) % 2
    assert [g.shape[axis] for g in got] == sizes


@pytest.mark.parametrize("op,opset", [("ReduceSum", 12), ("ReduceMean", 17), ("ReduceMax", 11),
                                      ("ReduceMin", 7), ("ReduceProd", 13)])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_axes_attr(op, opset, keepdims):
    m = _model([helper.make_node(op, ["x"], ["y"], axes=[0, -1], keepdims=keepdims)],
               [("x", [2, 3, 4])], [("y", ["y0"] * (3 if keepdims else 1))], opset)
    x = _x(2, 3, 4)
    got = _ours(m, x)
    _same(got, _reference(m, x))
    assert got[0].shape == ((1, 3, 1) if keepdims else (3,))
    m = _model([helper.make_node(op, ["x"], ["y"], keepdims=0)], [("x", [2, 3, 4])],
               [("y", [])], opset)  # no axes: all of them
    _same(_ours(m, x), _reference(m, x))


# ---- Upsample and Resize-10: out = floor(in * scale), asymmetric coordinates -------------------

def _nearest_floor(x: np.ndarray, scales: list[float]) -> np.ndarray:
    """The spec's Upsample/Resize-10 nearest: y[i] = x[floor(i / scale)] per axis."""
    for ax, s in enumerate(scales):
        n = int(np.floor(x.shape[ax] * s))
        x = np.take(x, np.minimum(np.floor(np.arange(n) / s).astype(int), x.shape[ax] - 1),
                    axis=ax)
    return x


def test_upsample_7_scales_attr():
    m = _model([helper.make_node("Upsample", ["x"], ["y"], scales=[1.0, 1.0, 2.0, 3.0])],
               [("x", [1, 2, 3, 2])], [("y", [1, 2, 6, 6])], 7)
    x = _x(1, 2, 3, 2)
    got = _ours(m, x)
    _same(got, _ort(m, x))  # the reference evaluator knows only Upsample-9's scales input
    np.testing.assert_array_equal(got[0], np.repeat(np.repeat(x, 2, axis=2), 3, axis=3))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_9_scales_input(mode):
    m = _model([helper.make_node("Upsample", ["x", "s"], ["y"], mode=mode)],
               [("x", [1, 1, 3, 4])], [("y", [1, 1, 6, 10])], 9,
               {"s": np.array([1, 1, 2, 2.5], np.float32)})
    x = _x(1, 1, 3, 4)
    got = _ours(m, x)
    _same(got, _ort(m, x))
    if mode == "nearest":
        np.testing.assert_array_equal(got[0], _nearest_floor(x, [1, 1, 2, 2.5]))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 3], [1, 1, 1.5, 2.5], [1, 1, 0.6, 0.5]])
def test_resize_10_is_asymmetric(mode, scales):
    m = _model([helper.make_node("Resize", ["x", "s"], ["y"], mode=mode)],
               [("x", [1, 1, 5, 7])], [("y", ["n", "c", "h", "w"])], 10,
               {"s": np.array(scales, np.float32)})
    x = _x(1, 1, 5, 7)
    got = _ours(m, x)
    assert got[0].shape == (1, 1, int(5 * scales[2]), int(7 * scales[3]))
    if mode == "nearest":
        # NOTE: onnxruntime rounds up when it downsamples (its "simple" nearest mode);
        # vcompile floors, as PyTorch and TensorFlow do and onnx's 10 -> 11 adapter writes
        np.testing.assert_array_equal(got[0], _nearest_floor(x, scales))
    if mode == "linear" or min(scales) >= 1:
        _same(got, _ort(m, x))  # Resize-11's half_pixel default differs in each case


def test_resize_11_tf_half_pixel_for_nn():
    m = _model([helper.make_node("Resize", ["x", "roi", "s"], ["y"], mode="nearest",
                                 coordinate_transformation_mode="tf_half_pixel_for_nn")],
               [("x", [1, 1, 4, 6])], [("y", [1, 1, 6, 4])], 11,
               {"roi": np.zeros(0, np.float32), "s": np.array([1, 1, 1.5, 0.7], np.float32)})
    x = _x(1, 1, 4, 6)
    _same(_ours(m, x), _ort(m, x))


# ---- normalization and dropout -------------------------------------------------------------

def test_batch_norm_7_spatial_0_has_statistics_per_element():
    p = {k: RNG.random((3, 4)).astype(np.float32) + 0.5 for k in "sbmv"}
    m = _model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                                 spatial=0, epsilon=1e-3)],
               [("x", [2, 3, 4])], [("y", [2, 3, 4])], 7, p)
    x = _x(2, 3, 4)
    got = _ours(m, x)
    want = (x - p["m"]) / np.sqrt(p["v"] + 1e-3) * p["s"] + p["b"]  # the spec, per element
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
    _same(got, _ort(m, x))


@pytest.mark.parametrize("opset", [7, 9, 13])
def test_batch_norm_before_14_is_inference(opset):
    """momentum and the running-stat outputs are training's: inference ignores momentum
    and passes mean and var through (the reference evaluator would train at opset 9)."""
    p = {k: RNG.random(3).astype(np.float32) + 0.5 for k in "sbmv"}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"],
                            ["y", "rm", "rv", "sm", "sv"], momentum=0.5)
    m = _model([node], [("x", [2, 3, 4])], [("y", [2, 3, 4]), ("rm", [3]), ("rv", [3])],
               opset, p)
    x = _x(2, 3, 4)
    y, rm, rv = _ours(m, x)
    sh = (1, 3, 1)
    want = (x - p["m"].reshape(sh)) / np.sqrt(p["v"].reshape(sh) + 1e-5) * \
        p["s"].reshape(sh) + p["b"].reshape(sh)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rm, p["m"])
    np.testing.assert_array_equal(rv, p["v"])


def test_batch_norm_saved_stats_are_refused_in_one_line():
    p = {k: np.ones(3, np.float32) for k in "sbmv"}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"],
                            ["y", "rm", "rv", "sm", "sv"], name="bn")
    m = _model([node], [("x", [2, 3])], [("y", [2, 3]), ("sm", [3])], 9, p)
    with pytest.raises(ConversionError, match=r"^ONNX node 'bn' \(BatchNormalization\): outputs "
                       r"saved_mean/saved_var exist only in training; .*eval mode$"):
        load(m)


@pytest.mark.parametrize("opset,mask", [(7, np.float32), (10, np.bool_), (11, np.bool_)])
def test_dropout_before_12_is_identity_with_its_mask_type(opset, mask):
    """The mask is of x's type before Dropout-10 (as onnxruntime; the reference evaluator
    gives bool at every version), all ones in inference."""
    m = _model([helper.make_node("Dropout", ["x"], ["y", "z"], ratio=0.3)], [("x", [3, 4])],
               [("y", [3, 4])], opset)
    m.graph.output.append(helper.make_tensor_value_info(
        "z", helper.np_dtype_to_tensor_dtype(np.dtype(mask)), [3, 4]))
    x = _x(3, 4)
    got = _ours(m, x)
    _same(got[:1], _reference(m, x)[:1])
    assert got[1].dtype == mask and got[1].all() and got[1].shape == (3, 4)


# ---- pooling and Gemm ------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [7, 8, 10, 12])
def test_max_pool_versions(opset):
    """MaxPool-1 (7): one output; -8: Indices and storage_order; -10: ceil_mode, dilations."""
    attrs: dict = {"kernel_shape": [2, 2], "strides": [2, 2]}
    outs = ["y"]
    if opset >= 8:
        attrs["storage_order"] = 1
        outs.append("i")
    if opset >= 10:
        attrs["ceil_mode"] = 1
    m = _model([helper.make_node("MaxPool", ["x"], outs, **attrs)], [("x", [1, 2, 5, 5])],
               [("y", [1, 2, "h", "w"])], opset)
    if opset >= 8:
        m.graph.output.append(helper.make_tensor_value_info("i", TensorProto.INT64,
                                                            [1, 2, "h", "w"]))
    x = _x(1, 2, 5, 5)
    got = _ours(m, x)
    _same(got, _reference(m, x))
    assert got[0].shape[2] == (3 if opset >= 10 else 2)


@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool_7_count_include_pad(count_include_pad):
    m = _model([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                 pads=[1, 1, 1, 1], count_include_pad=count_include_pad)],
               [("x", [1, 1, 4, 4])], [("y", [1, 1, 4, 4])], 7)
    x = _x(1, 1, 4, 4)
    got = _ours(m, x)
    _same(got, _reference(m, x))
    corner = x[0, 0, :2, :2].sum() / (9 if count_include_pad else 4)
    np.testing.assert_allclose(got[0][0, 0, 0, 0], corner, rtol=1e-5)


@pytest.mark.parametrize("opset", [7, 9, 11])
def test_gemm_versions(opset):
    """C is required before Gemm-11 (and broadcast unidirectionally from Gemm-7)."""
    m = _model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=0.5,
                                 beta=2.0)], [("a", [3, 4])], [("y", [3, 5])], opset,
               {"b": _x(5, 4), "c": _x(5)})
    x = _x(3, 4)
    _same(_ours(m, x), _reference(m, x))


# ---- opset range and domains: one-line errors ------------------------------------------------

@pytest.mark.parametrize("opset", [6, 29])
def test_opset_outside_7_to_28_names_both(opset):
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2])], [("y", [2])], opset)
    with pytest.raises(UnsupportedOpset, match=rf"^the model uses opset {opset} of the default "
                       r"domain \(ai\.onnx\); supported opsets: 7 to 28 \(") as info:
        load(m)
    assert "\n" not in str(info.value)


def test_custom_domain_names_its_domain():
    m = _model([helper.make_node("Foo", ["x"], ["y"], name="foo", domain="com.example")],
               [("x", [2])], [("y", [2])], 11)
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOp, match=r"^unsupported ONNX op\(s\): com\.example\.Foo "
                       r"\(nodes: 'foo'\)\. Supported ONNX ops: Abs, ") as info:
        load(m)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("opset", [7, 28])
def test_every_opset_in_range_loads(opset):
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2])], [("y", [2])], opset)
    x = _x(2)
    _same(_ours(m, x), _reference(m, x))


# ---- exporters' unknown dims: -1, 0, '?', names ------------------------------------------------

def _conv(dims: list, opset: int = 11, out: list | None = None) -> onnx.ModelProto:
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                  [("x", dims)], [("y", out or ["n", 4, "h", "w"])], opset, {"w": w})


@pytest.mark.parametrize("dim,symbol", [(-1, "x_0"), (0, "x_0"), ("?", "x_0"), (None, "x_0"),
                                        ("DynamicDimension.0", "DynamicDimension_0"),
                                        ("unk__12", "unk__12"), ("batch", "batch")])
def test_unknown_batch_dim_is_a_symbol_input_shapes_can_fix(dim, symbol):
    m = _conv([dim, 3, 8, 8])
    g = load(m)
    assert g.inputs[0].type.shape == (symbol, 3, 8, 8)
    x = _x(2, 3, 8, 8)
    _same(_ours(m, x), _reference(m, x))  # the symbol binds to 2 at run time
    fixed = load(m, input_shapes={"x": (1, 3, 8, 8)})
    assert fixed.inputs[0].type.shape == (1, 3, 8, 8)
    _same(_ours(m, x[:1], input_shapes={"x": (1, 3, 8, 8)}), _reference(m, x[:1]))


def test_paddle_style_minus_one_batch_with_input_shapes_is_static():
    m = _conv([-1, 3, 224, 224], out=[-1, 4, 224, 224])
    g = load(m, input_shapes={"x": (1, 3, 224, 224)})
    assert g.inputs[0].type.shape == (1, 3, 224, 224)
    assert g.outputs[0].type.shape == (1, 4, 224, 224)


def test_several_unknown_dims_are_distinct_symbols():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["?", 3, "?", -1])],
               [("y", ["a", 3, "b", "c"])], 9)
    assert load(m).inputs[0].type.shape == ("x_0", 3, "x_2", "x_3")
    x = _x(2, 3, 4, 5)
    _same(_ours(m, x), _reference(m, x))


def test_zero_dim_is_a_size_when_the_model_declares_empty_tensors():
    """A 0 is an empty dim when an output, a value_info or an initializer has one too."""
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", [0, 3])], [("y", [0, 3])], 17)
    assert load(m).inputs[0].type.shape == (0, 3)
    x = np.zeros((0, 3), np.float32)
    _same(_ours(m, x), _reference(m, x))


def test_input_shapes_still_refuse_contradicting_a_real_size():
    with pytest.raises(InputShapeError, match=r"the model fixes dim 1 to 3"):
        load(_conv([-1, 3, 8, 8]), input_shapes={"x": (1, 4, 8, 8)})
    g = load(_conv([0, 3, 8, 8]), input_shapes={"x": ("B", 3, 8, 8)})  # a name for the 0
    assert g.inputs[0].type.shape == ("B", 3, 8, 8)


def test_errors_are_frontend_errors():
    assert issubclass(UnsupportedOpset, FrontendError) and issubclass(ConversionError,
                                                                       FrontendError)
