"""GPUs through OpenCL (kind opencl: Mali, Adreno): TVM's GPU pipeline with dlight's
schedules, OpenCL C embedded in the library (`codegen.gpu`). TVM's wheel has no OpenCL
runtime, so nothing runs in this process; the kernels can run on the CPU through PoCL."""
from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from vcompile.codegen import gpu
from vcompile.codegen.backends import Backend

if TYPE_CHECKING:
    from vcompile.codegen.targets import TargetSpec


def compile_opencl(mod: Any, target: Any, *, tiles: Any, fusion: str, tuning_db: str | None,
                   kernels: list[int]) -> Any:
    return gpu.compile_gpu(mod, target, gpu.gpu_pipeline(target, fusion, kernels))


def run_note(spec: TargetSpec) -> str:
    ok = importlib.util.find_spec("pyopencl") is not None
    return "kernels on the CPU through PoCL" if ok else "no (pyopencl missing)"


BACKEND = Backend(kind="opencl", device="opencl", compile=compile_opencl,
                  target_attrs=lambda spec, arch: {"device": spec.device},
                  runs_here=lambda spec: False, run_note=run_note)
