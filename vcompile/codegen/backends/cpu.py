"""CPUs through LLVM (kind llvm): packed kernels with rule-based schedules, tuning records
when the plan names a database, a bundle with TVM's CPU runtime."""
from __future__ import annotations

import platform
import shutil
from typing import TYPE_CHECKING, Any

from vcompile.codegen.backends import Backend
from vcompile.codegen.cpu.database import open_db
from vcompile.codegen.pipelines import relax_pipeline

if TYPE_CHECKING:
    from vcompile.codegen.options import CodegenOptions
    from vcompile.codegen.targets import TargetSpec


def emit_tiles(target: Any, options: CodegenOptions) -> Any:
    """With `options.schedules`, the packed kernels of `emit.tiled` for the target's tiles."""
    from vcompile.codegen.cpu.schedules import cpu_tiles
    return cpu_tiles(target) if options.schedules else None


def compile_cpu(mod: Any, target: Any, *, tiles: Any, fusion: str, tuning_db: str | None,
                kernels: list[int]) -> Any:
    """TVM's CPU pipeline with our schedules (`cpu.schedules`) after fusion; with
    `tuning_db`, that MetaSchedule database's best records first (`codegen.tune`)."""
    import tvm

    from vcompile.codegen.cpu.schedules import ScheduleCPU
    pipeline = relax_pipeline(target, ScheduleCPU(tiles) if tiles is not None else None,
                              tuned=tuning_db is not None, fusion=fusion, kernels=kernels)
    if tuning_db is None:
        return tvm.compile(mod, target, relax_pipeline=pipeline)
    with open_db(tuning_db):
        return tvm.compile(mod, target, relax_pipeline=pipeline)


def runs_here(spec: TargetSpec) -> bool:
    return spec.platform in (None, platform.machine())


def run_note(spec: TargetSpec) -> str:
    if spec.qemu:
        ok = shutil.which("qemu-aarch64") is not None
        return "under qemu-aarch64 (bundle runner, RPC)" if ok else "no (install qemu-user)"
    return "no (needs an Android device)"


BACKEND = Backend(kind="llvm", device="cpu", compile=compile_cpu, emit_tiles=emit_tiles,
                  runs_here=runs_here, run_note=run_note,
                  bundle_libs=("libtvm_runtime.so", "libtvm_ffi.so"))
