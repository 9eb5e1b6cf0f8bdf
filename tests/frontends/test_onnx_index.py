"""ONNX index and selection converters (`frontends.onnx_index`): every opset spelling
through the frontend and `interp` against onnxruntime, what folds at import, the errors of
data-dependent shapes, and one detector-style model compiled at -O0 and -O2."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnx.reference
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vcompile.frontends import UnsupportedOp
from vcompile.frontends.onnx import load
from vcompile.frontends.onnx_ctx import ConversionError
from vcompile.ir import interp, op_counts, verify

rng = np.random.default_rng(0)
F = TensorProto.FLOAT


def _f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def model(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], outputs: list[str],
          inits: dict[str, np.ndarray] | None = None, opset: int = 18) -> onnx.ModelProto:
    vi = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
          for k, v in inputs.items()]
    outs = [helper.make_value_info(o, onnx.TypeProto()) for o in outputs]
    init = [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()]
    g = helper.make_graph(nodes, "g", vi, outs, init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    # output types as onnxruntime (or else onnx.reference) computes them: the checker
    # wants typed outputs
    try:
        res = run_ort(m, inputs)
    except Exception:  # noqa: BLE001  (an op onnxruntime lacks, e.g. 3-d Col2Im)
        res = onnx.reference.ReferenceEvaluator(m).run(None, inputs)
    del m.graph.output[:]
    m.graph.output.extend(helper.make_tensor_value_info(
        o, helper.np_dtype_to_tensor_dtype(np.asarray(r).dtype), np.shape(r))
        for o, r in zip(outputs, res, strict=True))
    return m


def run_ort(m: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def check(m: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> Any:
    g = verify(load(m))
    got = interp.run(g, *feeds.values())
    for a, b in zip(got, run_ort(m, feeds), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    return g


N = helper.make_node


@pytest.mark.parametrize("opset", [11, 13])
def test_argmax_before_and_after_select_last_index(opset: int) -> None:
    attrs = {"select_last_index": 1} if opset >= 12 else {}
    x = np.array([[1, 3, 3], [2, 0, 2]], np.float32)
    g = check(model([N("ArgMax", ["x"], ["y"], axis=1, keepdims=0, **attrs)], {"x": x}, ["y"],
                    opset=opset), {"x": x})
    assert op_counts(g) == {"argmax": 1}


@pytest.mark.parametrize("opset", [9, 10, 11])
def test_topk_k_as_attr_then_input(opset: int) -> None:
    x = _f(3, 6)
    if opset < 10:
        nodes, inits = [N("TopK", ["x"], ["v", "i"], k=2, axis=1)], {}
    else:
        nodes, inits = [N("TopK", ["x", "k"], ["v", "i"], axis=1)], {"k": np.array([2], np.int64)}
    g = check(model(nodes, {"x": x}, ["v", "i"], inits, opset), {"x": x})
    assert g.nodes[0].attrs["k"] == 2


def test_topk_needs_k_at_import() -> None:
    x, k = _f(3, 6), np.array([2], np.int64)
    m = model([N("TopK", ["x", "k"], ["v", "i"])], {"x": x, "k": k}, ["v", "i"])
    with pytest.raises(ConversionError, match="needs K known at import time"):
        load(m)


@pytest.mark.parametrize(("op", "opset"), [("Scatter", 9), ("Scatter", 10),
                                           ("ScatterElements", 11), ("ScatterElements", 18)])
def test_scatter_elements_every_spelling(op: str, opset: int) -> None:
    x, upd, idx = _f(3, 4), _f(3, 2), np.array([[1, 0], [0, -1], [2, 3]], np.int64)
    red = {"reduction": "add"} if opset >= 16 else {}
    check(model([N(op, ["x", "i", "u"], ["y"], axis=1, **red)], {"x": x, "u": upd}, ["y"],
                {"i": idx}, opset), {"x": x, "u": upd})


def test_gather_elements_scatter_nd_one_hot_reverse_sequence() -> None:
    x, t = _f(4, 3), np.array([[0, 2, -1], [3, 0, 1]], np.int64)
    lens = np.array([2, 3, 1], np.int64)
    nodes = [N("GatherElements", ["x", "t"], ["a"], axis=0),
             N("ScatterND", ["x", "nd", "u"], ["b"], reduction="mul"),
             N("OneHot", ["t", "depth", "vals"], ["c"], axis=1),
             N("ReverseSequence", ["x", "lens"], ["d"], batch_axis=1, time_axis=0)]
    inits = {"nd": np.array([[1], [-1], [1]], np.int64), "u": _f(3, 3),
             "depth": np.array(5, np.int64), "vals": np.array([0, 7], np.float32), "lens": lens}
    check(model(nodes, {"x": x, "t": t}, ["a", "b", "c", "d"], inits, opset=16), {"x": x, "t": t})


@pytest.mark.parametrize(("opset", "mode"), [(16, "bilinear"), (16, "bicubic"), (20, "linear"),
                                             (20, "nearest")])
def test_grid_sample_opset_spellings(opset: int, mode: str) -> None:
    x, grid = _f(1, 2, 4, 5), rng.uniform(-1.1, 1.1, (1, 3, 3, 2)).astype(np.float32)
    m = model([N("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode="border")],
              {"x": x, "g": grid}, ["y"], opset=opset)
    check(m, {"x": x, "g": grid})


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_and_back(mode: str) -> None:
    x = _f(2, 8, 3, 4)
    nodes = [N("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode),
             N("SpaceToDepth", ["y"], ["z"], blocksize=2)]
    g = check(model(nodes, {"x": x}, ["y", "z"]), {"x": x})
    assert set(op_counts(g)) == {"reshape", "transpose"}
    # opset 28 gave SpaceToDepth a mode too: each mode undoes DepthToSpace's own
    nodes[1] = N("SpaceToDepth", ["y"], ["z"], blocksize=2, mode=mode)
    m = model(nodes, {"x": x}, ["y", "z"], opset=28)
    np.testing.assert_array_equal(interp.run(verify(load(m)), x)[1], x)


@pytest.mark.parametrize(("image", "block", "attrs"), [
    ([5, 5], [1, 5], {}), ([5, 5], [2, 2], {"strides": [2, 2], "pads": [0, 1, 1, 0]}),
    ([6, 6], [2, 2], {"dilations": [2, 2]}), ([3, 4, 3], [2, 2, 2], {})])
def test_col2im_becomes_conv_transpose(image: list[int], block: list[int],
                                       attrs: dict[str, Any]) -> None:
    nd, kk = len(image), int(np.prod(block))
    s, d = attrs.get("strides", [1] * nd), attrs.get("dilations", [1] * nd)
    p = attrs.get("pads", [0] * 2 * nd)
    blocks = int(np.prod([(image[i] + p[i] + p[i + nd] - d[i] * (block[i] - 1) - 1) // s[i] + 1
                          for i in range(nd)]))
    x = _f(2, 3 * kk, blocks)
    m = model([N("Col2Im", ["x", "im", "bl"], ["y"], **attrs)], {"x": x}, ["y"],
              {"im": np.array(image, np.int64), "bl": np.array(block, np.int64)})
    g = verify(load(m))
    assert f"conv_transpose{nd}d" in op_counts(g)
    ref = onnx.reference.ReferenceEvaluator(m).run(None, {"x": x})[0]  # ort: Col2Im 2-D only
    np.testing.assert_allclose(interp.run(g, x)[0], ref, rtol=1e-5, atol=1e-5)


def test_eye_like_compress_nonzero_fold_at_import() -> None:
    x = _f(3, 4)
    nodes = [N("EyeLike", ["x"], ["e"], k=1, dtype=TensorProto.INT32),
             N("Compress", ["x", "keep"], ["c"], axis=1),
             N("Compress", ["x", "keep"], ["flat"]),
             N("NonZero", ["mask"], ["nz"])]
    inits = {"keep": np.array([True, False, True]), "mask": np.array([[0, 3], [1, 0]], np.float32)}
    g = check(model(nodes, {"x": x}, ["e", "c", "flat", "nz"], inits), {"x": x})
    assert set(op_counts(g)) <= {"gather", "reshape", "identity"}  # identity: folded outputs


def test_data_dependent_shapes_are_one_line_errors() -> None:
    x, keep = _f(3, 4), np.array([True, False, True])
    with pytest.raises(ConversionError, match=r"\(NonZero\): needs its input known at import") as e:
        load(model([N("NonZero", ["x"], ["y"], name="nz")], {"x": x}, ["y"]))
    assert "\n" not in str(e.value)
    with pytest.raises(ConversionError, match="needs the condition known at import"):
        load(model([N("Compress", ["x", "k"], ["y"], axis=0)], {"x": x, "k": keep}, ["y"]))
    with pytest.raises(UnsupportedOp, match="Unique"):
        load(model([N("Unique", ["x"], ["y"])], {"x": x}, ["y"]))


@pytest.mark.parametrize("opset", [10, 16])
def test_roi_align_default_coordinates_per_opset(opset: int) -> None:
    # opset 10 had no coordinate_transformation_mode: it sampled as output_half_pixel
    x, rois = _f(1, 2, 8, 8), np.array([[0.5, 1, 6, 7], [2, 2, 3, 3]], np.float32)
    m = model([N("RoiAlign", ["x", "r", "b"], ["y"], output_height=2, output_width=3,
                 sampling_ratio=2)], {"x": x, "r": rois}, ["y"],
              {"b": np.array([0, 0], np.int64)}, opset)
    check(m, {"x": x, "r": rois})


def _detector_head() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Conv scores -> DepthToSpace, per-pixel ArgMax, TopK over flattened scores, the picked
    scores gathered back (GatherElements), and a ScatterND of a box update, as exports use."""
    x = _f(1, 4, 6, 6)
    nodes = [N("Conv", ["x", "w"], ["s"], pads=[1, 1, 1, 1]),
             N("DepthToSpace", ["s"], ["up"], blocksize=2),
             N("ArgMax", ["s"], ["cls"], axis=1, keepdims=0),
             N("Reshape", ["s", "flat_shape"], ["flat"]),
             N("TopK", ["flat", "k"], ["top", "idx"], axis=1),
             N("GatherElements", ["flat", "idx"], ["picked"], axis=1),
             N("ScatterND", ["flat", "nd", "upd"], ["fixed"]),
             N("OneHot", ["cls", "depth", "vals"], ["onehot"], axis=1)]
    inits = {"w": _f(8, 4, 3, 3), "flat_shape": np.array([1, -1], np.int64),
             "k": np.array([5], np.int64), "nd": np.array([[0, 3], [0, -2]], np.int64),
             "upd": np.array([10.0, -10.0], np.float32), "depth": np.array([8], np.int64),
             "vals": np.array([0.0, 1.0], np.float32)}
    outs = ["up", "cls", "top", "idx", "picked", "fixed", "onehot"]
    return model(nodes, {"x": x}, outs, inits), {"x": x}


@pytest.mark.tvm
@pytest.mark.parametrize("opt_level", [0, 2])
def test_detector_head_compiled_matches_onnxruntime(opt_level: int) -> None:
    pytest.importorskip("tvm")
    import vcompile
    m, feeds = _detector_head()
    got = vcompile.compile(m, opt_level=opt_level)(*feeds.values())
    for a, b in zip(got, run_ort(m, feeds), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
