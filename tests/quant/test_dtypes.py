"""ir/dtypes.py: the dtype census and the integer region, and `inspect --dtypes`."""
from __future__ import annotations

import numpy as np

from vcompile.ir.builder import Builder
from vcompile.ir.dtypes import dtype_census, float_ops_in_integer_region, format_census, integer_region
from vcompile.ir.graph import Graph


def integer_graph(float_op: bool = False) -> Graph:
    """x -> Q -> qlinear -> requantize [-> DQ -> relu -> Q] -> DQ."""
    bb = Builder("int")
    x = bb.input((2, 4), hint="x")
    s, zp = bb.const(np.float32(0.1), "s"), bb.const(np.int8(0), "zp")
    q = bb.emit("quantize_linear", x, s, zp, hint="xq")
    w = bb.const(np.ones((4, 3), np.int8), "w")
    b = bb.const(np.zeros(3, np.int32), "b")
    acc = bb.emit("qlinear", q, w, b, hint="acc")
    y = bb.emit("requantize", acc, bb.const(np.int32(1 << 30), "m"), bb.const(np.int32(31), "sh"), hint="y")
    if float_op:
        f = bb.emit("relu", bb.emit("dequantize_linear", y, s, zp, hint="yd"), hint="r")
        y = bb.emit("quantize_linear", f, s, zp, hint="rq")
    return bb.build(bb.emit("dequantize_linear", y, s, zp, hint="out"))


def test_integer_graph_has_no_float_op_in_its_region():
    g = integer_graph()
    assert {n.op for n in integer_region(g)} == {"qlinear", "requantize"}
    assert float_ops_in_integer_region(g) == []
    census = dtype_census(g)
    assert census["i32"] == {"qlinear": 1} and census["i8"] == {"quantize_linear": 1, "requantize": 1}
    assert census["f32"] == {"dequantize_linear": 1}


def test_a_float_op_between_the_pairs_is_counted():
    g = integer_graph(float_op=True)
    assert [n.op for n in float_ops_in_integer_region(g)] == ["relu"]
    assert format_census(g).endswith("float ops inside the integer region: 1 (relu 1)\n")


def test_fused_nodes_are_counted_by_their_body():
    g = integer_graph()
    qlinear, requant = g.nodes[1], g.nodes[2]
    body = Builder("body")
    i0 = body.input(qlinear.inputs[0].type, hint="i0")
    acc = body.emit("qlinear", i0, *(body.const(g.consts[v], v.hint) for v in qlinear.inputs[1:]))
    out = body.emit("requantize", acc, *(body.const(g.consts[v], v.hint) for v in requant.inputs[1:]))
    region = body.build(out)
    bb = Builder("fused")
    x = bb.input(g.inputs[0].type, hint="x")
    s, zp = bb.const(np.float32(0.1), "s"), bb.const(np.int8(0), "zp")
    q = bb.emit("quantize_linear", x, s, zp)
    y = bb.emit("fused", q, region=region)
    f = bb.build(bb.emit("dequantize_linear", y, s, zp))
    assert "fused" not in {op for ops in dtype_census(f).values() for op in ops}
    assert sorted(n.op for n in integer_region(f)) == ["qlinear", "requantize"]
    assert float_ops_in_integer_region(f) == []


def test_qdq_form_counts_its_float_compute_ops():
    from tests.quant.test_qdq import conv_block
    from vcompile.quant import quantize
    q = quantize(conv_block(), calib={"x": np.ones((1, 2, 4, 4), np.float32)})
    ops = sorted(n.op for n in float_ops_in_integer_region(q))
    assert ops == ["conv2d", "linear", "relu", "reshape", "softmax", "transpose"]


def test_cli_inspect_dtypes(tmp_path, capsys):
    from vcompile.cli import main
    from vcompile.ir.printer import print_graph
    p = tmp_path / "g.vir"
    p.write_text(print_graph(integer_graph(float_op=True)))
    assert main(["inspect", str(p), "--dtypes", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["dtype", "ops", "by", "op"]
    assert "i32        1  qlinear 1" in out
    assert out.endswith("float ops inside the integer region: 1 (relu 1)\n")
