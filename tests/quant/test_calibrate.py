"""Calibration: ranges by method, calibration data checks, the options' one-line errors."""
from __future__ import annotations

import numpy as np
import pytest

from vcompile.ir.builder import Builder
from vcompile.ir.graph import Graph
from vcompile.quant import CalibrationWarning, QuantizeError, check_quantize, quantize
from vcompile.quant.calibrate import activation_scales, check_method, collect_ranges
from vcompile.quant.data import load, samples_from, synthetic_samples


def two_inputs() -> Graph:
    bb = Builder("two")
    a = bb.input((1, 4), hint="a")
    b = bb.input((1, 4), hint="b")
    return bb.build(bb.emit("add", a, b, hint="s"))


def one_input() -> Graph:
    bb = Builder("one")
    x = bb.input((2, 3), hint="x")
    return bb.build(bb.emit("relu", x, hint="y"))


def test_minmax_and_percentile_ranges():
    g = one_input()
    x = np.zeros((2, 3), np.float32)
    x[0, 0], x[1, 2] = 100.0, -3.0  # one outlier
    ranges = collect_ranges(g, [g.inputs[0], g.outputs[0]], [[x], [x * 0.5]], "percentile", 50.0)
    r_in, r_out = ranges[g.inputs[0]], ranges[g.outputs[0]]
    assert (r_in.lo, r_in.hi, r_out.lo, r_out.hi) == (-3.0, 100.0, 0.0, 100.0)
    assert r_in.pct == 0.0  # the median of |x| is 0 here ...
    s_mm = activation_scales(ranges, "minmax")
    s_pc = activation_scales(ranges, "percentile", 50.0)
    assert s_mm[g.inputs[0]] == pytest.approx(100 / 127)
    assert s_pc[g.inputs[0]] == pytest.approx(100 / 127)  # ... so it falls back to the max
    x2 = np.arange(6, dtype=np.float32).reshape(2, 3)
    r = collect_ranges(g, [g.inputs[0]], [[x2]], "percentile", 50.0)[g.inputs[0]]
    assert r.pct == pytest.approx(2.5) and activation_scales({0: r}, "percentile", 50.0)[0] == \
        pytest.approx(2.5 / 127)


def test_percentile_clips_outliers_in_the_scale():
    bb = Builder("big")
    g = bb.build(bb.emit("relu", bb.input((10, 100), hint="x"), hint="y"))
    xs = [[np.random.default_rng(i).standard_normal((10, 100)).astype(np.float32)] for i in range(3)]
    xs[0][0][0, 0] = 1000.0
    mm = quantize(g, calib=xs, method="minmax")
    pc = quantize(g, calib=xs, method="percentile", percentile=90.0)
    scale = lambda q: float(next(a for v, a in q.consts.items() if v.hint == "x_scale"))
    assert scale(mm) == pytest.approx(1000 / 127) and scale(pc) < 10 / 127


def test_npz_and_directory(tmp_path):
    g = two_inputs()
    a, b = np.ones((3, 1, 4), np.float32), np.zeros((3, 1, 4), np.float32)
    np.savez(tmp_path / "c.npz", a=a, b=b)
    samples = load(tmp_path / "c.npz", g)
    assert len(samples) == 3 and samples[0][0].shape == (1, 4) and samples[0][1].sum() == 0
    d = tmp_path / "dir"
    d.mkdir()
    for i in range(2):
        np.save(d / f"a_{i}.npy", a[i])
        np.save(d / f"b_{i}.npy", b[i])
    assert len(load(d, g)) == 2
    g1 = one_input()
    d1 = tmp_path / "one"
    d1.mkdir()
    np.save(d1 / "s0.npy", np.ones((4, 3), np.float32))  # a batch of 4 rows = 2 samples of [2,3]
    np.save(d1 / "s1.npy", np.ones((2, 3), np.float32))
    assert [s[0].shape for s in load(d1, g1)] == [(2, 3)] * 3


@pytest.mark.parametrize("data, msg", [
    ({"a": np.ones((1, 4), np.float32)},
     r"has inputs \['a'\], the model takes \['a', 'b'\] \(missing \['b'\]\)"),
    ({"a": np.ones((1, 4), np.float32), "b": np.ones((1, 5), np.float32)},
     r"'b' has shape \[1, 5\], expected f32\[1,4\] or a stack of them \[N,1,4\]"),
    ({"a": np.ones((1, 4)), "b": np.ones((1, 4), np.float32)},
     r"'a' has dtype float64, expected float32 \(cast with .astype\)"),
    ({"a": np.ones((2, 1, 4), np.float32), "b": np.ones((3, 1, 4), np.float32)},
     r"different sample counts: \{'a': 2, 'b': 3\}"),
])
def test_bad_calibration_data_is_one_line(data, msg):
    with pytest.raises(QuantizeError, match=msg) as e:
        samples_from(data, two_inputs())
    assert "\n" not in str(e.value)


def test_bad_files(tmp_path):
    g = two_inputs()
    with pytest.raises(QuantizeError, match="does not exist; give an .npz file or a directory"):
        load(tmp_path / "nope.npz", g)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(QuantizeError, match=r"cannot read calibration .*keys are the inputs \['a', 'b'\]"):
        load(tmp_path / "junk.npz", g)
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(QuantizeError, match="holds no .npy files"):
        load(d, g)
    np.save(d / "a_0.npy", np.ones((1, 4), np.float32))
    with pytest.raises(QuantizeError, match=r"needs files <input>_\*.npy.*found \{'a': 1, 'b': 0\}"):
        load(d, g)


def test_synthetic_inputs_warn_and_are_seeded():
    g = two_inputs()
    with pytest.warns(CalibrationWarning, match="accuracy will suffer; pass real inputs with --calib"):
        s1 = synthetic_samples(g, count=2, seed=3)
    s2 = synthetic_samples(g, count=2, seed=3, warn=False)
    assert len(s1) == 2
    assert all(np.array_equal(x, y) for a, b in zip(s1, s2, strict=True) for x, y in zip(a, b, strict=True))
    with pytest.warns(CalibrationWarning, match=r"keys: a, b"):
        quantize(g)


def test_bad_options_are_one_line():
    with pytest.raises(QuantizeError, match="unknown quantize mode 'int4'; use quantize='int8'"):
        check_quantize("int4")
    with pytest.raises(QuantizeError, match="unknown calibration method 'entropy'; use minmax or percentile"):
        check_method("entropy", 99.99)
    with pytest.raises(QuantizeError, match=r"percentile must be in \(0, 100\], got 120"):
        check_method("percentile", 120)


def test_api_rejects_bad_options_before_loading():
    import vcompile
    with pytest.raises(QuantizeError, match="unknown quantize mode 'int4'"):
        vcompile.compile("no/such/model.onnx", quantize="int4")
    with pytest.raises(QuantizeError, match="unknown calibration method 'kl'"):
        vcompile.compile("no/such/model.onnx", quantize="int8", calib_method="kl")
    from vcompile.errors import VcompileError
    with pytest.raises(VcompileError, match="int8 is not available for the GPU target 'cuda' yet"):
        vcompile.compile("no/such/model.onnx", target="cuda", quantize="int8")


@pytest.mark.parametrize("argv, msg", [
    (["compile", "m.onnx", "--int8", "--calib-method", "kl"], "unknown calibration method 'kl'"),
    (["compile", "m.onnx", "--calib", "c.npz"], "--calib and --calib-method apply to --int8; add --int8"),
    (["inspect", "m.onnx", "--int8", "--percentile", "0"], r"percentile must be in \(0, 100\]"),
    (["bench", "m.onnx", "--int8", "--calib-method", "mse"], "unknown calibration method 'mse'"),
])
def test_cli_bad_options_one_line(argv, msg, capsys):
    import re

    from vcompile.cli import main
    assert main(argv + ["-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(msg, err), err


def test_symbolic_batch_takes_each_array_as_one_sample():
    bb = Builder("sym")
    x = bb.input(("N", 3), hint="x")
    g = bb.build(bb.emit("relu", x, hint="y"))
    samples = samples_from({"x": np.ones((5, 3), np.float32)}, g)
    assert [s[0].shape for s in samples] == [(5, 3)]
    with pytest.raises(QuantizeError, match=r"'x' has shape \[5, 4\], expected f32\[N,3\]"):
        samples_from({"x": np.ones((5, 4), np.float32)}, g)
    with pytest.raises(QuantizeError, match="symbolic dims .*fix them with --input"):
        quantize(g)
