"""Rule-based CPU schedules: every PrimFunc of a built model gets one, no tuning needed.

    ScheduleCPU(tiles)(mod) => mod with every unscheduled PrimFunc scheduled

Per function: the anchor rules of `anchors` (gemm, conv2d, depthwise_conv2d) tile their
contraction for registers and pull the fused epilogue into the tile; a function of row
statistics (layer norm, softmax) gets one parallel loop over its rows (`rows`); then the
rules of `generic` parallelize and vectorize every block still at the top level. The tile sizes
come from `tiles.cpu_tiles(target)`, so the same rules serve AVX-512, AVX2 and NEON.
A function whose schedule fails is left as it was (correct, only slow), and counted.
"""
from __future__ import annotations

import logging
from typing import Any

import tvm
from tvm import s_tir, tirx

from vcompile.codegen.cpu.schedules import anchors, generic, int8, rows
from vcompile.codegen.cpu.schedules.common import root_blocks
from vcompile.codegen.cpu.schedules.tiles import CpuTiles, cpu_tiles

__all__ = ["CpuTiles", "ScheduleCPU", "cpu_tiles", "schedule", "schedule_func"]
log = logging.getLogger(__name__)


def schedule(func: tirx.PrimFunc, tiles: CpuTiles) -> s_tir.Schedule:
    """The rule-based schedule of one PrimFunc (its trace replays as a tuning record)."""
    sch = s_tir.Schedule(func)
    for rule in (*anchors.RULES, int8.qgemm_rule, int8.qconv_rule):
        rule(sch, tiles)
    generic.inline_elementwise(sch, root_blocks(sch))
    rows.rows(sch, tiles)
    generic.schedule_rest(sch, root_blocks(sch), tiles)
    int8.tensorize(sch)
    return sch


def schedule_func(func: tirx.PrimFunc, tiles: CpuTiles) -> tirx.PrimFunc:
    return schedule(func, tiles).mod["main"].with_attr("tirx.is_scheduled", True)


def is_scheduled(func: Any) -> bool:
    return bool(func.attrs is not None and "tirx.is_scheduled" in func.attrs
                and int(func.attrs["tirx.is_scheduled"]) == 1)


@tvm.transform.module_pass(opt_level=0, name="vcompile.ScheduleCPU")
class ScheduleCPU:
    """Schedule every PrimFunc not already scheduled (by tuning records, for one)."""

    def __init__(self, tiles: CpuTiles) -> None:
        self.tiles = tiles
        self.failed: list[str] = []

    def transform_module(self, mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        updates = {}
        for gv, func in mod.functions_items():
            if not isinstance(func, tirx.PrimFunc) or is_scheduled(func):
                continue
            try:
                updates[gv] = schedule_func(func, self.tiles)
            except Exception as e:  # a rule met a shape it did not expect: keep it unscheduled
                self.failed.append(gv.name_hint)
                log.debug("schedule of %s failed: %s", gv.name_hint, e)
        for gv, func in updates.items():
            mod[gv] = func
        return mod
