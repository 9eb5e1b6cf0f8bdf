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
from vcompile.runtime.module import CompiledModel
from vcompile.runtime.module import load as load

Progress = Callable[[str], None]


def to_graph(model: Any, input_shapes: Mapping[str, Sequence[int]] | None = None,
             example_inputs: Sequence[Any] | None = None) -> Graph:
    """The IR of `model`: a Graph as is; an .onnx path, ModelProto, nn.Module, 'timm:NAME'
    or 'pkg.module:factory' through `vcompile.frontends.loader.load_model`."""
    if isinstance(model, str | os.PathLike):
        path = os.fspath(model)
        if path.endswith(".onnx") and not os.path.exists(path):
            raise VcompileError(f"model file {path} does not exist")
    from vcompile.frontends.loader import load_model
    return load_model(model, input_shapes, example_inputs)


def optimize(g: Graph, opt_level: int | str | None = 2,
             passes: str | Sequence[str] | None = None,
             attn_layout: str | None = None) -> tuple[Graph, tuple[str, ...]]:
    """Run the -O pipeline (or an explicit pass list); returns (graph, passes run).
    `attn_layout` (bnc, bchw, ane) adds or removes attention-to-conv, as --attn-layout."""
    from vcompile import passes as P
    from vcompile.ir.verify import verify
    from vcompile.passes.attention_to_conv import attn_layout as layout_ctx
    verify(g)
    names = pass_names(opt_level, passes, attn_layout)
    with layout_ctx(attn_layout or "bchw"):
        return (P.run(g, names) if names else g), names


def pass_names(opt_level: int | str | None = 2, passes: str | Sequence[str] | None = None,
               attn_layout: str | None = None) -> tuple[str, ...]:
    """The pass list `optimize` runs for these options."""
    from vcompile import passes as P
    from vcompile.passes.pipeline import with_attn_layout
    names = (tuple(passes.split(",")) if isinstance(passes, str) else tuple(passes)) \
        if passes is not None else P.pipeline(opt_level if opt_level is not None else 2)
    return tuple(with_attn_layout(names, attn_layout))


def optimize_int8(g: Graph, opt_level: int | str | None = 2,
                  passes: str | Sequence[str] | None = None, attn_layout: str | None = None, *,
                  calib: Any = None, calib_method: str = "minmax", percentile: float = 99.99,
                  progress: Progress | None = None) -> tuple[Graph, tuple[str, ...]]:
    """`optimize` for quantize="int8": the rewrites, calibration on `calib`, QDQ insertion,
    lower-integer, then fuse if the pass list fuses (vcompile.quant.int8_flow)."""
    from vcompile.ir.verify import verify
    from vcompile.passes.attention_to_conv import attn_layout as layout_ctx
    from vcompile.quant import int8_flow
    verify(g)
    names = pass_names(opt_level, passes, attn_layout)
    with layout_ctx(attn_layout or "bchw"):
        return int8_flow(g, names, calib, calib_method, percentile, progress=progress)


def compile(model: Any, target: str = "host", opt_level: int | str = 2,  # noqa: A001
            input_shapes: Mapping[str, Sequence[int]] | None = None, *,
            example_inputs: Sequence[Any] | None = None,
            passes: str | Sequence[str] | None = None, mcpu: str | None = None,
            progress: Progress | None = None, tune_trials: int | None = None,
            tuning_db: str | os.PathLike[str] | None = None, arch: str | None = None,
            api_level: int | None = None, attn_layout: str | None = None,
            quantize: str | None = None, calib: Any = None, calib_method: str = "minmax",
            percentile: float = 99.99) -> CompiledModel:
    """Compile `model` for `target`; the result runs in this process and can `.export`.

    `model` is an .onnx path, an onnx.ModelProto, an ir.Graph, an nn.Module (with
    `example_inputs=(x,)`), 'timm:NAME' or 'pkg.module:factory' (with `input_shapes`).

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
    if attn_layout is not None:
        from vcompile.passes.attention_to_conv import check_layout
        check_layout(attn_layout)  # a bad value fails before the model loads
    if quantize is not None or calib is not None:
        from vcompile.quant import check_quantize
        from vcompile.quant.calibrate import check_method
        check_quantize(quantize)  # bad options fail before the model loads, too
        check_method(calib_method, percentile)
        if quantize is None:
            raise VcompileError("calib= is given without quantize='int8'; add quantize='int8'")
    from vcompile.runtime.tvm_import import import_tvm
    import_tvm()  # before codegen imports TVM: keeps torch out of the process
    from vcompile.codegen import build as B
    from vcompile.codegen import targets
    say = progress or (lambda s: None)
    targets.check_options(target, mcpu, arch, api_level)  # bad names fail before any work
    if quantize is not None and targets.spec(target).kind != "llvm":
        # NOTE: the integer kernels are written and checked for CPUs; on GPU targets TVM's
        # GPU pipeline exhausts memory on the isqrt/division kernels, and no GPU was at hand
        # to check the numerics of the ones that build.
        raise VcompileError(f"int8 is not available for the GPU target {target!r} yet (integer "
                            "kernels exist for CPU targets: host, x86_64, arm64, android-arm64); "
                            "drop --int8 for this target")
    targets.require_toolchain(target)
    if attn_layout is None and passes is None and _level(opt_level) == 3:
        from vcompile.passes.pipeline import o3_attn_layout
        attn_layout = o3_attn_layout(targets.spec(target).name, _model_name(model))
    if tune_trials is not None and tune_trials < 0:
        raise VcompileError(f"tune_trials must be 0 or more, got {tune_trials}")
    say("importing")
    g = to_graph(model, input_shapes, example_inputs)
    say("optimizing")
    if quantize is None:
        g, ran = optimize(g, opt_level, passes, attn_layout)
    else:
        g, ran = optimize_int8(g, opt_level, passes, attn_layout, calib=calib,
                               calib_method=calib_method, percentile=percentile, progress=say)
    level = _level(opt_level)
    db = None
    if level == 3 and targets.spec(target).kind == "llvm":
        from vcompile.codegen import tune as T
        db = tuning_db or T.default_db_dir()
        if targets.spec(target).runs_here and (tune_trials is None or tune_trials > 0):
            T.tune(g, target, trials=T.DEFAULT_TRIALS if tune_trials is None else tune_trials,
                   db_dir=db, mcpu=mcpu, progress=say)
    say("generating code")
    ex, meta = B.build(g, target, opt_level=level, passes=ran, mcpu=mcpu, tuning_db=db,
                       arch=arch, api_level=api_level)
    if not targets.spec(target).runs_here:
        return _Unrunnable(ex, meta, g)  # type: ignore[return-value]
    return CompiledModel(ex, meta, graph=g, executable=ex)


def _model_name(model: Any) -> str:
    """'deit_tiny_patch16_224' for timm:deit_tiny_patch16_224 or .../deit_tiny_patch16_224.legacy.s0.onnx."""
    if isinstance(model, str | os.PathLike):
        return os.path.basename(os.fspath(model)).removeprefix("timm:").split(".")[0]
    return getattr(model, "name", "") if isinstance(model, Graph) else ""


def _level(opt_level: int | str) -> int | None:
    key = str(opt_level).lstrip("-").lstrip("O")
    return int(key) if key.isdigit() else None


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


__all__ = ["CompiledModel", "compile", "load", "optimize", "optimize_int8", "pass_names", "to_graph"]
