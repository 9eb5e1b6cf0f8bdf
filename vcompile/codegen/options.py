"""What codegen is told to do: the codegen half of a compile plan (`vcompile.planner`).

Codegen decides nothing from the opt level on its own: the plan sets each field, and
`build`, `tune` and the report read them. Importing this module imports no TVM.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FUSION_MODES = ("vcompile", "tvm", "none")


@dataclass(frozen=True, slots=True)
class CodegenOptions:
    target: str = "host"
    mcpu: str | None = None          # CPU targets: LLVM's -mcpu
    arch: str | None = None          # CUDA targets: sm_XX
    api_level: int | None = None     # Android targets
    # CPU targets: packed kernels (`emit.tiled`) and the rule-based schedules; off, TVM's
    # plain unscheduled TIR (-O0)
    schedules: bool = True
    # who makes kernels of the ops outside `fuse` groups: "tvm" (TVM's FuseOps) or "none"
    # (one kernel per op); `fuse`'s groups are always one kernel each ("vcompile" mode)
    fusion: str = "tvm"
    tuning_db: str | None = None     # apply this MetaSchedule database's records (CPU)
    tune_trials: int = 0             # tune the kernels missing from it first (0: none)
    opt_level: int | None = None     # recorded in the artifact; decides nothing here

    def __post_init__(self) -> None:
        if self.fusion not in ("tvm", "none"):
            raise ValueError(f"fusion must be 'tvm' or 'none', got {self.fusion!r}")

    def target_options(self) -> dict[str, Any]:
        return {"mcpu": self.mcpu, "arch": self.arch, "api_level": self.api_level}

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def fusion_mode(g: Any, fusion: str = "tvm") -> str:
    """Who decides the kernels of graph `g`: "vcompile" when the `fuse` pass made region
    nodes (one group, one kernel), else the plan's `fusion` ("tvm": TVM's FuseOps over
    the plain graph, what `--disable-pass fuse` compares against; "none": every op its
    own kernels)."""
    if any(n.region is not None for n in g.nodes):
        return "vcompile"
    return fusion
