"""Deployment bundles: the C++ runner runs natively (x86 host bundle) and under qemu-aarch64
(arm64 bundle, runtime libraries from the official aarch64 wheels) and matches the x86
build; altered files, wrong-shaped inputs and unsupported targets are clear errors.

    vcompile m.onnx --target arm64 --bundle b/ ; qemu-aarch64 -L /usr/aarch64-linux-gnu b/runner x.npy
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.codegen.test_cli import tiny_onnx

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm

QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
NEEDS_QEMU = pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-g++") is None,
    reason="needs qemu-user and g++-aarch64-linux-gnu (Debian packages, see Makefile APT_PACKAGES)")


def runner(bundle: Path, *args: str, qemu: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [*(QEMU if qemu else []), str(bundle / "runner"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={"TVM_NUM_THREADS": "2"})


def compile_bundle(model: Path, target: str, bundle: Path) -> Path:
    from vcompile.cli import main
    lib = bundle.with_suffix(".so")
    assert main([str(model), "--target", target, "-O2", "-o", str(lib), "--bundle", str(bundle)]) == 0
    return lib


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-12))


@pytest.fixture(scope="module")
def host_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("bundle")
    return compile_bundle(tiny_onnx(d / "tiny.onnx"), "host", d / "tiny"), d / "tiny"


def test_host_bundle_manifest_and_native_runner(host_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    import vcompile
    lib, b = host_bundle
    m = json.loads((b / "manifest.json").read_text())
    assert m["inputs"] == [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"}]
    assert m["outputs"] == [{"name": "y", "shape": [1, 4], "dtype": "float32"}]
    assert m["target"] == "host" and m["versions"]["apache-tvm"].startswith("0.27")
    assert "fold-constants" in m["passes"] and m["runner"] == "runner"
    assert {"model.so", "libtvm_runtime.so", "libtvm_ffi.so", "runner", "runner.cc",
            "CMakeLists.txt"} <= set(m["files"])
    assert "add_executable(runner runner.cc)" in (b / "CMakeLists.txt").read_text()
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    want = vcompile.load(lib)(x)[0]
    for name in ("x.npy", "x.bin"):  # .npy and raw little-endian bytes
        out = tmp_path / name.replace(".", "_")
        out.mkdir()
        r = runner(b, "-n", "3", "-o", str(out), str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        assert "3 iteration(s), median" in r.stdout
        np.testing.assert_allclose(np.load(out / "y.npy"), want, rtol=1e-6, atol=1e-6)


def test_runner_rejects_wrong_inputs(host_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    _, b = host_bundle
    np.save(tmp_path / "wide.npy", np.zeros((1, 3, 9, 8), np.float32))
    np.save(tmp_path / "int.npy", np.zeros((1, 3, 8, 8), np.int64))
    (tmp_path / "short.bin").write_bytes(b"\0" * 100)
    cases = {("wide.npy",): "input 'x' (" + str(tmp_path / "wide.npy") + ") has shape (1, 3, 9, 8), "
             "the manifest says (1, 3, 8, 8)",
             ("int.npy",): "int.npy) has dtype <i8, the model wants float32 (<f4)",
             ("short.bin",): "has 100 bytes of data, (1, 3, 8, 8) float32 needs 768",
             (): "the model takes 1 input(s) (x float32(1, 3, 8, 8)), got 0 file(s)"}
    for files, msg in cases.items():
        r = runner(b, *(str(tmp_path / f) for f in files))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("runner: error: "), r.stderr
        assert msg in lines[0]


def test_altered_bundle_is_refused(host_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    from vcompile.codegen.deploy.bundle import BundleError, verify_bundle
    _, b = host_bundle
    copy = tmp_path / "copy"
    shutil.copytree(b, copy, symlinks=True)
    verify_bundle(copy)
    data = bytearray((copy / "model.so").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.so").write_bytes(bytes(data))
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    r = runner(copy, str(tmp_path / "x.npy"))
    assert r.returncode == 1
    assert r.stderr.startswith("runner: error: checksum mismatch for model.so: the manifest says sha256 ")
    with pytest.raises(BundleError, match="checksum mismatch for model.so"):
        verify_bundle(copy)


def test_bundle_errors(host_bundle: tuple[Path, Path], tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    from vcompile.cli import main
    from vcompile.codegen.deploy.bundle import BundleError, write_bundle
    lib, _ = host_bundle
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="exists and is not a vcompile bundle"):
        write_bundle(lib, busy)
    assert (busy / "notes.txt").read_text() == "mine"
    model = tiny_onnx(tmp_path / "tiny.onnx")
    for target, msg in [("android-arm64", "no prebuilt TVM runtime for Android"),
                        ("opencl-mali", "--bundle supports CPU targets")]:
        assert main([str(model), "--target", target, "-o", str(tmp_path / "m.so"),
                     "--bundle", str(tmp_path / target)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("vcompile: error:") and msg in err
        assert not (tmp_path / target).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".vcompile-bundle-")]


@NEEDS_QEMU
def test_arm64_bundle_runs_under_qemu(tmp_path: Path) -> None:
    import vcompile
    model = tiny_onnx(tmp_path / "tiny.onnx")
    b = tmp_path / "arm"
    compile_bundle(model, "arm64", b)
    assert int.from_bytes((b / "runner").read_bytes()[18:20], "little") == 183  # EM_AARCH64
    assert int.from_bytes((b / "libtvm_runtime.so").read_bytes()[18:20], "little") == 183
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    r = runner(b, "-n", "2", "-o", str(tmp_path), str(tmp_path / "x.npy"), qemu=True)
    assert r.returncode == 0, r.stderr
    want = vcompile.compile(str(model), target="host")(x)[0]
    assert rel_err(np.load(tmp_path / "y.npy"), want) < 1e-5


@NEEDS_QEMU
@pytest.mark.parametrize("name", ["resnet18",
                                  pytest.param("deit_tiny_patch16_224", marks=pytest.mark.slow),
                                  pytest.param("mobilevitv2_050", marks=pytest.mark.slow)])
def test_timm_model_arm64_bundle_matches_x86(name: str, tmp_path: Path) -> None:
    import vcompile
    from tests.models import onnx_model, sample_input
    model = onnx_model(name)
    b = tmp_path / name
    compile_bundle(model, "arm64", b)
    x = sample_input(name)
    np.save(tmp_path / "x.npy", x)
    r = runner(b, "-n", "1", "--warmup", "0", "-o", str(tmp_path), str(tmp_path / "x.npy"), qemu=True)
    assert r.returncode == 0, r.stderr
    out = json.loads((b / "manifest.json").read_text())["outputs"]
    got = [np.load(tmp_path / f"{o['name']}.npy") for o in out]
    want = vcompile.compile(str(model), target="x86_64")(x)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and rel_err(g, w) < 1e-4


def test_bundle_without_cross_compiler_ships_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vcompile
    from vcompile.codegen.deploy.bundle import verify_bundle, write_bundle
    lib = vcompile.compile(str(tiny_onnx(tmp_path / "tiny.onnx")), target="arm64").export(tmp_path / "m.so")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no aarch64-linux-gnu-g++
    summary = write_bundle(lib, tmp_path / "b")
    assert "runner not built: aarch64-linux-gnu-g++ not found (install g++-aarch64-linux-gnu)" in summary
    m = verify_bundle(tmp_path / "b")
    assert m["runner"] is None and "runner" not in m["files"] and "runner.cc" in m["files"]
    assert (tmp_path / "b" / "CMakeLists.txt").exists() and not (tmp_path / "b" / "runner").exists()


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed (Debian package cmake)")
def test_bundle_cmakelists_builds_the_runner(host_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    _, b = host_bundle
    copy = tmp_path / "copy"
    shutil.copytree(b, copy)
    build = str(copy / "build")
    for cmd in (["cmake", "-S", str(copy), "-B", build], ["cmake", "--build", build]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    np.save(tmp_path / "x.npy", np.ones((1, 3, 8, 8), np.float32))
    r = subprocess.run([str(copy / "build" / "runner"), "--bundle", str(copy), "-o", str(tmp_path),
                        str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "y.npy").shape == (1, 4)


def test_runner_and_runtime_library_errors(host_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    from vcompile.codegen.deploy.runtime_libs import RuntimeLibError, download_wheel, runtime_libs
    _, b = host_bundle
    copy = tmp_path / "copy"
    shutil.copytree(b, copy)
    (copy / "manifest.json").write_text('{"files": ')
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    r = runner(copy, str(tmp_path / "x.npy"))
    assert r.returncode == 1 and r.stderr.startswith("runner: error: manifest.json is not valid JSON")
    r = runner(b, "--frobnicate")
    assert r.returncode == 1 and r.stderr.strip() == "runner: error: unknown option --frobnicate"
    with pytest.raises(RuntimeLibError, match="no prebuilt TVM runtime exists for riscv64"):
        runtime_libs("riscv64")
    with pytest.raises(RuntimeLibError, match=r"cannot download the aarch64 wheel of apache-tvm==0\.0\.1"):
        download_wheel("apache-tvm", "0.0.1", "aarch64", tmp_path)
