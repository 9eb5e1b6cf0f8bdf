"""Op traits live on the op table entry (`OpDef.category/view/selection/flops`): the
report's op classes, the view and norm sets and FLOP counts are read off it, unchanged."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from vcompile.ir import Builder, Graph
from vcompile.ir.graph import Attrs
from vcompile.ir.ops import CATEGORIES, OPS, VIEW_OPS, register_op
from vcompile.ir.ops.flops import per_out
from vcompile.ir.stats import graph_stats, node_flops
from vcompile.ir.types import TensorType
from vcompile.passes.attention_to_conv import VIEWS
from vcompile.passes.fuse import LAYOUT_EPILOGUE_OPS, LAYOUT_PROLOGUE_OPS, NORMS
from vcompile.report.kernels import CLASSES, kernel_table, op_class

# op_class of every op as `report.kernels` computed it by name before the traits existed
OP_CLASS_BEFORE = {
    "elementwise": ["abs", "add", "cast", "ceil", "clip", "cos", "div", "equal", "erf", "exp", "floor",
                    "gelu", "greater", "greater_equal", "hard_sigmoid", "hard_swish", "identity",
                    "igelu", "less", "less_equal", "log", "logical_and", "logical_not", "logical_or",
                    "max", "min", "mod", "mul", "neg", "pow", "qadd", "qmul", "reciprocal", "relu",
                    "requantize", "round", "rsqrt", "sigmoid", "silu", "sin", "sqrt", "sub", "tanh",
                    "where"],
    "attention": ["attention"],
    "pool": ["avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d", "max_pool2d", "max_pool3d"],
    "norm": ["batch_norm", "group_norm", "instance_norm", "layer_norm"],
    "layout": ["concat", "expand", "gather", "gather_nd", "pad", "reshape", "slice", "split", "squeeze",
               "tile", "transpose", "unsqueeze"],
    "conv": ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
             "depthwise_conv2d_nhwc"],
    "other": ["dequantize_linear", "qconv2d", "qlinear", "qmatmul", "quantize_linear", "resize"],
    "matmul": ["einsum", "gemm", "linear", "matmul"],
    "reduce": ["ilayernorm", "log_softmax", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod",
               "reduce_sum", "shiftmax", "softmax"],
}


def test_every_op_has_a_category_from_the_closed_set() -> None:
    assert {name: op.category for name, op in OPS.items() if op.category not in CATEGORIES} == {}
    assert set(CATEGORIES) == set(CLASSES)


def test_op_class_is_unchanged() -> None:
    before = {op: cls for cls, ops in OP_CLASS_BEFORE.items() for op in ops}
    assert set(before) <= set(OPS)
    assert {op: op_class(op) for op in before} == before
    assert op_class("no_such_op") == "other"


def test_trait_sets_are_unchanged() -> None:
    assert VIEW_OPS == {"reshape", "squeeze", "unsqueeze", "identity"}
    assert NORMS == {"layer_norm", "group_norm", "instance_norm", "batch_norm"}
    assert VIEWS == {"reshape", "transpose", "squeeze", "unsqueeze", "split", "slice"}
    assert LAYOUT_PROLOGUE_OPS == {"slice", "transpose", "reshape", "squeeze", "unsqueeze", "identity"}
    assert LAYOUT_EPILOGUE_OPS == {"transpose", "reshape", "squeeze", "unsqueeze", "identity"}


def _w(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def _one_op(op: str, in_shapes: list[tuple[int, ...]], consts: tuple[np.ndarray, ...] = (),
            **attrs: object) -> Graph:
    bb = Builder(op)
    xs = [bb.input(s, hint=f"x{i}") for i, s in enumerate(in_shapes)]
    cs = [bb.const(c, hint=f"c{i}") for i, c in enumerate(consts)]
    return bb.build(bb.emit(op, *xs, *cs, **attrs))


@pytest.mark.parametrize(("g", "flops"), [
    # out 1*8*16*16 = 2048 elements, each 16 input channels * 3*3 taps, 2 FLOPs per tap
    (_one_op("conv2d", [(1, 16, 16, 16)], (_w(8, 16, 3, 3), _w(8)), pads=(1, 1, 1, 1)),
     2 * 2048 * 144),
    (_one_op("matmul", [(4, 6), (6, 5)]), 2 * 20 * 6),            # out 4*5, K = 6
    (_one_op("linear", [(1, 10, 32)], (_w(32, 64), _w(64))), 2 * 640 * 32),  # out 1*10*64, K = 32
    (_one_op("mul", [(2, 3, 4), (2, 3, 4)]), 24),                  # elementwise: one per element
    (_one_op("identity", [(2, 3, 4)]), 0),                         # a view computes nothing
])
def test_flops_come_from_the_entry(g: Graph, flops: int) -> None:
    n = g.nodes[0]
    assert node_flops(n) == flops
    rule = OPS[n.op].flops
    assert (rule is None) == (n.op == "mul")  # plain elementwise ops name no rule
    assert rule is None or rule(n) == flops


@pytest.fixture
def toy_ops() -> Iterator[None]:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        return (ts[0],)

    def ev(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
        return (xs[0] * xs[0],)

    register_op("toy_square", 1, infer, ev, kind="elementwise")
    register_op("toy_norm", 1, infer, ev, category="norm", flops=per_out(3))
    yield
    for name in ("toy_square", "toy_norm"):
        OPS.pop(name, None)


@pytest.mark.usefixtures("toy_ops")
def test_a_new_op_declares_its_traits_in_its_entry_only() -> None:
    assert (op_class("toy_square"), op_class("toy_norm")) == ("elementwise", "norm")
    g = _one_op("toy_square", [(2, 5)])
    assert graph_stats(g).flops == 10
    bb = Builder("toys")
    y = bb.emit("toy_norm", bb.emit("toy_square", bb.input((2, 5), hint="x")))
    g = bb.build(y)
    assert graph_stats(g).op_flops == {"toy_norm": 30, "toy_square": 10}
    assert [r["class"] for r in kernel_table(g)] == ["elementwise", "norm"]


def test_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown category 'fancy'"):
        register_op("toy_fancy", 1, lambda ts, a: (ts[0],), lambda xs, a: (xs[0],), category="fancy")
    assert "toy_fancy" not in OPS
