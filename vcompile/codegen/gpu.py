"""GPU code generation (CUDA, OpenCL): TVM's GPU pipeline with dlight's default schedules.

    build(g, "cuda", arch="sm_90") => VM executable whose library embeds sm_90 cubin

The CPU kernels of `codegen.cpu.schedules` are for llvm targets; GPU kernels get dlight's
rules (Matmul, GEMV, Reduction, GeneralReduction, Fallback) after the same fusion
passes as the CPU build (our fusion groups stay one kernel each).

Embedded GPU code: TVM compiles CUDA to cubin and stores it in the library only when
its CUDA runtime sidecar (`libtvm_runtime_cuda.so`) is loaded, and that library needs
`libcuda.so.1`, the driver. Without a driver TVM silently stores CUDA *source*, to be
JIT-compiled on the device by Python. So on a machine without a driver vcompile builds
a stub `libcuda.so.1` (every `cu*` symbol the sidecar imports, returning
CUDA_ERROR_NO_DEVICE) into its cache, loads it globally and then loads the sidecar:
the dynamic loader matches the sidecar's `libcuda.so.1` dependency by soname to the
stub. Nothing is ever launched through the stub.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from vcompile.cache import cache_dir
from vcompile.codegen.pipelines import count_kernels, fusion_passes
from vcompile.errors import VcompileError

CUDA_ERROR_NO_DEVICE = 100


class GpuBuildError(VcompileError, RuntimeError):
    """The GPU toolchain or TVM's CUDA sidecar is not usable."""


def gpu_pipeline(target: Any, fusion: str = "tvm", kernels: list[int] | None = None) -> Any:
    """TVM's generic GPU pipeline with vcompile's fusion passes in place of its legalize list."""
    import tvm
    from tvm.relax.backend.gpu_generic import pipeline as gpu

    @tvm.transform.module_pass(opt_level=0, name="vcompile.GpuPipeline")
    def _pipeline(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        with target:
            mod = schedule_gpu(mod, target, fusion)
            if kernels is not None:
                kernels.append(count_kernels(mod))
            seq = gpu.dataflow_lower_passes(target) + gpu.finalize_passes(target)
            return tvm.transform.Sequential(seq)(mod)
    return _pipeline


def schedule_gpu(mod: Any, target: Any, fusion: str = "tvm") -> Any:
    """Legalize, fuse and schedule with dlight: `main` calls one scheduled PrimFunc per kernel."""
    import tvm
    from tvm.s_tir import dlight as dl
    rules = [dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction()]
    with target:
        apply = dl.ApplyDefaultSchedule(*[_declining(r) for r in rules], dl.gpu.Fallback())
        return tvm.transform.Sequential(fusion_passes(target, fusion) + [apply])(mod)


def _declining(rule: Any) -> Any:
    """`rule`, declining (None: the next rule tries) where dlight's analysis raises on a
    kernel it does not expect: GEMV's `normalize` asserts on some of repvit_m0_9's
    fused kernels, which would otherwise fail the whole build."""
    from tvm.s_tir import dlight as dl

    class _Declining(dl.ScheduleRule):
        def apply(self, func: Any, target: Any, tunable: bool) -> Any:
            try:
                return rule.apply(func, target, tunable)
            except (AssertionError, ValueError, IndexError, RuntimeError):
                return None
    _Declining.__name__ = type(rule).__name__
    return _Declining()


def _sidecar() -> Path:
    import tvm
    return Path(tvm.__file__).parent / "lib" / "libtvm_runtime_cuda.so"


def stub_driver(cc: str = "cc") -> Path:
    """Build (once, into the cache) a stub libcuda.so.1 exporting what the sidecar imports."""
    lib = _sidecar()
    out = cache_dir() / "cuda-stub" / "libcuda.so.1"
    if out.exists() and out.stat().st_mtime >= lib.stat().st_mtime:
        return out
    try:
        nm = subprocess.run(["nm", "-D", "--undefined-only", str(lib)], capture_output=True,
                            text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise GpuBuildError(f"cannot list the CUDA driver symbols of {lib} with nm ({e}); "
                            "install binutils") from e
    syms = sorted({ln.split()[-1] for ln in nm.splitlines()
                   if ln.split() and ln.split()[-1].startswith("cu") and "@" not in ln})
    special = {"cuGetErrorName", "cuGetErrorString"}
    src = [f"int {s}(void) {{ return {CUDA_ERROR_NO_DEVICE}; }}" for s in syms if s not in special]
    src += [f'int {s}(int e, const char **out) {{ (void)e; *out = "no CUDA driver (vcompile stub)";'
            f" return 0; }}" for s in sorted(special)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        c = Path(tmp) / "stub.c"
        c.write_text("\n".join(src) + "\n")
        so = Path(tmp) / "libcuda.so.1"
        r = subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(so), str(c)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise GpuBuildError(f"building the stub CUDA driver with {cc} failed: "
                                f"{r.stderr.strip().splitlines()[-1:]}")
        os.replace(so, out)
    return out


def _cudart() -> str:
    """libcudart.so.13 from the system or from the nvidia-cuda-runtime wheel (torch's dependency)."""
    name = "libcudart.so.13"
    for d in sys.path:
        hits = glob.glob(os.path.join(d, "nvidia", "*", "lib", name))
        if hits:
            return hits[0]
    return name


def ensure_cuda_sidecar() -> None:
    """Make sure TVM's CUDA sidecar is loaded (with the stub driver when no driver exists)."""
    from tvm.base import _LOADED_LIBS  # noqa: PLC2701  (TVM's registry of loaded sidecars; no public API)
    if "tvm_runtime_cuda" in _LOADED_LIBS:
        return
    from tvm_ffi.libinfo import load_lib_ctypes
    if ctypes.util.find_library("cuda") is None:
        ctypes.CDLL(str(stub_driver()), mode=ctypes.RTLD_GLOBAL)
    try:
        ctypes.CDLL(_cudart(), mode=ctypes.RTLD_GLOBAL)
        _LOADED_LIBS["tvm_runtime_cuda"] = load_lib_ctypes(
            package="tvm", target_name="tvm_runtime_cuda", extra_lib_paths=[_sidecar().parent],
            mode="RTLD_LOCAL")
    except (OSError, RuntimeError) as e:
        raise GpuBuildError(f"cannot load TVM's CUDA runtime ({e}); it needs libcudart.so.13: "
                            "install the CUDA 13 runtime (pip install nvidia-cuda-runtime)") from e


def compile_gpu(mod: Any, target: Any, pipeline: Any) -> Any:
    """`tvm.compile` for a GPU target; CUDA code is compiled to cubin by nvcc."""
    import tvm
    if target.kind.name == "cuda":
        ensure_cuda_sidecar()
        os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    with target:
        return tvm.compile(mod, target, relax_pipeline=pipeline)


def embedded_arches(path: str | os.PathLike[str]) -> list[str]:
    """The sm_XX of the CUDA device code embedded in a library (cubin ELF headers or fatbin
    notes), read from the bytes: what a device would load, not what was asked for."""
    data = Path(path).read_bytes()
    found: set[str] = set()
    pos = data.find(b"\x7fELF", 1)
    while pos != -1:
        # a cubin is an ELF with e_machine EM_CUDA (190); its e_flags low byte is the SM
        if len(data) >= pos + 52 and int.from_bytes(data[pos + 18:pos + 20], "little") == 190:
            flags = int.from_bytes(data[pos + 48:pos + 52], "little")
            sm = flags & 0xFF if data[pos + 7] != 0x41 else (flags >> 8) & 0xFF
            found.add(f"sm_{sm}")
        pos = data.find(b"\x7fELF", pos + 1)
    return sorted(found)
