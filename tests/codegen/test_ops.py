"""Every op in the op table, compiled through TVM on the host and compared with `interp`.

Each case is (op, inputs, attrs): arrays become graph inputs, `C(array)` becomes a
constant. Cases are grouped into a few graphs per family so that the suite pays for a
handful of TVM builds, not one per op; a failing case is still reported by name.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vcompile.ir import interp
from vcompile.ir.builder import Builder
from vcompile.ir.ops import OPS

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm

rng = np.random.default_rng(0)


class C:
    """Marks an array that becomes a graph constant rather than an input."""

    def __init__(self, a: Any) -> None:
        self.a = np.asarray(a)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def pos(*shape: int) -> np.ndarray:
    return (rng.random(shape) + 0.5).astype(np.float32)


def i(*shape: int, lo: int = -5, hi: int = 6, dt: Any = np.int64) -> np.ndarray:
    return rng.integers(lo, hi, shape).astype(dt)


X4 = (1, 3, 6, 6)
CASES: list[tuple[str, str, list[Any], dict[str, Any]]] = [
    # (case id, op, inputs, attrs)
    *[(op, op, [f(2, 3, 4)], {}) for op in ("neg", "abs", "relu", "sigmoid", "tanh", "erf", "exp",
                                           "floor", "ceil", "sin", "cos", "silu", "hard_swish",
                                           "identity")],
    *[(op, op, [pos(2, 3, 4)], {}) for op in ("log", "sqrt", "rsqrt", "reciprocal")],
    ("round", "round", [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.4, 3.7], np.float32)], {}),
    ("gelu", "gelu", [f(2, 5)], {}),
    ("gelu_tanh", "gelu", [f(2, 5)], {"approximate": "tanh"}),
    ("hard_sigmoid", "hard_sigmoid", [f(2, 5)], {"alpha": 0.3, "beta": 0.4}),
    ("clip", "clip", [f(3, 4)], {"min": -0.5, "max": 0.7}),
    ("clip_int", "clip", [i(3, 4)], {"min": -2.0}),
    ("relu_int", "relu", [i(3, 4, dt=np.int32)], {}),
    ("cast_f2i", "cast", [f(3, 4) * 4], {"to": "i32"}),
    ("cast_i2f", "cast", [i(3, 4)], {"to": "f32"}),
    ("cast_bool", "cast", [np.array([0.0, 1.5, -2.0], np.float32)], {"to": "bool"}),
    *[(op, op, [f(2, 3, 4), f(3, 1)], {}) for op in ("add", "sub", "mul", "div", "equal", "less",
                                                    "greater", "less_equal", "greater_equal")],
    ("add_const", "add", [f(2, 3), C(f(3))], {}),
    ("div_int", "div", [i(4, 5), i(4, 5, lo=1, hi=4) * np.array([1, -1, 1, -1, 1])], {}),
    ("mod_int", "mod", [i(4, 5), i(4, 5, lo=1, hi=4) * np.array([1, -1, 1, -1, 1])], {}),
    ("fmod", "mod", [f(4, 5), pos(4, 5)], {"fmod": True}),
    ("pow", "pow", [pos(3, 4), f(3, 4)], {}),
    ("pow_int_exp", "pow", [pos(3, 4), i(3, 4, lo=0, hi=3)], {}),
    ("pow_int", "pow", [i(3, 4, lo=-3, hi=4), i(3, 4, lo=0, hi=4)], {}),
    ("logical_and", "logical_and", [f(3, 4) > 0, f(3, 4) > 0], {}),
    ("logical_or", "logical_or", [f(3, 4) > 0, f(3, 4) > 0], {}),
    ("logical_not", "logical_not", [f(3, 4) > 0], {}),
    ("where", "where", [f(3, 4) > 0, f(3, 4), f(4)], {}),
    ("max3", "max", [f(3, 4), f(4), f(3, 1)], {}),
    ("min2", "min", [f(3, 4), f(4)], {}),
    ("max1", "max", [f(3, 4)], {}),
    ("matmul", "matmul", [f(2, 3, 4), f(4, 5)], {}),
    ("matmul_1d", "matmul", [f(4), f(2, 4, 5)], {}),
    ("gemm", "gemm", [f(3, 4), f(5, 4), f(5)], {"alpha": 0.5, "beta": 2.0, "trans_b": True}),
    ("gemm_ta", "gemm", [f(4, 3), f(4, 5)], {"trans_a": True}),
    ("linear", "linear", [f(2, 3, 4), f(4, 5), f(5)], {}),
    ("linear_nobias", "linear", [f(6, 4), f(4, 5)], {}),
    ("attention", "attention", [f(2, 3, 5, 4), f(2, 3, 7, 4), f(2, 3, 7, 6)], {"scale": 0.5}),
    ("attention_bias", "attention", [f(2, 5, 4), f(2, 7, 4), f(2, 7, 6), f(5, 7)], {"scale": 0.5}),
    ("einsum", "einsum", [f(2, 3, 4), f(2, 4, 5)], {"equation": "bij,bjk->bik"}),
    ("einsum_tr", "einsum", [f(3, 4)], {"equation": "ij->ji"}),
    *[(op, op, [f(2, 3, 4)], {"axes": (1,), "keepdims": False}) for op in (
        "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod")],
    ("reduce_all", "reduce_sum", [f(2, 3, 4)], {}),
    ("softmax", "softmax", [f(2, 3, 4)], {"axis": 1}),
    ("log_softmax", "log_softmax", [f(2, 3, 4)], {}),
    ("reshape", "reshape", [f(2, 3, 4)], {"shape": (6, -1)}),
    ("transpose", "transpose", [f(2, 3, 4)], {"perm": (2, 0, 1)}),
    ("concat", "concat", [f(2, 3), f(2, 2)], {"axis": 1}),
    ("slice", "slice", [f(5, 6)], {"starts": (1, -1), "ends": (100, 0), "axes": (0, 1), "steps": (2, -2)}),
    ("split", "split", [f(2, 7)], {"axis": 1, "sizes": (2, 4, 1)}),
    ("squeeze", "squeeze", [f(2, 1, 3)], {"axes": (1,)}),
    ("unsqueeze", "unsqueeze", [f(2, 3)], {"axes": (0, -1)}),
    ("expand", "expand", [f(3, 1)], {"shape": (2, 3, 4)}),
    ("tile", "tile", [f(2, 3)], {"repeats": (2, 1)}),
    ("pad", "pad", [f(2, 3)], {"pads": (1, 0, 2, 1), "value": 1.5}),
    ("pad_neg", "pad", [f(4, 5)], {"pads": (-1, 1, 0, -2)}),
    *[(f"pad_{m}", "pad", [f(4, 5)], {"pads": (2, 1, 1, 3), "mode": m}) for m in ("reflect", "edge", "wrap")],
    ("gather", "gather", [f(5, 3), np.array([[0, -1], [4, 2]], np.int64)], {"axis": 0}),
    ("gather_ax1", "gather", [f(5, 3), np.array([2, -3], np.int32)], {"axis": 1}),
    ("gather_nd", "gather_nd", [f(4, 3, 2), np.array([[0, -1], [3, 2]], np.int64)], {}),
    ("gather_nd_b", "gather_nd", [f(2, 3, 4), np.array([[1], [-1]], np.int64)], {"batch_dims": 1}),
    ("conv2d", "conv2d", [f(*X4), C(f(4, 3, 3, 3)), C(f(4))], {"pads": (1, 0, 2, 1), "strides": (2, 1)}),
    ("conv2d_dw", "conv2d", [f(*X4), C(f(6, 1, 3, 3)), C(f(6))], {"groups": 3, "dilations": (2, 2)}),
    ("depthwise_conv2d_nhwc", "depthwise_conv2d_nhwc", [f(2, 7, 6, 16), C(f(16, 1, 3, 3)), C(f(16))],
     {"pads": (1, 0, 1, 2), "strides": (1, 2)}),
    ("conv1d", "conv1d", [f(1, 2, 9), C(f(4, 2, 3)), C(f(4))], {"pads": (1, 1), "strides": (2,)}),
    ("conv3d", "conv3d", [f(1, 2, 4, 5, 5), C(f(3, 2, 2, 3, 3)), C(f(3))], {}),
    ("conv_transpose2d", "conv_transpose2d", [f(1, 4, 4, 4), C(f(4, 2, 3, 3)), C(f(4))],
     {"strides": (2, 2), "pads": (1, 1, 0, 0), "output_padding": (1, 1), "groups": 2}),
    ("conv_transpose1d", "conv_transpose1d", [f(1, 3, 5), C(f(3, 2, 3)), C(f(2))], {"strides": (3,)}),
    ("conv_transpose3d", "conv_transpose3d", [f(1, 2, 3, 3, 3), C(f(2, 2, 2, 2, 2)), C(f(2))], {}),
    ("batch_norm", "batch_norm", [f(*X4), C(f(3)), C(f(3)), C(f(3)), C(pos(3))], {}),
    ("instance_norm", "instance_norm", [f(*X4), C(f(3)), C(f(3))], {}),
    ("group_norm", "group_norm", [f(1, 4, 3, 3), C(f(4)), C(f(4))], {"num_groups": 2}),
    ("layer_norm", "layer_norm", [f(2, 3, 8), C(f(8)), C(f(8))], {}),
    ("layer_norm_ax", "layer_norm", [f(2, 3, 8), C(f(3, 8))], {"axis": 1}),
    ("layer_norm_channels", "layer_norm", [f(2, 8, 3, 4), C(f(8)), C(f(8))], {"axis": 1, "naxes": 1}),
    ("max_pool2d", "max_pool2d", [f(1, 2, 7, 7)], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1),
                                                   "ceil_mode": True}),
    ("max_pool1d_dil", "max_pool1d", [f(1, 2, 9)], {"kernel": (2,), "dilations": (2,)}),
    ("max_pool_idx", "max_pool2d", [f(1, 2, 5, 5)],
     {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1), "with_indices": True}),
    ("max_pool_idx_col", "max_pool2d", [f(2, 1, 4, 5)], {"kernel": (2, 2), "storage_order": 1,
                                                         "with_indices": True, "ceil_mode": True,
                                                         "strides": (2, 2)}),
    ("max_pool3d", "max_pool3d", [f(1, 1, 4, 4, 4)], {"kernel": (2, 2, 2), "strides": (2, 2, 2)}),
    ("max_pool_u8", "max_pool2d", [i(1, 1, 4, 4, lo=0, hi=255, dt=np.uint8)], {"kernel": (2, 2)}),
    ("avg_pool2d", "avg_pool2d", [f(1, 2, 7, 7)], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1),
                                                   "ceil_mode": True}),
    ("avg_pool2d_incl", "avg_pool2d", [f(1, 2, 6, 6)], {"kernel": (3, 3), "pads": (1, 1, 1, 1),
                                                        "count_include_pad": True}),
    ("avg_pool1d", "avg_pool1d", [f(1, 2, 9)], {"kernel": (3,), "strides": (2,)}),
    ("avg_pool3d", "avg_pool3d", [f(1, 1, 4, 4, 4)], {"kernel": (2, 2, 2)}),
    ("resize_nearest", "resize", [f(1, 2, 3, 4)], {"sizes": (1, 2, 6, 8), "scales": (1.0, 1.0, 2.0, 2.0)}),
    ("resize_linear", "resize", [f(1, 2, 3, 4)], {"sizes": (1, 2, 5, 7), "scales": (1.0, 1.0, 5 / 3, 7 / 4),
                                                  "mode": "linear"}),
    ("resize_cubic_ac", "resize", [f(1, 1, 4, 4)], {"sizes": (1, 1, 8, 8), "scales": (1.0, 1.0, 2.0, 2.0),
                                                    "mode": "cubic",
                                                    "coordinate_transformation_mode": "align_corners"}),
    ("resize_u8", "resize", [i(1, 1, 3, 3, lo=0, hi=255, dt=np.uint8)],
     {"sizes": (1, 1, 5, 5), "scales": (1.0, 1.0, 5 / 3, 5 / 3), "mode": "linear"}),
    ("quantize", "quantize_linear", [f(2, 3) * 50, C(np.float32(0.5)), C(np.uint8(128))], {}),
    ("quantize_axis", "quantize_linear", [f(2, 3) * 50, C(pos(3)), C(np.array([0, 1, -1], np.int8))],
     {"axis": 1}),
    ("dequantize", "dequantize_linear", [i(2, 3, lo=-128, hi=127, dt=np.int8), C(np.float32(0.1)),
                                         C(np.int8(3))], {}),
    # recurrent layers (more cases in tests/codegen/test_recurrent.py)
    ("lstm", "lstm", [f(4, 2, 3), C(f(2, 20, 3)), C(f(2, 20, 5)), C(f(2, 40)), np.array([4, 2], np.int32)],
     {"hidden_size": 5, "direction": "bidirectional", "present": "B,sequence_lens"}),
    ("gru", "gru", [f(3, 2, 3), C(f(1, 15, 3)), C(f(1, 15, 5)), f(1, 2, 5)],
     {"hidden_size": 5, "linear_before_reset": True, "present": "initial_h"}),
    ("rnn", "rnn", [f(3, 1, 3), f(1, 4, 3), f(1, 4, 4)], {"hidden_size": 4, "direction": "reverse"}),
]


def _graph(op: str, inputs: list[Any], attrs: dict[str, Any]) -> tuple[Any, list[np.ndarray]]:
    bb = Builder(op)
    vals, feeds = [], []
    for k, a in enumerate(inputs):
        if isinstance(a, C):
            vals.append(bb.const(a.a, hint=f"c{k}"))
        else:
            vals.append(bb.input(np.shape(a), dtype=_dt(a), hint=f"x{k}"))
            feeds.append(np.asarray(a))
    outs = bb.emit_multi(op, *vals, hint="y", **attrs)
    return bb.build(*outs), feeds


def _dt(a: np.ndarray) -> str:
    from vcompile.ir.types import dtype_of
    return dtype_of(np.asarray(a))


def check_close(got: list[np.ndarray], want: list[np.ndarray], rtol: float = 1e-5,
                atol: float = 1e-5) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=False):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_matches_interp(case: tuple[str, str, list[Any], dict[str, Any]]) -> None:
    import vcompile
    _, op, inputs, attrs = case
    g, feeds = _graph(op, inputs, attrs)
    m = vcompile.compile(g, opt_level=0)
    check_close(m(*feeds), interp.run(g, *feeds))


def test_every_op_has_a_rule_and_a_case() -> None:
    import vcompile.codegen.emit  # noqa: F401  (registers every rule)
    from vcompile.codegen.emit.relax import EMIT, to_relax  # noqa: F401  (registers the rules)
    from vcompile.ir.ops.integer import INTEGER_OPS
    assert sorted(set(OPS) - set(EMIT)) == []
    from tests.codegen.test_index_ops import CASES as INDEX_CASES  # against the interpreter
    from tests.codegen.test_math_ops import TESTED_OPS as MATH_OPS  # against onnxruntime there
    tested = ({c[1] for c in CASES} | {c[1] for c in INDEX_CASES} | INTEGER_OPS  # bit-exact
              | MATH_OPS)                                               # in test_int_ops.py
    assert sorted(set(OPS) - tested) == []


def test_symbolic_batch_dim() -> None:
    import vcompile
    bb = Builder("sym")
    x = bb.input(("N", 3, 6, 6), hint="x")
    y = bb.emit("conv2d", x, bb.const(f(4, 3, 3, 3)), bb.const(f(4)), pads=(1, 1, 1, 1))
    y = bb.emit("max_pool2d", bb.emit("relu", y), kernel=(2, 2), strides=(2, 2))
    y = bb.emit("reshape", y, shape=("N", -1))
    g = bb.build(bb.emit("softmax", y, axis=-1))
    m = vcompile.compile(g, opt_level=0)
    assert m.input_shapes == [("N", 3, 6, 6)] and m.output_shapes == [("N", 36)]
    for n in (1, 3):
        xs = f(n, 3, 6, 6)
        check_close(m(xs), interp.run(g, xs))
    with pytest.raises(vcompile.api.VcompileError, match=r"must be f32\[N,3,6,6\]"):
        m(f(2, 3, 5, 6))
