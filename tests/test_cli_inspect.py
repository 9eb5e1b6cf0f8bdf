"""`vcompile inspect`: IR text and --stats on a small ONNX model, exit codes, one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vcompile.cli import main
from vcompile.cli.inputs import parse_input_spec

ROOT = Path(__file__).resolve().parents[1]


def _small_onnx(path: Path, batch: int | str = 1) -> Path:
    """x[B,3,8,8] -> Conv(4, 3x3, pad 1) -> Relu -> Flatten -> Gemm(256 -> 2, transB) -> y."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in [("w", (4, 3, 3, 3)), ("b", (4,)), ("fw", (2, 256)), ("fb", (2,))]]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1],
                              kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _small_onnx(tmp_path_factory.mktemp("inspect") / "small.onnx")


@pytest.fixture(scope="module")
def small_dynamic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _small_onnx(tmp_path_factory.mktemp("inspect") / "dyn.onnx", batch="N")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_prints_ir(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "inspect", str(small))
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("graph @") and lines[0].endswith("(%x: f32[1,3,8,8]) {")
    ops = [ln.split("=", 1)[1].split("(")[0].strip() for ln in lines if " = " in ln
           and not ln.lstrip().startswith("const")]
    assert ops[0] == "conv2d" and ops[1] == "relu" and ops[-1] == "gemm"
    assert "f32[1,4,8,8]" in out and lines[-2].strip().startswith("return %") and lines[-1] == "}"


def test_stats(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "inspect", str(small), "--stats")
    assert (rc, err) == (0, "")
    # conv 2*256*27 + relu 256 + gemm 2*2*256; flatten/reshape is free
    assert "FLOPs: 15,104 (0.000 GFLOP; multiply-add = 2 FLOPs)" in out
    assert "parameters: 626 (626, 0.0 MiB)" in out
    rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines()[2:-2]}
    assert rows["conv2d"][:2] == ["1", "13,824"] and rows["gemm"][:2] == ["1", "1,024"]


def test_output_file(small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "small.vir"
    rc, out, err = _run(capsys, "inspect", str(small), "-o", str(target))
    assert (rc, out, err) == (0, "", "")
    text = target.read_text()
    assert _run(capsys, "inspect", str(small))[1] == text
    # the written text inspects again (constants re-seeded), to the same text
    assert _run(capsys, "inspect", str(target)) == (0, text, "")


def test_input_shape_fixes_symbolic_batch(small_dynamic: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "inspect", str(small_dynamic), "--input", "x=2x3x8x8")
    assert rc == 0 and "(%x: f32[2,3,8,8])" in out.splitlines()[0] and "f32[2,2]" in out


def test_subprocess(small: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vcompile", "inspect", str(small), "--stats"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "FLOPs: 15,104" in proc.stdout
    missing = subprocess.run([sys.executable, "-m", "vcompile", "inspect", "nope.onnx"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == "vcompile: error: nope.onnx: no such file\n"


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "inspect", str(tmp_path / "absent.onnx"))
    assert (rc, out) == (1, "")
    assert err == f"vcompile: error: {tmp_path / 'absent.onnx'}: no such file\n"


@pytest.mark.parametrize(("spec", "why"), [
    ("1x3x224x224", "expected NAME=DIMS"),
    ("x=", "expected NAME=DIMS"),
    ("=1x3", "expected NAME=DIMS"),
    ("x=1x3x-2", "dim '-2' is neither a size nor a name"),
    ("x=1xx3", "dim '' is neither a size nor a name"),
])
def test_bad_input_spec(spec: str, why: str, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")  # never read: the spec fails first
    rc, out, err = _run(capsys, "inspect", str(model), "--input", spec)
    assert (rc, out) == (1, "")
    assert err.startswith(f"vcompile: error: bad --input {spec!r}: ") and why in err
    assert err.count("\n") == 1


def test_input_given_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, "inspect", str(tmp_path / "m.onnx"), "--input", "x=1",
                      "--input", "x=2")
    assert rc == 1 and err == "vcompile: error: --input x is given twice\n"


def test_parse_input_spec() -> None:
    assert parse_input_spec("x=1x3x224x224") == ("x", (1, 3, 224, 224))
    assert parse_input_spec("input.1=N,3,8,8") == ("input.1", ("N", 3, 8, 8))
    assert parse_input_spec("scalar=1") == ("scalar", (1,))


VIR = """graph @block(%x: f32[1,3,8,8]) {
  const %w: f32[4,3,3,3]
  const %b: f32[4] = [0.0, 0.0, 0.0, 0.0]
  %y = conv2d(%x, %w, %b) {dilations=[1,1], groups=1, pads=[1,1,1,1], strides=[1,1]} : f32[1,4,8,8]
  %y_1 = relu(%y) : f32[1,4,8,8]
  return %y_1
}
"""


def test_vir_text_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "block.vir"
    path.write_text(VIR)
    assert _run(capsys, "inspect", str(path)) == (0, VIR, "")
    rc, out, _ = _run(capsys, "inspect", str(path), "--stats")
    assert rc == 0 and "FLOPs: 14,080 (0.000 GFLOP" in out  # 13,824 conv + 256 relu


def test_vir_parse_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.vir"
    path.write_text("graph @g(%x: f32[1]) {\n  %y = relu(%x : f32[1]\n  return %y\n}\n")
    rc, out, err = _run(capsys, "inspect", str(path))
    assert (rc, out) == (1, "") and err.startswith("vcompile: error: line 2") and err.count("\n") == 1


def test_fusion(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "inspect", str(small), "-O2", "--fusion")
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    # conv + relu is one group; the flatten is a view; the gemm becomes a linear
    assert lines[1].split()[1:3] == ["conv2d_relu", "2"]
    assert lines[2].split()[1:3] == ["linear", "1"]
    assert lines[-1] == "kernels: 2 (1 fused groups; 3 ops unfused, views excluded)"
    # -O0 recognizes nothing but --fusion still groups what is there
    rc, out, _ = _run(capsys, "inspect", str(small), "-O0", "--fusion")
    assert rc == 0 and out.splitlines()[-1].startswith("kernels: 2 ")
