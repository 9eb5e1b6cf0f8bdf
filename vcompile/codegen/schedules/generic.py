"""Rules for every block no anchor rule took: injective maps and plain reductions.

    injective(block)  all loops fused -> [parallel outer] x [vectorized inner]
    reduction(block)  spatial loops before the first reduce loop fused -> parallel

These cover elementwise chains, layout changes (transpose, concat, pad, packing),
pooling, softmax, layer norm statistics and means. Small nests stay serial: starting
the thread pool costs more than they do.
"""
from __future__ import annotations

from typing import Any

from vcompile.codegen.schedules.common import Sch, extent, iter_kinds, try_
from vcompile.codegen.schedules.tiles import CpuTiles

# Below this many iterations a nest runs on one thread.
PARALLEL_MIN = 4096


def injective(sch: Sch, block: Any, tiles: CpuTiles) -> None:
    loops = sch.get_loops(block)
    if not loops:
        return
    exts = [extent(sch, lp) for lp in loops]
    if any(e <= 0 for e in exts):
        return  # symbolic or empty
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    total = 1
    for e in exts:
        total *= e
    vec = next((v for v in (tiles.lanes, tiles.lanes // 2, 4) if v >= 4 and total % v == 0
                and exts[-1] % v == 0), 1)
    outer = fused
    if vec > 1:
        outer, inner = sch.split(fused, [None, vec])
        try_(sch.vectorize, inner)
    if total >= PARALLEL_MIN:
        try_(sch.parallel, outer)


def reduction(sch: Sch, block: Any, tiles: CpuTiles) -> None:
    loops = sch.get_loops(block)
    kinds = iter_kinds(sch, block)
    if len(loops) != len(kinds) or "R" not in kinds:
        return  # loops and iter vars do not line up one to one: leave it
    first_r = kinds.index("R")
    if first_r == 0 or any(k != "R" for k in kinds[first_r:]):
        return
    outer = loops[:first_r]
    exts = [extent(sch, lp) for lp in loops]
    if any(e <= 0 for e in exts):
        return
    total = 1
    for e in exts:
        total *= e
    if total >= PARALLEL_MIN:
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        try_(sch.parallel, fused)


def schedule_rest(sch: Sch, blocks: list[Any], tiles: CpuTiles) -> None:
    for b in blocks:
        if "R" in iter_kinds(sch, b):
            try_(reduction, sch, b, tiles)
        else:
            try_(injective, sch, b, tiles)
