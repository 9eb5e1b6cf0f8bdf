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

from vcompile.codegen import targets
from vcompile.codegen.options import FUSION_MODES, CodegenOptions, fusion_mode
from vcompile.codegen.relax import to_relax
from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph, io_names
from vcompile.runtime import artifact
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


def fusion_passes(target: Any, fusion: str = "tvm") -> list[Any]:
    """Legalize to TIR and fuse (TVM's CPU list without FoldConstant: our passes fold
    constants already, and TVM's folding of an empty tensor writes a constant the
    runtime cannot read back). FuseOps runs only in the "tvm" mode; FuseTIR always
    runs, turning each `Primitive` function (our fusion groups) into one PrimFunc."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu
    if fusion not in FUSION_MODES:
        raise ValueError(f"fusion must be one of {FUSION_MODES}, got {fusion!r}")
    skip = {"FoldConstant"} | ({"FuseOps"} if fusion != "tvm" else set())
    keep = [p for p in cpu.legalize_passes(target) if p.info.name not in skip]
    i = next(k for k, p in enumerate(keep) if p.info.name == "FuseTIR")
    return cpu.library_dispatch_passes(target) + keep[:i] + [lift_constants()] + keep[i:]


def lift_constants() -> Any:
    """A pass: tensor constants inside `Primitive` functions become parameters, passed
    by the caller (FuseTIR accepts no constants there; FuseOps never puts them there,
    our fusion groups do, so that emission sees and packs the weights)."""
    import tvm
    from tvm import relax

    @relax.expr_functor.mutator
    class _Collect(relax.PyExprMutator):
        def __init__(self) -> None:
            super().__init__()
            self.lifted: list[tuple[Any, Any]] = []

        def visit_generic_const_(self, op: Any) -> Any:
            v = relax.Var(f"w{len(self.lifted)}", op.ty)
            self.lifted.append((v, op))
            return v

    @relax.expr_functor.mutator
    class _Callers(relax.PyExprMutator):
        def __init__(self, extra: dict[Any, list[Any]]) -> None:
            super().__init__()
            self.extra = extra

        def visit_call_(self, op: Any) -> Any:
            call = super().visit_call_(op)
            if isinstance(call.op, tvm.ir.GlobalVar) and call.op in self.extra:
                gv, consts = self.extra[call.op]
                return relax.Call(gv, list(call.args) + consts, call.attrs)
            return call

    @tvm.transform.module_pass(opt_level=0, name="vcompile.LiftConstants")
    def _lift(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        extra: dict[Any, tuple[Any, list[Any]]] = {}
        for gv, fn in list(mod.functions_items()):
            if not isinstance(fn, relax.Function) or fn.attrs is None or "Primitive" not in fn.attrs:
                continue
            col = _Collect()
            body = col.visit_expr(fn.body)
            if not col.lifted:
                continue
            params = list(fn.params) + [v for v, _ in col.lifted]
            # a new GlobalVar: the old one's type still says the old parameter list
            new_fn = relax.BlockBuilder().normalize(
                relax.Function(params, body, fn.ret_ty, fn.is_pure, fn.attrs))
            new_gv = tvm.ir.GlobalVar(gv.name_hint + "_w")
            relax.expr._update_type(new_gv, new_fn.ty)
            del mod[gv]
            mod[new_gv] = new_fn
            extra[gv] = (new_gv, [c for _, c in col.lifted])
        if not extra:
            return mod
        for gv, fn in list(mod.functions_items()):
            if isinstance(fn, relax.Function) and "Primitive" not in (fn.attrs or {}):
                mod[gv] = _Callers(extra).visit_expr(fn)
        return mod
    return _lift


def count_kernels(mod: Any) -> int:
    """Kernels `main` launches per call: its call_tir bindings once reshapes are views."""
    from tvm import relax
    n = 0

    def visit(e: Any) -> None:
        nonlocal n
        if isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.call_tir":
            n += 1
    relax.analysis.post_order_visit(mod["main"], visit)
    return n


def relax_pipeline(target: Any, schedule: Any | None, tuned: bool = False, fusion: str = "tvm",
                   kernels: list[int] | None = None) -> Any:
    """TVM's CPU pipeline (legalize, fuse, FuseTIR, lower) with our schedules after
    fusion; `tuned` first applies the current MetaSchedule database's best records.
    `kernels`, when given, receives the number of kernels `main` launches."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    @tvm.transform.module_pass(opt_level=0, name="vcompile.CountKernels")
    def _count(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        if kernels is not None:
            kernels.append(count_kernels(mod))
        return mod

    @tvm.transform.module_pass(opt_level=0, name="vcompile.RelaxPipeline")
    def _pipeline(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        with target:
            lower = cpu.dataflow_lower_passes(target)
            seq = (fusion_passes(target, fusion)
                   + ([relax.transform.MetaScheduleApplyDatabase()] if tuned else [])
                   + ([schedule] if schedule is not None else [])
                   + lower[:1] + [_count] + lower[1:] + cpu.finalize_passes(target))
            return tvm.transform.Sequential(seq)(mod)
    return _pipeline


def build(g: Graph, options: CodegenOptions | str = "host", *,
          passes: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """Compile a verified, canonical graph as `options` (the plan's codegen half, or just
    a target name) say; returns (VM executable, metadata).

    With `options.schedules` a CPU target gets the packed kernels of `emit_tiled` and the
    rule-based schedules of `codegen.schedules`; without, TVM's plain, unscheduled TIR.
    Kernels are fused as `fusion_mode` says; the metadata records the mode and the number
    of kernels `main` launches. With `options.tuning_db`, kernels that have records there
    use the best record (see `codegen.tune`), the rest the rules. GPU targets (CUDA,
    OpenCL) get TVM's GPU pipeline with dlight's schedules (`codegen.gpu`).
    """
    import tvm

    from vcompile.codegen import gpu
    from vcompile.codegen.schedules import ScheduleCPU, cpu_tiles
    opts = CodegenOptions(options) if isinstance(options, str) else options
    target_name = opts.target
    target = targets.resolve(target_name, **opts.target_options())
    on_cpu = target.kind.name == "llvm"
    tiles = cpu_tiles(target) if opts.schedules and on_cpu else None
    fusion = fusion_mode(g, opts.fusion)
    tuning_db = opts.tuning_db if on_cpu else None
    mod = to_relax(g, io_names(g)[0], tiles, one_kernel_per_node=fusion == "vcompile")
    kernels: list[int] = []
    pipeline = relax_pipeline(target, ScheduleCPU(tiles) if tiles is not None else None,
                              tuned=tuning_db is not None, fusion=fusion, kernels=kernels)
    try:
        if not on_cpu:
            ex = gpu.compile_gpu(mod, target, gpu.gpu_pipeline(target, fusion, kernels))
        elif tuning_db is not None:
            from vcompile.codegen.tune import open_db
            with open_db(tuning_db):
                ex = tvm.compile(mod, target, relax_pipeline=pipeline)
        else:
            ex = tvm.compile(mod, target, relax_pipeline=pipeline)
    except Exception as e:  # TVM's errors are long C++ traces: keep the last line
        msg = str(e).strip().splitlines()
        raise BuildError(f"TVM failed to compile graph @{g.name} for {target_name}: "
                         f"{msg[-1] if msg else type(e).__name__}") from e
    meta = metadata(g, target_name, target, opts.opt_level, passes)
    meta.update(fusion=fusion, kernels=kernels[0] if kernels else None,
                target_options=opts.target_options(),
                device=target.kind.name if not on_cpu else "cpu")
    return ex, meta


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
            ex.export_library(tmp, fcompile=targets.fcompile(
                meta["target"], (meta.get("target_options") or {}).get("api_level")))
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
