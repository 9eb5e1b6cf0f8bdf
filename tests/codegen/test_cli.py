"""The compiled path end to end: `vcompile MODEL -o m.so`, `vcompile run`, `vcompile.load`
in a fresh process, and every user error (one line on stderr, nonzero exit, no output).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm
ROOT = Path(__file__).resolve().parents[2]


def tiny_onnx(path: Path) -> Path:
    """conv(3->4, 3x3, pad 1) -> relu -> global average pool -> flatten: x[1,3,8,8] -> y[1,4]."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["y"])]
    g = helper.make_graph(nodes, "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w, b])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def vc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vcompile", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


def one_line_error(r: subprocess.CompletedProcess[str], match: str) -> None:
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vcompile: error:"), r.stderr
    assert match in lines[0], lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cli")
    model = tiny_onnx(d / "tiny.onnx")
    lib = d / "tiny.so"
    r = vc(str(model), "--target", "host", "-O2", "-o", str(lib))
    assert r.returncode == 0, r.stderr
    return model, lib


def test_compile_and_run_match_onnxruntime(built: tuple[Path, Path], tmp_path: Path) -> None:
    import onnxruntime as ort
    model, lib = built
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = vc("run", str(lib), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"))
    assert r.returncode == 0, r.stderr
    assert "y: float32[1, 4]" in r.stdout
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-4, atol=1e-5)


def test_run_with_random_input(built: tuple[Path, Path]) -> None:
    r = vc("run", str(built[1]))
    assert r.returncode == 0 and "y: float32[1, 4]" in r.stdout, r.stderr


def test_load_in_fresh_process_imports_neither_onnx_nor_torch(built: tuple[Path, Path]) -> None:
    code = ("import sys, numpy as np, vcompile\n"
            f"m = vcompile.load({str(built[1])!r})\n"
            "y, = m(np.ones((1, 3, 8, 8), np.float32))\n"
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('onnx', 'torch', 'onnxruntime'))\n"
            "print(bad, m.input_names, m.output_names, list(y.shape))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[] ['x'] ['y'] [1, 4]"


def test_api_compile_export_load(tmp_path: Path) -> None:
    import vcompile
    model = tiny_onnx(tmp_path / "tiny.onnx")
    m = vcompile.compile(str(model), target="host", opt_level=0)
    assert (m.input_names, m.input_shapes, m.input_dtypes) == (["x"], [(1, 3, 8, 8)], ["f32"])
    assert (m.output_names, m.output_shapes, m.output_dtypes) == (["y"], [(1, 4)], ["f32"])
    assert m.graph is not None
    x = np.ones((1, 3, 8, 8), np.float32)
    m2 = vcompile.load(m.export(tmp_path / "t.so"))
    np.testing.assert_array_equal(m(x)[0], m2(x)[0])
    with pytest.raises(vcompile.api.VcompileError, match="takes 1 input"):
        m2(x, x)
    with pytest.raises(vcompile.api.VcompileError, match=r"must be f32\[1,3,8,8\], got f64"):
        m2(x.astype(np.float64))


# ---- errors ---------------------------------------------------------------------------------

def test_unknown_target_lists_valid_ones(tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "tiny.onnx")
    r = vc(str(model), "--target", "riscv9", "-o", str(tmp_path / "m.so"))
    one_line_error(r, "unknown target 'riscv9'; valid targets: host, x86_64")
    assert not (tmp_path / "m.so").exists()


def test_bad_mcpu_is_rejected(tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "tiny.onnx")
    r = vc(str(model), "--target", "x86_64", "--mcpu", "znver99", "-o", str(tmp_path / "m.so"))
    one_line_error(r, "mcpu 'znver99' is not a CPU LLVM knows")


def test_unwritable_output_leaves_nothing(tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "tiny.onnx")
    r = vc(str(model), "-o", str(tmp_path / "no" / "such" / "dir" / "m.so"))
    one_line_error(r, "does not exist")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = vc(str(model), "-o", str(blocker / "m.so"))
    one_line_error(r, "cannot write")


def test_failed_compile_keeps_no_stale_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    out = tmp_path / "m.so"
    r = vc(str(bad), "-o", str(out))
    assert r.returncode != 0 and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.onnx"]


def test_not_a_vcompile_library(tmp_path: Path) -> None:
    txt = tmp_path / "model.so"
    txt.write_text("hello")
    one_line_error(vc("run", str(txt)), "not a vcompile library (not an ELF")
    libm = Path("/lib/x86_64-linux-gnu/libm.so.6")
    if libm.exists():
        one_line_error(vc("run", str(libm)), "not a vcompile library (no vcompile metadata)")


def test_truncated_library(built: tuple[Path, Path], tmp_path: Path) -> None:
    data = built[1].read_bytes()
    for keep, what in ((len(data) // 2, "truncated"), (len(data) - 20, "truncated")):
        cut = tmp_path / f"cut{keep}.so"
        cut.write_bytes(data[:keep])
        one_line_error(vc("run", str(cut)), what)


def test_corrupt_library(built: tuple[Path, Path], tmp_path: Path) -> None:
    data = bytearray(built[1].read_bytes())
    data[5000] ^= 0xFF
    bad = tmp_path / "bad.so"
    bad.write_bytes(bytes(data))
    one_line_error(vc("run", str(bad)), "checksum")


def test_wrong_input_shape_at_run_time(built: tuple[Path, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 9, 9), np.float32))
    r = vc("run", str(built[1]), "--input", str(tmp_path / "x.npy"))
    one_line_error(r, "input 'x' must be f32[1,3,8,8], got f32[1,3,9,9]")


def test_metadata_is_embedded(built: tuple[Path, Path]) -> None:
    from vcompile.codegen.deploy import artifact
    meta = artifact.read(built[1])
    assert meta["inputs"] == [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "f32"}]
    assert meta["target"] == "host" and meta["opt_level"] == 2
    assert json.loads(json.dumps(meta)) == meta
    assert os.path.getsize(built[1]) > meta["elf_size"]


def test_import_vcompile_stays_light() -> None:
    code = "import sys, vcompile; vcompile.compile; print('tvm' in sys.modules, 'onnx' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.stdout.strip() == "False False", r.stderr


def test_bench_reports_kernels_and_agreement(built: tuple[Path, Path]) -> None:
    r = vc("bench", str(built[0]), "--repeat", "3", "--warmup", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    # conv + relu + global pool + flatten: conv_relu and the pool are the two kernels
    assert "vcompile launches 2 kernels per inference (fusion: vcompile)" in r.stdout
    err = float(r.stdout.split("max relative difference vcompile vs onnxruntime: ")[1].split()[0])
    assert err < 1e-4
