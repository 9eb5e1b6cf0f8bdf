"""Index and selection ops compiled through TVM on the host, against `interp` (-O0) and,
for an ONNX graph through the whole pipeline, against onnxruntime (-O0 and -O2)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.codegen.test_ops import C, check_close, f, i
from tests.codegen.test_ops import _graph as graph
from vcompile.errors import VcompileError
from vcompile.ir import interp

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm

rng = np.random.default_rng(1)
NAN = np.float32(np.nan)
TIES = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [5, 1, 5, 1]], np.float32)
NANS = np.array([[1, NAN, 3, NAN], [NAN, 2, 5, 5], [1, 2, 3, 2], [-np.inf, NAN, -np.inf, 0]],
                np.float32)
ROIS = np.array([[0, 0, 9, 9], [3, 2, 22, 15], [-4, 5, 6, 30]], np.float32)
GRID3 = rng.uniform(-1.2, 1.2, (1, 2, 3, 2, 3)).astype(np.float32)
GRID = rng.uniform(-1.3, 1.3, (2, 3, 4, 2)).astype(np.float32)

CASES: list[tuple[str, str, list[Any], dict[str, Any]]] = [
    ("argmax", "argmax", [f(3, 4, 5)], {"axis": 1}),
    ("argmax_ties_last", "argmax", [TIES], {"axis": 1, "select_last_index": True}),
    ("argmax_ties", "argmax", [TIES], {"axis": -1, "keepdims": False}),
    ("argmax_nan", "argmax", [NANS], {"axis": 1}),
    ("argmax_nan_last", "argmax", [NANS], {"axis": 1, "select_last_index": True,
                                           "keepdims": False}),
    ("argmin_nan", "argmin", [NANS], {"axis": 1}),
    ("argmin_int", "argmin", [i(3, 6, lo=0, hi=3)], {"axis": 0, "select_last_index": True}),
    ("topk", "topk", [f(3, 7)], {"k": 3}),
    ("topk_ties", "topk", [TIES], {"k": 3, "axis": 1}),
    ("topk_smallest_ties", "topk", [TIES], {"k": 2, "axis": 0, "largest": False}),
    ("gather_elements", "gather_elements", [f(3, 4), i(3, 2, lo=-4, hi=4)], {"axis": 1}),
    ("scatter_elements", "scatter_elements", [f(4, 3), C(np.array([[1, -1, 0], [3, 2, -4]])),
                                              f(2, 3)], {}),
    ("scatter_elements_add", "scatter_elements",
     [f(3, 4), C(np.array([[1, 1], [0, -4], [2, 2]])), f(3, 2)], {"axis": 1, "reduction": "add"}),
    ("scatter_nd", "scatter_nd", [f(4, 3), C(np.array([[1], [-1]])), f(2, 3)], {}),
    ("scatter_nd_max", "scatter_nd", [f(4, 3), C(np.array([[1, 2], [1, 2], [0, 0]])), f(3)],
     {"reduction": "max"}),
    ("one_hot", "one_hot", [np.array([[0, -1, 5], [2, 3, -6]]), np.array([-1.0, 2.0], np.float32)],
     {"depth": 4, "axis": 1}),
    ("reverse_sequence", "reverse_sequence", [f(4, 3, 2), np.array([1, 4, 2])], {}),
    ("reverse_sequence_batch0", "reverse_sequence", [f(3, 4), np.array([2, 0, 4])],
     {"batch_axis": 0, "time_axis": 1}),
    ("max_unpool", "max_unpool", [f(1, 2, 2, 2), C(np.array([[[[0, 3], [9, 15]], [[16, 19], [26, 31]]]]))],
     {"output_shape": (1, 2, 4, 4)}),
    *[(f"grid_sample_{m}_{p}_{int(ac)}", "grid_sample", [f(2, 2, 3, 5), GRID],
       {"mode": m, "padding_mode": p, "align_corners": ac})
      for m in ("linear", "nearest", "cubic") for p in ("zeros", "border", "reflection")
      for ac in (False, True)],
    *[(f"roi_align_{ct}_{sr}", "roi_align", [f(2, 3, 10, 12), ROIS, np.array([0, 1, 1])],
       {"output_height": 3, "output_width": 2, "sampling_ratio": sr, "spatial_scale": 0.5,
        "coordinate_transformation_mode": ct})
      for ct in ("half_pixel", "output_half_pixel") for sr in (0, 2)],
    ("grid_sample_3d", "grid_sample", [f(1, 2, 3, 4, 5), GRID3], {}),
    ("grid_sample_3d_nearest", "grid_sample", [f(1, 2, 3, 4, 5), GRID3],
     {"mode": "nearest", "padding_mode": "border", "align_corners": True}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_index_op_matches_interp(case: tuple[str, str, list[Any], dict[str, Any]]) -> None:
    import vcompile
    _, op, inputs, attrs = case
    g, feeds = graph(op, inputs, attrs)
    m = vcompile.compile(g, opt_level=0)
    check_close(m(*feeds), interp.run(g, *feeds), rtol=1e-5, atol=1e-5)


def test_roi_align_max_is_refused_in_one_line() -> None:
    import vcompile
    g, _ = graph("roi_align", [f(1, 2, 6, 6), ROIS[:1], np.array([0])], {"mode": "max"})
    with pytest.raises(VcompileError, match="roi_align mode=max") as e:
        vcompile.compile(g, opt_level=0)
    assert "\n" not in str(e.value)
