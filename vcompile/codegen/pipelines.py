"""TVM Relax pass lists: what runs between emission and code generation.

    fusion_passes(target, fusion)   legalize to TIR, fuse (FuseOps in "tvm" mode), lift
                                    constants out of fusion groups, FuseTIR
    relax_pipeline(target, schedule, tuned=..., fusion=..., kernels=...)
                                    the CPU pipeline: fusion, tuning records, our
                                    schedules, TVM's lowering and finalization
    count_kernels(mod)              the kernels `main` launches per call

The GPU pipeline (`codegen.gpu`) and tuning (`codegen.tune`) run the same fusion
passes; the backends (`codegen.backends`) choose a pipeline per target kind. This module
imports no other codegen module but `options`, and TVM only inside its functions.
"""
from __future__ import annotations

from typing import Any

from vcompile.codegen.options import FUSION_MODES


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
