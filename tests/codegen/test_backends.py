"""One `Backend` per TVM target kind, found by listing `codegen/backends/`; every named
target's kind has one. No TVM needed."""
from __future__ import annotations

import sys

import pytest

from vcompile.codegen import backends, targets


def test_every_target_kind_has_a_backend() -> None:
    assert backends.kinds() == ["cuda", "llvm", "opencl"]
    for s in targets.TARGETS.values():
        assert s.backend is backends.for_kind(s.kind)
    with pytest.raises(KeyError, match="no backend for target kind 'vulkan'"):
        backends.for_kind("vulkan")


def test_what_each_kind_holds() -> None:
    cpu, cuda, ocl = (backends.for_kind(k) for k in ("llvm", "cuda", "opencl"))
    assert (cpu.device, cuda.device, ocl.device) == ("cpu", "cuda", "opencl")
    assert cpu.bundle_libs == ("libtvm_runtime.so", "libtvm_ffi.so")
    assert cuda.bundle_libs == ocl.bundle_libs == ()
    assert [t.exe for t in cuda.tools] == ["nvcc"] and cpu.tools == ocl.tools == ()
    assert targets.spec("jetson-orin").toolchain()[0].exe == "nvcc"
    assert cuda.target_attrs(targets.spec("cuda"), None) == {"arch": "sm_80"}
    assert ocl.target_attrs(targets.spec("opencl-adreno"), None) == {"device": "adreno"}
    assert not ocl.runs_here(targets.spec("opencl-mali"))


def test_listing_backends_imports_no_tvm() -> None:
    import subprocess
    code = ("import sys; from vcompile.codegen import targets; "
            "[s.run_note() for s in targets.TARGETS.values()]; print('tvm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
