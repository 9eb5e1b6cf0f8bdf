"""NVIDIA GPUs (kind cuda): TVM's GPU pipeline with dlight's schedules, cubin compiled by
nvcc and embedded in the library (`codegen.gpu`). No bundle: its runner would need TVM's
CUDA runtime."""
from __future__ import annotations

import ctypes.util
from typing import TYPE_CHECKING, Any

from vcompile.codegen import gpu
from vcompile.codegen.backends import Backend, Tool

if TYPE_CHECKING:
    from vcompile.codegen.targets import TargetSpec

NVCC = Tool("nvcc", "nvidia-cuda-toolkit")  # or NVIDIA's CUDA toolkit


def compile_cuda(mod: Any, target: Any, *, tiles: Any, fusion: str, tuning_db: str | None,
                 kernels: list[int]) -> Any:
    return gpu.compile_gpu(mod, target, gpu.gpu_pipeline(target, fusion, kernels))


def runs_here(spec: TargetSpec) -> bool:
    return spec.cpu.runs_here and ctypes.util.find_library("cuda") is not None


BACKEND = Backend(kind="cuda", device="cuda", compile=compile_cuda,
                  target_attrs=lambda spec, arch: {"arch": arch or spec.arch},
                  runs_here=runs_here, run_note=lambda spec: "no (needs an NVIDIA GPU and driver)",
                  tools=(NVCC,), tool_hint=" (or NVIDIA's CUDA toolkit, with its bin/ on PATH)")
