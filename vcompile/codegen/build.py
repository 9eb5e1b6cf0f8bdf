"""Build and export: Graph -> Relax -> `tvm.compile` -> VM executable -> one .so file.

    build(g, "host") => (executable, metadata)
    export(executable, metadata, "m.so") => m.so = <ELF library><metadata trailer>

The artifact is a single file: the library TVM exports (kernels, VM bytecode, weights)
followed by the vcompile metadata trailer that `runtime.artifact` defines. The file is
written under a temporary name in the destination directory and renamed into place,
so a failed export never leaves a partial or stale file.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from vcompile import __version__
from vcompile.codegen import targets
from vcompile.codegen.relax import to_relax
from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph
from vcompile.runtime import artifact


class BuildError(VcompileError, RuntimeError):
    """TVM failed to compile or export a module."""


def io_names(g: Graph) -> tuple[list[str], list[str]]:
    """Unique input and output names from the values' hints (the source model's names)."""
    def uniq(vals: tuple, prefix: str) -> list[str]:
        seen: set[str] = set()
        out = []
        for i, v in enumerate(vals):
            nm = v.hint or f"{prefix}{i}"
            while nm in seen:
                nm = f"{nm}_{i}"
            seen.add(nm)
            out.append(nm)
        return out
    return uniq(g.inputs, "input"), uniq(g.outputs, "output")


def metadata(g: Graph, target_name: str, target: Any, opt_level: int | None,
             passes: tuple[str, ...]) -> dict[str, Any]:
    ins, outs = io_names(g)

    def desc(names: list[str], vals: tuple) -> list[dict[str, Any]]:
        return [{"name": n, "shape": list(v.shape), "dtype": v.dtype}
                for n, v in zip(names, vals, strict=True)]
    return {"format": artifact.FORMAT, "vcompile": __version__, "graph": g.name,
            "inputs": desc(ins, g.inputs), "outputs": desc(outs, g.outputs),
            "target": target_name, "tvm_target": str(target), "opt_level": opt_level,
            "passes": list(passes)}


def fusion_passes(target: Any) -> list[Any]:
    """Legalize to TIR and fuse (TVM's CPU list without FoldConstant: our passes fold
    constants already, and TVM's folding of an empty tensor writes a constant the
    runtime cannot read back)."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu
    keep = [p for p in cpu.legalize_passes(target) if p.info.name != "FoldConstant"]
    return cpu.library_dispatch_passes(target) + keep


def relax_pipeline(target: Any, schedule: Any | None, tuned: bool = False) -> Any:
    """TVM's CPU pipeline (legalize, FuseOps, FuseTIR, lower) with our schedules after
    fusion; `tuned` first applies the current MetaSchedule database's best records."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    @tvm.transform.module_pass(opt_level=0, name="vcompile.RelaxPipeline")
    def _pipeline(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        with target:
            seq = (fusion_passes(target)
                   + ([relax.transform.MetaScheduleApplyDatabase()] if tuned else [])
                   + ([schedule] if schedule is not None else [])
                   + cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))
            return tvm.transform.Sequential(seq)(mod)
    return _pipeline


def build(g: Graph, target_name: str = "host", *, opt_level: int | None = None,
          passes: tuple[str, ...] = (), mcpu: str | None = None,
          tuning_db: str | os.PathLike[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """Compile a verified, canonical graph; returns (VM executable, metadata).

    At -O1 and above (and when no level is given) a CPU target gets the packed kernels
    of `emit_tiled` and the rule-based schedules of `codegen.schedules`; -O0 builds
    TVM's plain, unscheduled TIR. With `tuning_db`, kernels that have records there
    use the best record (see `codegen.tune`), the rest the rules.
    """
    import tvm

    from vcompile.codegen.schedules import ScheduleCPU, cpu_tiles
    target = targets.resolve(target_name, mcpu=mcpu)
    tiles = cpu_tiles(target) if opt_level != 0 else None
    mod = to_relax(g, io_names(g)[0], tiles)
    pipeline = relax_pipeline(target, ScheduleCPU(tiles) if tiles is not None else None,
                              tuned=tuning_db is not None)
    try:
        if tuning_db is not None:
            from vcompile.codegen.tune import open_db
            with open_db(tuning_db):
                ex = tvm.compile(mod, target, relax_pipeline=pipeline)
        else:
            ex = tvm.compile(mod, target, relax_pipeline=pipeline)
    except Exception as e:  # TVM's errors are long C++ traces: keep the last line
        msg = str(e).strip().splitlines()
        raise BuildError(f"TVM failed to compile graph @{g.name} for {target_name}: "
                         f"{msg[-1] if msg else type(e).__name__}") from e
    return ex, metadata(g, target_name, target, opt_level, passes)


def export(ex: Any, meta: dict[str, Any], path: str | os.PathLike[str]) -> str:
    """Write the executable plus metadata to `path` atomically; returns the path."""
    path = os.fspath(path)
    dest = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(dest):
        raise BuildError(f"cannot write {path}: directory {dest} does not exist")
    if not os.access(dest, os.W_OK):
        raise BuildError(f"cannot write {path}: directory {dest} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=".vcompile-", suffix=".so", dir=dest)
    os.close(fd)
    try:
        with artifact.quiet_stderr():
            ex.export_library(tmp, fcompile=targets.fcompile(meta["target"]))
        artifact.append_metadata(tmp, meta)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, VcompileError | KeyboardInterrupt):
            raise
        if isinstance(e, Exception):
            raise BuildError(f"exporting {path} failed: {type(e).__name__}: {e}") from e
        raise
    return path
