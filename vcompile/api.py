"""The Python API: compile a model for a named target, load a compiled library.

    m = vcompile.compile("model.onnx", target="host", opt_level=2)
    y, = m(x)                  # numpy in, numpy out: the signature of ir.interp.run
    m.export("model.so")
    m2 = vcompile.load("model.so")

`model` is an .onnx path, an `onnx.ModelProto`, an `ir.Graph`, an `nn.Module` (with
`example_inputs`), 'timm:NAME' or 'pkg.module:factory'. Only the paths that need onnx
or torch import them; `load` imports neither.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph
from vcompile.passes.infra.spec import PassSpec
from vcompile.planner import CompileOptions, Plan, plan
from vcompile.runtime.module import CompiledModel
from vcompile.runtime.module import load as load

Progress = Callable[[str], None]


def to_graph(model: Any, input_shapes: Mapping[str, Sequence[int]] | None = None,
             example_inputs: Sequence[Any] | None = None) -> Graph:
    """The IR of `model`: a Graph as is; an .onnx or .vir path, ModelProto, nn.Module,
    'timm:NAME' or 'pkg.module:factory' through `vcompile.frontends.loader.load_model`."""
    from vcompile.frontends.loader import load_model
    return load_model(model, input_shapes, example_inputs)


def optimize(g: Graph, opt_level: int | str | None = 2,
             passes: str | Sequence[str] | None = None,
             attn_layout: str | None = None, *,
             options: CompileOptions | None = None) -> tuple[Graph, tuple[str, ...]]:
    """Run the plan's passes (the -O pipeline, or an explicit one); returns (graph, names of
    the passes run). `attn_layout` (bnc, bchw, ane) adds or removes attention-to-conv, as
    --attn-layout. `options` replaces the other arguments."""
    opts = options or CompileOptions(opt_level=opt_level, passes=passes, attn_layout=attn_layout)
    return run_passes(g, plan(opts))


def pass_names(opt_level: int | str | None = 2, passes: str | Sequence[str] | None = None,
               attn_layout: str | None = None) -> tuple[str, ...]:
    """The pass list `optimize` runs for these options."""
    p = plan(CompileOptions(opt_level=opt_level, passes=passes, attn_layout=attn_layout))
    return tuple(s.name for s in p.passes)


def optimize_int8(g: Graph, opt_level: int | str | None = 2,
                  passes: str | Sequence[str] | None = None, attn_layout: str | None = None, *,
                  calib: Any = None, calib_method: str = "minmax", percentile: float = 99.99,
                  progress: Progress | None = None) -> tuple[Graph, tuple[str, ...]]:
    """`optimize` for quantize="int8": the rewrites, calibration on `calib`, QDQ insertion,
    lower-integer, then fuse if the pass list fuses (vcompile.quant.run_int8)."""
    opts = CompileOptions(opt_level=opt_level, passes=passes, attn_layout=attn_layout,
                          quantize="int8", calib=calib, calib_method=calib_method,
                          percentile=percentile)
    return run_passes(g, plan(opts), progress=progress)


def run_passes(g: Graph, p: Plan, *, progress: Progress | None = None,
               run: Callable[[Graph, Sequence[PassSpec]], Graph] | None = None,
               ) -> tuple[Graph, tuple[str, ...]]:
    """The plan's passes on the verified graph `g` (int8: with calibration and lowering);
    returns (graph, names of the passes run). `run` runs one pipeline (default
    `passes.run`; the CLI's diagnostics pass their own)."""
    from vcompile import passes as P
    from vcompile.ir.verify import verify
    verify(g)
    run = run or P.run
    if p.quantized:
        from vcompile.quant import run_int8
        o = p.options
        return run_int8(g, p.passes, p.lowering, o.calib, o.calib_method, o.percentile,
                        progress=progress, run=run)
    return (run(g, p.passes) if p.passes else g), tuple(s.name for s in p.passes)


def tune_for(g: Graph, p: Plan, progress: Progress | None = None) -> Any:
    """Tune the kernels of the optimized graph `g` that the plan's database lacks (-O3 on
    a CPU target that runs here); returns the TuneReport, or None when the plan tunes
    nothing (the database, if any, is still opened: a bad path fails here)."""
    c = p.codegen
    if c.tuning_db is None:
        return None
    from vcompile.codegen import tune as T
    if c.tune_trials > 0:
        return T.tune(g, c.target, trials=c.tune_trials, db_dir=c.tuning_db, mcpu=c.mcpu,
                      progress=progress, fusion=c.fusion)
    T.open_db(c.tuning_db)
    return None


def build(g: Graph, p: Plan, ran: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """Codegen for the optimized graph as the plan says; the metadata records the plan."""
    from vcompile.codegen import build as B
    ex, meta = B.build(g, p.codegen, passes=tuple(ran))
    meta["plan"] = p.describe()
    return ex, meta


def compile(model: Any, target: str = "host", opt_level: int | str = 2,  # noqa: A001
            input_shapes: Mapping[str, Sequence[int]] | None = None, *,
            example_inputs: Sequence[Any] | None = None,
            passes: str | Sequence[str] | None = None, mcpu: str | None = None,
            progress: Progress | None = None, tune_trials: int | None = None,
            tuning_db: str | os.PathLike[str] | None = None, arch: str | None = None,
            api_level: int | None = None, attn_layout: str | None = None,
            quantize: str | None = None, calib: Any = None, calib_method: str = "minmax",
            percentile: float = 99.99, options: CompileOptions | None = None) -> CompiledModel:
    """Compile `model` for `target`; the result runs in this process and can `.export`.

    `model` is an .onnx path, an onnx.ModelProto, an ir.Graph, an nn.Module (with
    `example_inputs=(x,)`), 'timm:NAME' or 'pkg.module:factory' (with `input_shapes`).
    The keyword arguments are the fields of `vcompile.CompileOptions`; `options` gives
    them all at once instead. What runs is `vcompile.plan(options)` (see vcompile.planner).

    At -O1 and -O2 kernels get the rule-based CPU schedules. At -O3 the kernels missing
    from the tuning database (`tuning_db`, default `codegen.tune.default_db_dir()`) are
    tuned first with MetaSchedule (`tune_trials` candidates, default
    `codegen.tune.DEFAULT_TRIALS`; 0 tunes nothing), and every kernel with a record is
    built from its best record (CPU targets). `arch` is a CUDA target's `sm_XX`,
    `api_level` an Android target's API level. Tuning measures on this machine, so it runs only for
    targets that run here; other targets use the records already in the database.

    `quantize="int8"` compiles an integer-only model: post-training quantization calibrated
    on `calib` (an .npz path, a directory of .npy files, {input name: array}, a list of
    samples; None: synthetic inputs and a CalibrationWarning), ranges by `calib_method`
    (minmax or percentile, of |x| at `percentile`), then lower-integer (vcompile.quant)."""
    if options is None:
        options = CompileOptions(
            target=target, mcpu=mcpu, arch=arch, api_level=api_level, opt_level=opt_level,
            passes=passes, attn_layout=attn_layout, quantize=quantize, calib=calib,
            calib_method=calib_method, percentile=percentile, tune_trials=tune_trials,
            tuning_db=None if tuning_db is None else os.fspath(tuning_db),
            input_shapes=input_shapes)  # bad options fail here, before the model loads
    return compile_plan(model, plan(options), example_inputs=example_inputs, progress=progress)


def compile_plan(model: Any, p: Plan, *, example_inputs: Sequence[Any] | None = None,
                 progress: Progress | None = None) -> CompiledModel:
    """`compile` for a plan made already: import, passes, tuning, codegen."""
    from vcompile.runtime.tvm_import import import_tvm
    import_tvm()  # before codegen imports TVM: keeps torch out of the process
    from vcompile.codegen import targets
    say = progress or (lambda s: None)
    targets.require_toolchain(p.codegen.target)
    say("importing")
    g = to_graph(model, p.options.input_shapes, example_inputs)
    say("optimizing")
    g, ran = run_passes(g, p, progress=say)
    tune_for(g, p, say)
    say("generating code")
    ex, meta = build(g, p, ran)
    if not targets.spec(p.codegen.target).runs_here:
        return _Unrunnable(ex, meta, g)  # type: ignore[return-value]
    return CompiledModel(ex, meta, graph=g, executable=ex)


class _Unrunnable:
    """A model built for another machine: it can be exported, not run here."""

    def __init__(self, ex: Any, meta: dict[str, Any], graph: Graph) -> None:
        self._executable, self.meta, self.graph = ex, meta, graph

    @property
    def input_names(self) -> list[str]:
        return [d["name"] for d in self.meta["inputs"]]

    @property
    def input_types(self) -> list[Any]:
        from vcompile.ir.types import TensorType
        return [TensorType(d["dtype"], tuple(d["shape"])) for d in self.meta["inputs"]]

    def export(self, path: str | os.PathLike[str]) -> str:
        from vcompile.codegen.build import export
        return export(self._executable, self.meta, path)

    def __call__(self, *arrays: Any) -> list[Any]:
        raise VcompileError(f"a model built for target {self.meta['target']!r} cannot run on this "
                            "machine; export it and run it there")


__all__ = ["CompileOptions", "CompiledModel", "Plan", "compile", "compile_plan", "load", "optimize",
           "optimize_int8", "pass_names", "plan", "run_passes", "to_graph", "tune_for"]
