"""Build and export: Graph -> Relax -> `tvm.compile` -> VM executable -> one .so file.

    build(g, "host") => (executable, metadata)
    export(executable, metadata, "m.so") => m.so = <ELF library><metadata trailer>

How a target compiles is its kind's `codegen.backends.Backend` (the CPU pipeline with
our schedules, or the GPU pipeline with dlight's); this module only emits, asks the
backend and records. The artifact is a single file: the library TVM exports (kernels,
VM bytecode, weights) followed by the vcompile metadata trailer that
`codegen.deploy.artifact` defines. The file is written under a temporary name in the
destination directory and renamed into place (`vcompile.files.atomic_path`), so a failed
export never leaves a partial or stale file.
"""
from __future__ import annotations

import os
from typing import Any

from vcompile.codegen import targets
from vcompile.codegen.deploy import artifact
from vcompile.codegen.emit.relax import to_relax
from vcompile.codegen.options import CodegenOptions, fusion_mode
from vcompile.errors import VcompileError
from vcompile.files import atomic_path
from vcompile.ir.graph import Graph, io_names
from vcompile.version import __version__


class BuildError(VcompileError, RuntimeError):
    """TVM failed to compile or export a module."""


def metadata(g: Graph, target_name: str, target: Any, opt_level: int | None,
             passes: tuple[str, ...]) -> dict[str, Any]:
    ins, outs = io_names(g)

    def desc(names: list[str], vals: tuple) -> list[dict[str, Any]]:
        return [{"name": n, "shape": list(v.shape), "dtype": v.dtype}
                for n, v in zip(names, vals, strict=True)]
    from vcompile.ir.kernels import kernel_table
    return {"format": artifact.FORMAT, "vcompile": __version__, "graph": g.name,
            "inputs": desc(ins, g.inputs), "outputs": desc(outs, g.outputs),
            "target": target_name, "tvm_target": str(target), "opt_level": opt_level,
            "passes": list(passes),
            # lets `vcompile profile` name a loaded library's kernels without its IR
            "kernel_table": kernel_table(g)}


def build(g: Graph, options: CodegenOptions | str = "host", *,
          passes: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """Compile a verified, canonical graph as `options` (the plan's codegen half, or just
    a target name) say; returns (VM executable, metadata).

    The target's backend (`targets.spec(name).backend`, one per TVM target kind) decides
    the rest: with `options.schedules` a CPU target gets the packed kernels of `emit.tiled`
    and the rule-based schedules of `codegen.cpu.schedules`; without, TVM's plain,
    unscheduled TIR. Kernels are fused as `fusion_mode` says; the metadata records the mode
    and the number of kernels `main` launches. With `options.tuning_db`, CPU kernels that
    have records there use the best record (see `codegen.tune`), the rest the rules.
    GPU targets (CUDA, OpenCL) get TVM's GPU pipeline with dlight's schedules (`codegen.gpu`).
    """
    opts = CodegenOptions(options) if isinstance(options, str) else options
    target_name = opts.target
    target = targets.resolve(target_name, **opts.target_options())
    backend = targets.spec(target_name).backend
    tiles = backend.emit_tiles(target, opts)
    fusion = fusion_mode(g, opts.fusion)
    mod = to_relax(g, io_names(g)[0], tiles, one_kernel_per_node=fusion == "vcompile")
    kernels: list[int] = []
    try:
        ex = backend.compile(mod, target, tiles=tiles, fusion=fusion, tuning_db=opts.tuning_db,
                             kernels=kernels)
    except Exception as e:  # TVM's errors are long C++ traces: keep the last line
        msg = str(e).strip().splitlines()
        raise BuildError(f"TVM failed to compile graph @{g.name} for {target_name}: "
                         f"{msg[-1] if msg else type(e).__name__}") from e
    meta = metadata(g, target_name, target, opts.opt_level, passes)
    meta.update(fusion=fusion, kernels=kernels[0] if kernels else None,
                target_options=opts.target_options(), device=backend.device)
    return ex, meta


def export(ex: Any, meta: dict[str, Any], path: str | os.PathLike[str]) -> str:
    """Write the executable plus metadata to `path` atomically; returns the path."""
    path = os.fspath(path)
    dest = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(dest):
        raise BuildError(f"cannot write {path}: directory {dest} does not exist")
    if not os.access(dest, os.W_OK):
        raise BuildError(f"cannot write {path}: directory {dest} is not writable")
    with atomic_path(path, mode=0o755, error=BuildError) as tmp:
        try:
            with artifact.quiet_stderr():
                ex.export_library(str(tmp), fcompile=targets.fcompile(
                    meta["target"], (meta.get("target_options") or {}).get("api_level")))
            artifact.append_metadata(str(tmp), meta)
        except VcompileError:
            raise
        except Exception as e:
            raise BuildError(f"exporting {path} failed: {type(e).__name__}: {e}") from e
    return path
