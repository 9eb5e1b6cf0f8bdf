"""The whole int8 flow: rewrites -> calibrate -> QDQ -> lower-integer -> fuse -> codegen.

Every test here needs the `lower-integer` pass; the `tvm` ones the integer kernels too.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.quant.test_qdq import conv_block
from vcompile.api import optimize_int8
from vcompile.ir import interp
from vcompile.ir.dtypes import float_ops_in_integer_region

CALIB = {"x": np.random.default_rng(1).standard_normal((4, 1, 2, 4, 4)).astype(np.float32)}


@pytest.mark.parametrize("level", [1, 2])
def test_int8_flow_leaves_no_float_op(level):
    g0 = conv_block()
    g, ran = optimize_int8(g0, level, calib=CALIB)
    assert float_ops_in_integer_region(g) == []
    assert ("fuse" in ran) == (level == 2) and ran.index("quantize") < ran.index("lower-integer")
    x = CALIB["x"][0]
    assert np.abs(interp.run(g, x)[0] - interp.run(g0, x)[0]).max() < 0.05


def test_cli_inspect_int8_dtypes(tmp_path, capsys):
    from vcompile.cli import main
    from vcompile.ir.printer import print_graph
    p, c = tmp_path / "g.vir", tmp_path / "c.npz"
    p.write_text(print_graph(conv_block()))
    np.savez(c, **CALIB)
    assert main(["inspect", str(p), "--dtypes", "--int8", "--calib", str(c), "-O2", "-q"]) == 0
    out = capsys.readouterr()
    assert out.out.endswith("float ops inside the integer region: 0\n") and "i8" in out.out
    assert "warning" not in out.err
    assert main(["inspect", str(p), "--dtypes", "--int8", "-q"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("vcompile: warning: int8 without calibration data") and err.count("\n") == 1


@pytest.mark.tvm
def test_compiled_int8_equals_interpreter_bit_for_bit():
    import vcompile
    m = vcompile.compile(conv_block(), quantize="int8", calib=CALIB)
    assert float_ops_in_integer_region(m.graph) == []
    x = CALIB["x"][2]
    y, ref = m(x)[0], interp.run(m.graph, x)[0]
    assert np.array_equal(y, ref), np.abs(y - ref).max()


@pytest.mark.tvm
def test_cli_compile_int8_and_run(tmp_path, capsys):
    """`vcompile m.onnx --int8 --calib c.npz -o m.so`, then `vcompile run m.so`."""
    from tests.test_cli_inspect import _small_onnx
    from vcompile.cli import main
    model = _small_onnx(tmp_path / "small.onnx")
    calib = tmp_path / "c.npz"
    np.savez(calib, x=np.random.default_rng(0).standard_normal((4, 1, 3, 8, 8)).astype(np.float32))
    lib = tmp_path / "m.so"
    assert main([str(model), "--int8", "--calib", str(calib), "-o", str(lib), "-q"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["run", str(lib), "-q"]) == 0
    assert capsys.readouterr().out.startswith("y: float32[1, 2]")


@pytest.mark.tvm
@pytest.mark.parametrize("act", ["u8", "i8"])
def test_int8_on_an_onnx_qdq_model_lowers_its_own_scales(tmp_path, act):
    """quantize="int8" on a model onnxruntime's quantize_static already quantized: no
    calibration (its scales are kept), integer ops only, within 1 step of onnxruntime."""
    import warnings

    import vcompile
    from tests.quant_models import quantized_cnn, step
    path, inputs, ort = quantized_cnn(tmp_path, "qdq", per_channel=True, act_type=act)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no CalibrationWarning: nothing is calibrated
        m = vcompile.compile(str(path), quantize="int8")
    ops = {n.op for n in m.graph.nodes for n in (n.region.nodes if n.region else [n])}
    assert float_ops_in_integer_region(m.graph) == [] and "qconv2d" in ops and "conv2d" not in ops
    y = m(*inputs)[0]
    assert np.abs(y - ort[0]).max() <= step(path) * 1.0001


def test_inspect_int8_on_an_onnx_qdq_model(tmp_path, capsys):
    """inspect --int8 takes the same path: the model's own pairs, lowered, nothing float."""
    from tests.quant_models import quantized_cnn
    from vcompile.cli import main
    path, _, _ = quantized_cnn(tmp_path, "qdq", per_channel=True, act_type="u8")
    capsys.readouterr()
    assert main(["inspect", str(path), "--int8", "--dtypes", "-q"]) == 0
    out = capsys.readouterr()
    assert out.out.endswith("float ops inside the integer region: 0\n") and "qconv2d 3" in out.out
    assert "warning" not in out.err
