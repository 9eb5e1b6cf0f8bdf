"""tf2onnx's NHWC idiom (each conv wrapped in NHWC <-> NCHW transposes, elementwise ops in
NHWC between them): fold-transposes, and every -O1+ pipeline, leave only the transposes
at the graph's input and output, and keep the interpreter's outputs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tests.strategies import assert_close, seeded_inputs
from tests.strategies_symbolic import SIZES, nhwc_chains
from vcompile import passes
from vcompile.ir import Builder, Graph, interp, parse_graph, print_graph, verify
from vcompile.ir.stats import all_nodes

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _transposes(g: Graph) -> int:
    return sum(n.op == "transpose" for n in all_nodes(g))


def _check(g: Graph, spec: str) -> Graph:
    out = passes.run(g, spec, verify_each=True)
    verify(out)
    for sizes in SIZES:
        x = seeded_inputs(g, seed=1, sizes=sizes)
        assert_close(interp.run(out, *x), interp.run(g, *x), rtol=1e-4, atol=1e-4)
    return out


@pytest.mark.parametrize("spec", ["fold-transposes", "O1", "O2", "O3"])
@SETTINGS
@given(g=nhwc_chains())
def test_nhwc_chains_keep_only_boundary_transposes(spec: str, g: Graph) -> None:
    level = spec[1:] if spec.startswith("O") else None
    out = _check(g, ",".join(passes.pipeline(level)) if level else spec)
    assert _transposes(out) <= len(g.inputs) + len(g.outputs), print_graph(out)


@SETTINGS
@given(g=nhwc_chains())
def test_fold_transposes_is_idempotent(g: Graph) -> None:
    once = passes.run(g, "fold-transposes")
    assert passes.run(once, "fold-transposes") is once


TF2ONNX = """\
graph @tf(%x: f32[N,6,6,3]) {
  const %w1: f32[4,3,3,3]
  const %b1: f32[4]
  const %bias: f32[4]
  const %w2: f32[4,4,1,1]
  const %b2: f32[4]
  %0 = transpose(%x) {perm=[0,3,1,2]} : f32[N,3,6,6]
  %1 = conv2d(%0, %w1, %b1) {dilations=[1,1], groups=1, pads=[1,1,1,1], strides=[1,1]} : f32[N,4,6,6]
  %2 = transpose(%1) {perm=[0,2,3,1]} : f32[N,6,6,4]
  %3 = add(%2, %bias) : f32[N,6,6,4]
  %4 = relu(%3) : f32[N,6,6,4]
  %5 = transpose(%4) {perm=[0,3,1,2]} : f32[N,4,6,6]
  %6 = conv2d(%5, %w2, %b2) {dilations=[1,1], groups=1, pads=[0,0,0,0], strides=[1,1]} : f32[N,4,6,6]
  %7 = transpose(%6) {perm=[0,2,3,1]} : f32[N,6,6,4]
  %8 = add(%7, %4) : f32[N,6,6,4]
  return %8
}
"""


def test_conv_relu_conv_in_nhwc_keeps_no_transposes_between() -> None:
    g = parse_graph(TF2ONNX)
    out = _check(g, "fold-transposes")
    ops = [n.op for n in out.nodes]
    assert ops == ["transpose", "conv2d", "add", "relu", "conv2d", "add", "transpose"], ops
    bias = next(n for n in out.nodes if n.op == "add").inputs[1]
    assert out.consts[bias].shape == (1, 4, 1, 1)  # the NHWC bias, now per NCHW channel
    o1 = _check(g, ",".join(passes.O1))
    assert [n.op for n in o1.nodes].count("transpose") == 2


def test_fold_transposes_leaves_a_lone_transpose_alone() -> None:
    bb = Builder("t")
    x = bb.input(("N", 4, 5))
    y = bb.emit("matmul", bb.emit("relu", bb.emit("transpose", x, perm=(0, 2, 1))),
                bb.const(np.ones((4, 2), np.float32)))
    g = bb.build(y)
    assert passes.run(g, "fold-transposes") is g


SHORTCUT = """\
graph @tf(%x: f32[N,6,6,4]) {
  const %w1: f32[4,4,1,1]
  const %b1: f32[4]
  const %w2: f32[4,4,1,1]
  const %b2: f32[4]
  %0 = transpose(%x) {perm=[0,3,1,2]} : f32[N,4,6,6]
  %1 = conv2d(%0, %w1, %b1) {dilations=[1,1], groups=1, pads=[0,0,0,0], strides=[1,1]} : f32[N,4,6,6]
  %2 = transpose(%1) {perm=[0,2,3,1]} : f32[N,6,6,4]
  %3 = relu(%2) : f32[N,6,6,4]
  %4 = add(%3, %2) : f32[N,6,6,4]
  %5 = transpose(%4) {perm=[0,3,1,2]} : f32[N,4,6,6]
  %6 = conv2d(%5, %w2, %b2) {dilations=[1,1], groups=1, pads=[0,0,0,0], strides=[1,1]} : f32[N,4,6,6]
  %7 = transpose(%6) {perm=[0,2,3,1]} : f32[N,6,6,4]
  return %7
}
"""


def test_a_transpose_shared_by_a_shortcut_sinks_along_every_path() -> None:
    out = _check(parse_graph(SHORTCUT), "fold-transposes")
    assert [n.op for n in out.nodes] == ["transpose", "conv2d", "relu", "add", "conv2d", "transpose"]
