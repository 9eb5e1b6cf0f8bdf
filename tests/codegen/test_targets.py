"""The named targets: their TVM target dicts, option checks, toolchain errors, and the
libraries each builds here (arm64, android-arm64, cuda with embedded cubin, OpenCL).

    resolve("cuda", arch="sm_90") => Target(cuda -arch=sm_90, host=x86_64)
    vcompile m.onnx --target arm64 --mcpu cortex-a99 => "vcompile: error: unknown --mcpu ..."
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.codegen.test_cli import tiny_onnx

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm

from vcompile.codegen import targets  # noqa: E402
from vcompile.codegen.targets import TargetError  # noqa: E402
from vcompile.errors import VcompileError  # noqa: E402

NEEDS_NVCC = pytest.mark.skipif(shutil.which("nvcc") is None,
                                reason="nvcc (CUDA toolkit) is not installed on this machine")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("targets") / "tiny.onnx")


def test_every_issue_target_is_registered_with_its_tvm_dict() -> None:
    issue = {"arm64", "android-arm64", "cuda", "jetson-orin", "opencl-mali", "opencl-adreno"}
    assert issue <= set(targets.TARGETS)
    arm = targets.target_dict("arm64", mcpu="neoverse-n1")
    assert (arm["mtriple"], arm["mcpu"], arm["mattr"]) == ("aarch64-linux-gnu", "neoverse-n1", ["+neon"])
    assert targets.target_dict("android-arm64", api_level=29)["mtriple"] == "aarch64-linux-android29"
    cuda = targets.target_dict("cuda", arch="sm_90")
    assert (cuda["kind"], cuda["arch"], cuda["host"]["kind"]) == ("cuda", "sm_90", "llvm")
    orin = targets.target_dict("jetson-orin")
    assert orin["arch"] == "sm_87" and orin["host"]["mtriple"] == "aarch64-linux-gnu"
    assert orin["host"]["mcpu"] == "cortex-a78"
    mali, adreno = targets.target_dict("opencl-mali"), targets.target_dict("opencl-adreno")
    assert (mali["device"], mali["host"]["mtriple"]) == ("mali", "aarch64-linux-gnu")
    assert (adreno["device"], adreno["host"]["mtriple"]) == ("adreno", "aarch64-linux-android24")
    t = targets.resolve("cuda", arch="sm_86")
    assert t.kind.name == "cuda" and str(t.attrs["arch"]) == "sm_86" and t.host.kind.name == "llvm"


@pytest.mark.parametrize(("kw", "match"), [
    ({"name": "arm64", "mcpu": "cortex-a99"},
     "unknown --mcpu 'cortex-a99' for target 'arm64'; choose one of: cortex-a53, cortex-a55"),
    ({"name": "jetson-orin", "mcpu": "skylake"}, "unknown --mcpu 'skylake'"),
    ({"name": "cuda", "arch": "sm_75"},
     "unknown --arch 'sm_75' for target 'cuda'; choose one of: sm_80, sm_86"),
    ({"name": "jetson-orin", "arch": "sm_90"}, "choose one of: sm_87"),
    ({"name": "arm64", "arch": "sm_80"}, "--arch applies to CUDA targets"),
    ({"name": "android-arm64", "api_level": 5}, "--api-level 5 is out of range; Android API levels 21..35"),
    ({"name": "arm64", "api_level": 24}, "--api-level applies to Android targets"),
    ({"name": "x86_64", "mcpu": "pentium9"}, "not a CPU LLVM knows for x86_64-linux-gnu"),
])
def test_bad_target_options(kw: dict, match: str) -> None:
    with pytest.raises(TargetError, match=re.escape(match)):
        targets.resolve(**kw)


@pytest.mark.parametrize(("target", "package"), [
    ("arm64", "gcc-aarch64-linux-gnu"), ("android-arm64", "clang lld"), ("cuda", "nvidia-cuda-toolkit"),
    ("opencl-mali", "gcc-aarch64-linux-gnu")])
def test_missing_toolchain_names_the_debian_package(target: str, package: str, tiny: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from vcompile.cli import main
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no toolchain at all
    with pytest.raises(TargetError, match=f"install the Debian package {package}"):
        targets.resolve(target)
    assert main([str(tiny), "--target", target, "-o", str(tmp_path / "m.so")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vcompile: error: target {target!r} needs")
    assert package in err[0]
    assert not (tmp_path / "m.so").exists()


def test_cli_rejects_unknown_mcpu_and_arch(tiny: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from vcompile.cli import main
    assert main([str(tiny), "--target", "arm64", "--mcpu", "cortex-a99", "-o", str(tmp_path / "m.so")]) == 1
    assert "unknown --mcpu 'cortex-a99' for target 'arm64'" in capsys.readouterr().err
    assert main([str(tiny), "--target", "cuda", "--arch", "sm_70", "-o", str(tmp_path / "m.so")]) == 1
    assert "unknown --arch 'sm_70'" in capsys.readouterr().err


def test_targets_command_lists_needs_and_where_each_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from vcompile.cli import main
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in targets.TARGETS:
        assert name in out
    assert "gcc-aarch64-linux-gnu" in out and "nvidia-cuda-toolkit" in out and "lld" in out
    assert "qemu-aarch64" in out and "PoCL" in out and "sm_80|sm_86|sm_87|sm_89|sm_90" in out


def _build(tiny: Path, target: str, out: Path, **kw: object) -> Path:
    import vcompile
    m = vcompile.compile(str(tiny), target=target, **kw)
    m.export(out)
    return out


def _elf_machine(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[18:20], "little")


@pytest.mark.parametrize("target", ["arm64", "android-arm64"])
def test_arm_libraries_build(target: str, tiny: Path, tmp_path: Path) -> None:
    lib = _build(tiny, target, tmp_path / "m.so", mcpu="cortex-a76")
    assert _elf_machine(lib) == 183  # EM_AARCH64
    from vcompile.codegen.deploy import artifact
    assert "cortex-a76" in artifact.read(lib)["tvm_target"]


@pytest.mark.parametrize(("target", "host_machine"), [("opencl-mali", 183), ("opencl-adreno", 183)])
def test_opencl_libraries_build(target: str, host_machine: int, tiny: Path, tmp_path: Path) -> None:
    lib = _build(tiny, target, tmp_path / "m.so")
    data = lib.read_bytes()
    assert _elf_machine(lib) == host_machine
    assert data.count(b"__kernel void") >= 2  # OpenCL C for the device, beside the host code


@NEEDS_NVCC
@pytest.mark.parametrize(("target", "arch"), [("cuda", "sm_80"), ("jetson-orin", "sm_87"), ("cuda", "sm_90")])
def test_cuda_libraries_embed_cubin_for_the_arch(target: str, arch: str, tiny: Path, tmp_path: Path) -> None:
    from vcompile.codegen.gpu import embedded_arches
    lib = _build(tiny, target, tmp_path / "m.so", arch=arch)
    assert embedded_arches(lib) == [arch]  # compiled device code, not CUDA source to JIT
    assert b"extern \"C\" __global__" not in lib.read_bytes()
    assert _elf_machine(lib) == (183 if target == "jetson-orin" else 62)


@NEEDS_NVCC
def test_resnet18_cuda_build(tmp_path: Path) -> None:
    import vcompile
    from tests.models import onnx_model
    from vcompile.codegen.gpu import embedded_arches
    m = vcompile.compile(str(onnx_model("resnet18")), target="cuda", arch="sm_87")
    assert m.meta["device"] == "cuda" and m.meta["kernels"] > 10
    assert embedded_arches(m.export(tmp_path / "r18.so")) == ["sm_87"]
    x = np.zeros((1, 3, 224, 224), np.float32)
    if not targets.spec("cuda").runs_here:
        with pytest.raises(VcompileError, match="cannot run on this machine"):
            m(x)


def _suite_rest() -> list[str]:
    from tests.models import SUITE
    bundled = {"resnet18", "deit_tiny_patch16_224", "mobilevitv2_050"}  # run under qemu in test_bundle
    return [m for m in SUITE if m not in bundled]


@pytest.mark.slow
@pytest.mark.parametrize("name", _suite_rest())
def test_suite_model_builds_for_arm64(name: str, tmp_path: Path) -> None:
    import vcompile
    from tests.models import onnx_model
    m = vcompile.compile(str(onnx_model(name)), target="arm64", mcpu="cortex-a76")
    lib = Path(m.export(tmp_path / f"{name}.so"))
    assert _elf_machine(lib) == 183 and m.meta["kernels"] > 10
    from vcompile.codegen.deploy import artifact
    meta = artifact.read(lib)
    assert meta["target"] == "arm64" and "aarch64-linux-gnu" in meta["tvm_target"]
