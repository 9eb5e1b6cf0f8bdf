"""Everything the HTML report shows, gathered stage by stage; a failing stage ends the
run but keeps what the stages before it found.

    collect(Options("timm:resnet18", CompileOptions(opt_level=3)))
      => Report(stages=[Stage("import", "ok", 2.1), ..., Stage("build", "failed", ...)],
                summary, passes, svg_before, svg_after, kernels, build, profile, bench, error)

Stages, in order: import (the frontend), passes (the plan's passes through the pass
manager, with per-pass node counts; int8 with calibration and lowering), fusion (the
kernel table and the drawings), build (tuning at -O3, then TVM), profile (per-kernel
times), benchmark (vcompile against onnxruntime and PyTorch, interleaved). Any
exception in a stage is recorded as that stage's error; the later stages are "not
reached".
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vcompile.errors import VcompileError
from vcompile.planner import CompileOptions

STAGES = ("import", "passes", "fusion", "build", "profile", "benchmark")
Say = Callable[..., None]  # say(step) or say(step, done, total): see cli.progress


@dataclass
class Options:
    model: str
    compile: CompileOptions = field(default_factory=CompileOptions)  # what the plan is made of
    threads: int = 1
    rounds: int = 20
    pytorch: str | None = None     # timm:NAME or pkg.module:factory, timed beside
    command: str = ""


@dataclass
class Stage:
    name: str
    status: str = "not reached"    # ok, failed, skipped, not reached
    seconds: float = 0.0
    note: str = ""


@dataclass
class Report:
    options: Options
    stages: list[Stage] = field(default_factory=lambda: [Stage(s) for s in STAGES])
    summary: dict[str, Any] = field(default_factory=dict)
    plan: str = ""                                            # Plan.format()
    passes: list[Any] = field(default_factory=list)          # PassStat
    svg_before: str = ""
    svg_after: str = ""
    draw_note: str = ""
    kernels: list[dict[str, Any]] = field(default_factory=list)
    build: dict[str, Any] = field(default_factory=dict)
    profile: Any = None                                       # report.profile.Profile
    bench: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    failed_stage: str = ""

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def collect(opts: Options, say: Say | None = None) -> Report:
    """Run every stage (see the module docstring); never raises for a model's failure."""
    from vcompile.report import stages
    rep = Report(opts)
    tell = say or (lambda *_a: None)
    state: dict[str, Any] = {"say": tell}
    for name in STAGES:
        st = rep.stage(name)
        tell(name)
        t0 = time.perf_counter()
        try:
            note = getattr(stages, f"stage_{name}")(opts, rep, state)
        except Exception as e:  # noqa: BLE001  (the report shows any failure)
            st.status, st.seconds = "failed", time.perf_counter() - t0
            rep.failed_stage = name
            rep.error = one_line(e)
            break
        st.seconds = time.perf_counter() - t0
        st.status, st.note = ("skipped", note[1]) if isinstance(note, tuple) else ("ok", note or "")
    return rep


def one_line(e: BaseException) -> str:
    """A VcompileError's message; for anything else its type and last line."""
    lines = str(e).strip().splitlines()
    text = lines[-1] if lines and not isinstance(e, VcompileError) else " ".join(lines)
    return text if isinstance(e, VcompileError) else f"{type(e).__name__}: {text}"
