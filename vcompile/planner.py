"""The compile plan: every user-facing option in one frozen `CompileOptions`, and the one
function that turns it into what runs.

    opts = CompileOptions(target="arm64", opt_level=3, attn_layout="bchw")
    p = plan(opts)
    p.passes        the pipeline, each pass with its options (`passes.infra.spec.PassSpec`)
    p.lowering      int8: the passes after calibration and QDQ insertion (else empty)
    p.codegen       `codegen.options.CodegenOptions`: schedules, fusion, tuning database
    print(p.format())

The Python API (`vcompile.compile`), every CLI subcommand (compile, inspect, bench, tune,
profile, report) and the report build a `CompileOptions` and run its `plan`; the artifact's
metadata (`meta["plan"]`) and the report print it. Nothing else decides the pass list or
how codegen treats the opt level: the -O tables are in `passes.infra.pipeline`, and `plan` is
where options change them (`--attn-layout`, `--disable-pass`, `--int8`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vcompile.codegen.options import CodegenOptions
from vcompile.errors import VcompileError
from vcompile.ir.types import Dim
from vcompile.passes.infra.pipeline import int8_split, pipeline, with_attn_layout
from vcompile.passes.infra.spec import PassSpec, PipelineError, format_pipeline, parse_pipeline


@dataclass(frozen=True)
class CompileOptions:
    """Every option a user can set, checked when made (a bad value fails in one line
    before any model is loaded). `passes` takes pipeline text or specs; given, it
    replaces the -O pipeline, and `opt_level` then only sets how codegen works."""
    target: str = "host"
    mcpu: str | None = None              # CPU targets (validated: `vcompile targets`)
    arch: str | None = None              # CUDA targets: sm_XX
    api_level: int | None = None         # Android targets
    opt_level: int | None = 2            # None: no pipeline (inspect without -O)
    passes: tuple[PassSpec, ...] | None = None
    disabled_passes: tuple[str, ...] = ()
    attn_layout: str | None = None       # bnc, bchw, ane: attention-to-conv out or in
    quantize: str | None = None          # None (float) or "int8"
    calib: Any = field(default=None, compare=False)  # int8 calibration data (see vcompile.quant)
    calib_method: str = "minmax"
    percentile: float = 99.99
    tune_trials: int | None = None       # -O3: candidates per model (None: the default)
    tuning_db: str | None = None         # -O3: the MetaSchedule database directory
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.passes is not None:
            given = self.passes
            object.__setattr__(self, "passes", parse_pipeline(given))
            if not self.passes and _is_text(given):
                # `-p ""` (or ",") would otherwise run nothing without a word; `passes=[]`
                # from the API still means "no passes" (a graph optimized already)
                raise PipelineError("--passes is empty; give pass names, or drop --passes "
                                    "for the -O pipeline")
        if isinstance(self.disabled_passes, str):
            object.__setattr__(self, "disabled_passes", (self.disabled_passes,))
        object.__setattr__(self, "disabled_passes",
                           tuple(s.name for s in parse_pipeline(list(self.disabled_passes))))
        if self.opt_level is not None:
            object.__setattr__(self, "opt_level", _level(self.opt_level))
        if self.tuning_db is not None:
            object.__setattr__(self, "tuning_db", str(self.tuning_db))
        self._check()

    def _check(self) -> None:
        from vcompile.codegen import targets
        if self.attn_layout is not None:
            from vcompile.passes.attention_to_conv import check_layout
            check_layout(self.attn_layout)
        if self.quantize is not None or self.calib is not None:
            from vcompile.quant import check_quantize
            from vcompile.quant.calibrate import check_method
            check_quantize(self.quantize)
            check_method(self.calib_method, self.percentile)
            if self.quantize is None:
                raise VcompileError("calib= is given without quantize='int8'; add quantize='int8'")
        targets.check_options(self.target, self.mcpu, self.arch, self.api_level)
        if self.quantize is not None and targets.spec(self.target).kind != "llvm":
            # NOTE: the integer kernels are written and checked for CPUs; on GPU targets TVM's
            # GPU pipeline exhausts memory on the isqrt/division kernels, and no GPU was at
            # hand to check the numerics of the ones that build.
            raise VcompileError(f"int8 is not available for the GPU target {self.target!r} yet "
                                "(integer kernels exist for CPU targets: host, x86_64, arm64, "
                                "android-arm64); drop --int8 for this target")
        if self.tune_trials is not None and self.tune_trials < 0:
            raise VcompileError(f"tune_trials must be 0 or more, got {self.tune_trials}")

    def replace(self, **changes: Any) -> CompileOptions:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Plan:
    options: CompileOptions
    passes: tuple[PassSpec, ...]
    lowering: tuple[PassSpec, ...]   # int8: after calibration and QDQ insertion
    codegen: CodegenOptions

    @property
    def quantized(self) -> bool:
        return self.options.quantize is not None

    def pipeline_text(self) -> str:
        """The pipeline as `-p` takes it (int8: the passes before calibration)."""
        return format_pipeline(self.passes)

    def describe(self) -> dict[str, Any]:
        """The plan as JSON-able data: the artifact's `meta["plan"]`, the report's table."""
        o = self.options
        quant = None if not self.quantized else {
            "mode": o.quantize,
            "calib": o.calib if isinstance(o.calib, str | None) else type(o.calib).__name__,
            "method": o.calib_method, "percentile": o.percentile,
            "lowering": format_pipeline(self.lowering)}
        return {"passes": self.pipeline_text(), "quantize": quant, "codegen": self.codegen.describe()}

    def format(self) -> str:
        """A few lines for people: what runs, in order."""
        d = self.describe()
        lines = [f"passes:   {d['passes'] or '(none)'}"]
        if d["quantize"]:
            q = d["quantize"]
            lines.append(f"quantize: {q['mode']}, {q['method']} ranges, "
                         f"calibration {q['calib'] or 'synthetic'}")
            lines.append(f"lowering: {q['lowering']}")
        c = self.codegen
        tuning = (f"database {c.tuning_db}, {c.tune_trials} trials" if c.tuning_db else "off")
        lines.append(f"codegen:  target {c.target}"
                     + "".join(f", {k} {v}" for k, v in c.target_options().items() if v is not None)
                     + f", schedules {'rule-based' if c.schedules else 'off'}, fusion "
                     + ("fuse groups" if any(s.name == "fuse" for s in self.passes + self.lowering)
                        else c.fusion) + f", tuning {tuning}")
        return "\n".join(lines)


def plan(options: CompileOptions) -> Plan:
    """What to run for `options`: the one place that composes the pass list and the
    codegen options."""
    from vcompile.codegen import targets
    level = options.opt_level
    if options.passes is not None:
        specs: list[PassSpec] = list(options.passes)
    else:
        specs = list(parse_pipeline(pipeline(level))) if level is not None else []
    specs = with_attn_layout(specs, options.attn_layout)
    off = set(options.disabled_passes)
    lowering: list[PassSpec] = []
    if options.quantize is not None:
        specs, lowering = int8_split(specs)
    specs = [s for s in specs if s.name not in off]
    lowering = [s for s in lowering if s.name not in off]
    spec = targets.spec(options.target)
    tuning_db, trials = None, 0
    if level == 3 and spec.kind == "llvm":
        from vcompile.codegen import tune
        tuning_db = str(options.tuning_db or tune.default_db_dir())
        # tuning measures on this machine: other targets use the records already there
        if spec.runs_here:
            trials = tune.DEFAULT_TRIALS if options.tune_trials is None else options.tune_trials
    codegen = CodegenOptions(options.target, options.mcpu, options.arch, options.api_level,
                             schedules=level != 0, fusion="none" if level in (0, 1) else "tvm",
                             tuning_db=tuning_db, tune_trials=trials, opt_level=level)
    return Plan(options, tuple(specs), tuple(lowering), codegen)


def _is_text(passes: Any) -> bool:
    """Pipeline text: a string, or a sequence holding some string."""
    return isinstance(passes, str) or (
        not isinstance(passes, PassSpec) and any(isinstance(p, str) for p in passes))


def _level(opt_level: int | str) -> int:
    key = str(opt_level).lstrip("-").lstrip("O")
    if not key.isdigit() or int(key) not in (0, 1, 2, 3):
        raise VcompileError(f"unknown optimization level {opt_level!r}; use -O0, -O1, -O2 or -O3")
    return int(key)


__all__ = ["CompileOptions", "Plan", "plan"]
