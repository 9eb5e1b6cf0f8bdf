"""The index ops' numpy references against onnx.reference and onnxruntime, one ONNX node
each; where the two disagree (NaN order, cubic grid_sample at the border) the op follows
onnxruntime, and the test says so."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from vcompile.ir import Builder, interp
from vcompile.ir.builder import BuildError
from vcompile.ir.graph import Attrs
from vcompile.ir.ops import OPS, ShapeError

rng = np.random.default_rng(0)
NAN = np.float32(np.nan)


def _f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _node_model(op_type: str, inputs: list[np.ndarray], n_out: int, opset: int,
                **attrs: Any) -> onnx.ModelProto:
    names = [f"x{k}" for k in range(len(inputs))]
    outs = [f"y{k}" for k in range(n_out)]
    vi = [helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)
          for nm, x in zip(names, inputs, strict=True)]
    g = helper.make_graph([helper.make_node(op_type, names, outs, **attrs)], "g", vi,
                          [helper.make_value_info(o, onnx.TypeProto()) for o in outs])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def references(op_type: str, inputs: list[np.ndarray], n_out: int = 1, opset: int = 18,
               **attrs: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(onnx.reference, onnxruntime) outputs of one ONNX node."""
    m = _node_model(op_type, inputs, n_out, opset, **attrs)
    feeds = {f"x{k}": x for k, x in enumerate(inputs)}
    ref = ReferenceEvaluator(m).run(None, feeds)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(r) for r in ref], sess.run(None, feeds)


def ours(op: str, inputs: list[np.ndarray], **attrs: Any) -> list[np.ndarray]:
    bb = Builder(op)
    vals = [bb.input(x.shape, dtype=str(_ir_dtype(x)), hint=f"x{k}") for k, x in enumerate(inputs)]
    g = bb.build(*bb.emit_multi(op, *vals, **attrs))
    return interp.run(g, *inputs)


def _ir_dtype(x: np.ndarray) -> str:
    from vcompile.ir.types import dtype_of
    return dtype_of(x)


def same(got: list[np.ndarray], *wants: list[np.ndarray], tol: float = 1e-5) -> None:
    for want in wants:
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


TIES = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [5, 1, 5, 1]], np.float32)
NANS = np.array([[1, NAN, 3, NAN], [NAN, 2, 5, 5], [1, 2, 3, 2], [-np.inf, NAN, -np.inf, 0]],
                np.float32)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("x", [_f(3, 4, 5), TIES, np.array([[3, 1, 3], [0, 0, -2]], np.int32)],
                         ids=["random", "ties", "int"])
@pytest.mark.parametrize(("axis", "keepdims", "last"), [(1, 1, 0), (-1, 0, 1), (0, 1, 1)])
def test_argmax_argmin_match_both_references(op: str, x: np.ndarray, axis: int, keepdims: int,
                                             last: int) -> None:
    got = ours(op.lower(), [x], axis=axis, keepdims=bool(keepdims), select_last_index=bool(last))
    same(got, *references(op, [x], axis=axis, keepdims=keepdims, select_last_index=last))


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
def test_argmax_of_nan_follows_onnxruntime(op: str, last: int) -> None:
    # onnxruntime scans in order and moves on a strict improvement: NaN wins only when first
    # (onnx.reference is np.argmax: the first NaN wins)
    got = ours(op.lower(), [NANS], axis=1, select_last_index=bool(last))
    _, rt = references(op, [NANS], axis=1, select_last_index=last)
    same(got, rt)


@pytest.mark.parametrize(("x", "k", "axis", "largest"), [
    (_f(3, 7), 3, -1, 1), (_f(4, 5, 2), 2, 1, 0), (TIES, 3, 1, 1), (TIES, 2, 0, 0),
    (np.array([[5, 1, 5, 9, 1]], np.int64), 4, 1, 1), (np.array([3, 1, 2, 3], np.int32), 3, 0, 1)])
def test_topk_matches_both_references(x: np.ndarray, k: int, axis: int, largest: int) -> None:
    got = ours("topk", [x], k=k, axis=axis, largest=bool(largest))
    m_inputs = [x, np.array([k], np.int64)]
    same(got, *references("TopK", m_inputs, n_out=2, axis=axis, largest=largest))


def test_gather_elements_negative_indices() -> None:
    x, idx = _f(3, 4), np.array([[0, -1], [3, -4], [1, 2]], np.int64)
    same(ours("gather_elements", [x, idx], axis=1), *references("GatherElements", [x, idx], axis=1))


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements_reductions(reduction: str) -> None:
    x, upd = _f(3, 4), _f(3, 2)
    idx = np.array([[1, 1], [0, -4], [2, 3]], np.int64)
    if reduction == "none":
        idx = np.array([[1, 0], [0, -1], [2, 3]], np.int64)  # duplicates are undefined
    got = ours("scatter_elements", [x, idx, upd], axis=1, reduction=reduction)
    same(got, *references("ScatterElements", [x, idx, upd], axis=1, reduction=reduction))


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_reductions(reduction: str) -> None:
    x, upd = _f(4, 3, 2), _f(3, 2)
    idx = np.array([[1, 2], [-1, 0], [1, 2]] if reduction != "none" else [[1, 2], [-1, 0], [0, 1]],
                   np.int64)
    got = ours("scatter_nd", [x, idx, upd], reduction=reduction)
    refs = references("ScatterND", [x, idx, upd], reduction=reduction)
    same(got, refs[1])  # onnx.reference rejects negative indices; onnxruntime wraps them
    pos = np.where(idx < 0, idx + 4, idx)
    same(ours("scatter_nd", [x, pos, upd], reduction=reduction),
         *references("ScatterND", [x, pos, upd], reduction=reduction))


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot_negative_and_out_of_range(axis: int) -> None:
    idx = np.array([[0, -1, 5], [2, 3, -6]], np.int64)
    values = np.array([-1.0, 2.0], np.float32)
    got = ours("one_hot", [idx, values], depth=4, axis=axis)
    same(got, *references("OneHot", [idx, np.array(4, np.int64), values], axis=axis))


@pytest.mark.parametrize(("shape", "lens", "batch_axis", "time_axis"),
                         [((4, 3, 2), [1, 4, 2], 1, 0), ((3, 4), [2, 0, 4], 0, 1)])
def test_reverse_sequence(shape: tuple[int, ...], lens: list[int], batch_axis: int,
                          time_axis: int) -> None:
    x, n = _f(*shape), np.array(lens, np.int64)
    got = ours("reverse_sequence", [x, n], batch_axis=batch_axis, time_axis=time_axis)
    same(got, *references("ReverseSequence", [x, n], batch_axis=batch_axis, time_axis=time_axis))


def test_max_unpool_puts_values_at_maxpool_indices() -> None:
    x = _f(1, 2, 2, 2)
    idx = np.array([[[[0, 3], [9, 15]], [[16, 19], [26, 31]]]], np.int64)
    got = ours("max_unpool", [x, idx], output_shape=(1, 2, 4, 4))
    same(got, *references("MaxUnpool", [x, idx], kernel_shape=[2, 2], strides=[2, 2]))


GRID = rng.uniform(-1.3, 1.3, (2, 3, 4, 2)).astype(np.float32)


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("pad", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("corners", [0, 1])
def test_grid_sample(mode: str, pad: str, corners: int) -> None:
    x = _f(2, 2, 3, 5)
    got = ours("grid_sample", [x, GRID], mode=mode, padding_mode=pad, align_corners=bool(corners))
    ref, rt = references("GridSample", [x, GRID], opset=20, mode=mode, padding_mode=pad,
                         align_corners=corners)
    # cubic at the border: onnxruntime (and torch) clamp each tap, onnx.reference the point
    same(got, rt) if (mode, pad) == ("cubic", "border") else same(got, ref, rt)


def test_grid_sample_3d() -> None:
    x, grid = _f(1, 2, 3, 4, 5), rng.uniform(-1.2, 1.2, (1, 2, 3, 2, 3)).astype(np.float32)
    for mode in ("linear", "nearest"):
        ref, _ = references("GridSample", [x, grid], opset=20, mode=mode)  # ort: 4-D only
        same(ours("grid_sample", [x, grid], mode=mode), ref)


@pytest.mark.parametrize(("op", "shapes", "attrs", "match"), [
    ("argmax", [(3, 4)], {"axis": 2}, "axis 2 is out of range"),
    ("topk", [(3, 4)], {"k": 5}, r"k=5 is out of range"),
    ("gather_elements", [(3, 4), (3,)], {}, "must have the rank of data"),
    ("scatter_elements", [(3, 4), (2, 4), (2, 4)], {"reduction": "avg"}, "reduction 'avg'"),
    ("scatter_nd", [(3, 4), (2, 3), (2,)], {}, "do not fit data"),
    ("one_hot", [(3,), (3,)], {"depth": 4}, r"values must be \[off, on\]"),
    ("grid_sample", [(1, 2, 3, 4), (1, 5, 5, 3)], {}, "does not fit data"),
    ("grid_sample", [(1, 2, 3, 4), (1, 5, 5, 2)], {"mode": "area"}, "mode 'area'"),
])
def test_bad_inputs_are_one_line_errors(op: str, shapes: list[tuple[int, ...]],
                                        attrs: dict[str, Any], match: str) -> None:
    bb = Builder(op)
    dts = {"gather_elements": ["f32", "i64"], "scatter_elements": ["f32", "i64", "f32"],
           "scatter_nd": ["f32", "i64", "f32"], "one_hot": ["i64", "f32"]}.get(op, ["f32"] * 2)
    xs = [bb.input(s, dtype=dt) for s, dt in zip(shapes, dts, strict=False)]
    with pytest.raises((BuildError, ShapeError), match=match) as e:
        bb.emit_multi(op, *xs, **attrs)
    assert "\n" not in str(e.value)


def test_eval_is_pure_and_keeps_dtypes() -> None:
    x = np.array([[1, 2], [3, 4]], np.float32)
    idx = np.array([[0], [1]], np.int64)
    upd = np.array([[9], [8]], np.float32)
    before = x.copy()
    (y,) = OPS["scatter_elements"].eval([x, idx, upd], Attrs({"axis": 1, "reduction": "none"}))
    np.testing.assert_array_equal(x, before)  # eval must not write into its input
    assert y.dtype == np.float32 and y.tolist() == [[9, 2], [3, 8]]


ROIS = np.array([[0, 0, 9, 9], [3, 2, 22, 15], [-4, 5, 6, 30], [1, 1, 1.5, 1.2]], np.float32)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ct", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("ratio", [0, 2])
def test_roi_align(mode: str, ct: str, ratio: int) -> None:
    x, batch = _f(2, 3, 10, 12), np.array([0, 1, 1, 0], np.int64)
    attrs = {"mode": mode, "output_height": 3, "output_width": 2, "sampling_ratio": ratio,
             "spatial_scale": 0.5, "coordinate_transformation_mode": ct}
    same(ours("roi_align", [x, ROIS, batch], **attrs),
         *references("RoiAlign", [x, ROIS, batch], **attrs))
