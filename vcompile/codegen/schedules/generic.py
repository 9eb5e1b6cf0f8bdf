"""Rules for every block no anchor rule took: injective maps and plain reductions.

    injective(block)  outer loops fused -> parallel; innermost loop -> vectorized
    reduction(block)  spatial loops before the last one fused -> parallel

The innermost loop is kept whole so that its index needs no division (fusing it in
made a 64x114x114 pad 3x slower: one int64 div/mod per element).

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
    total = 1
    for e in exts:
        total *= e
    vec = next((v for v in (tiles.lanes, tiles.lanes // 2, 4) if v >= 4 and exts[-1] % v == 0), 1)
    outer = loops[:-1]
    if vec > 1:
        o, inner = sch.split(loops[-1], [None, vec])
        try_(sch.vectorize, inner)
        if not outer:
            outer = [o]
    if total >= PARALLEL_MIN and outer:
        try_(sch.parallel, sch.fuse(*outer) if len(outer) > 1 else outer[0])


def reduction(sch: Sch, block: Any, tiles: CpuTiles) -> None:
    loops = sch.get_loops(block)
    kinds = iter_kinds(sch, block)
    if len(loops) != len(kinds) or "R" not in kinds:
        return  # loops and iter vars do not line up one to one: leave it
    first_r = kinds.index("R")
    if first_r == 0 or any(k != "R" for k in kinds[first_r:]):
        return
    outer = loops[:first_r - 1] if first_r > 1 else loops[:first_r]
    exts = [extent(sch, lp) for lp in loops]
    if any(e <= 0 for e in exts):
        return
    total = 1
    for e in exts:
        total *= e
    if total >= PARALLEL_MIN:
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        try_(sch.parallel, fused)


def inline_elementwise(sch: Sch, blocks: list[Any]) -> None:
    """Inline every top-level injective block whose consumers are all injective: a fused
    chain (reshape, divide, erf, add, multiply) becomes one loop nest, with no
    intermediate buffers. Producers of a reduction (a conv's padding, a matmul's packing)
    stay, so the contraction's inner loop has no conditionals.

    NOTE: blocks that choose between inputs (concat, pad, where: an if_then_else or a
    select) are not inlined. Inlining a concat into the reshape after it gave wrong
    results in TVM 0.27 (ONNX RotaryEmbedding, expanded form); the compiled ONNX
    conformance tests and the model suite guard the rest. An anchor rule marks the blocks
    it has placed with the annotation `KEEP` (a register tile's write-back whose consumer
    runs at another loop level: inlined, the whole accumulator array would be read there
    and could not live in registers)."""
    outputs = {sch.get(b).name_hint for b in sch.get_output_blocks(sch.get_sblock("root"))}
    for b in blocks:
        if "R" in iter_kinds(sch, b) or sch.get(b).name_hint in outputs:
            continue
        if _kept(sch, b):
            continue
        if _has_select(sch.get(b)):
            continue  # see the NOTE above
        cons = sch.get_consumers(b)
        if cons and all("R" not in iter_kinds(sch, c) for c in cons):
            try_(sch.compute_inline, b)


KEEP = "vcompile.keep"


def _kept(sch: Sch, block: Any) -> bool:
    return KEEP in sch.get(block).annotations


def _has_select(block: Any) -> bool:
    text = str(block.body)  # TVMScript of the block body (the Python API has no TIR visitor)
    return "if_then_else(" in text or "Select(" in text


def schedule_rest(sch: Sch, blocks: list[Any], tiles: CpuTiles) -> None:
    for b in blocks:
        if _kept(sch, b):
            continue
        if "R" in iter_kinds(sch, b):
            try_(reduction, sch, b, tiles)
        else:
            try_(injective, sch, b, tiles)
