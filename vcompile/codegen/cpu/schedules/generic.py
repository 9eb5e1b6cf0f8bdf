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

from math import prod
from typing import Any

from tvm import tirx

from vcompile.codegen.cpu.schedules.common import (
    Sch,
    extent,
    iter_kinds,
    lane_rfactor,
    largest_divisor,
    out_shape,
    try_,
    vectorize_lanes,
)
from vcompile.codegen.cpu.schedules.tiles import CpuTiles
from vcompile.codegen.emit.kernels import KEEP

# Below this many iterations a nest runs on one thread.
PARALLEL_MIN = 4096
# Nests with fewer rows than this (a group norm with one group: one row of C*H*W) split
# their rows: a reduction sums each row in vector lanes instead of one scalar chain, an
# injective map runs the row's vectors in parallel.
LONG_ROWS_MAX = 16
LONG_ROW = 1024  # and rows at least this long sum in lanes however many rows there are


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
    if vec > 1 and total >= PARALLEL_MIN and _transpose_tile(sch, block, loops, exts, vec, tiles):
        return
    outer = loops[:-1]
    rows = total // exts[-1]
    if vec > 1:
        o, inner = sch.split(loops[-1], [None, vec])
        try_(sch.vectorize, inner)
        if not outer or rows < LONG_ROWS_MAX:  # few long rows: split the row too
            outer = [*outer, o]
    if total >= PARALLEL_MIN and outer:
        try_(sch.parallel, sch.fuse(*outer) if len(outer) > 1 else outer[0])


def _transposed_loop(sch: Sch, block: Any) -> int | None:
    """The loop whose variable alone indexes the innermost dim of the block's one input
    tensor, when that is not the block's innermost loop (a transpose): its position,
    else None. Loops and block iter vars must line up one to one. An index that divides
    the variable (a reshape folded in: n -> n // 56, n % 56) does not count: splitting
    such a loop puts a div/mod on every element (measured 4x slower)."""
    from tvm.sym.analyzer import Analyzer
    blk = sch.get(block)
    loops = sch.get_loops(block)
    ivs = [iv.var for iv in blk.iter_vars]
    reads = [r for r in blk.reads if len(r.region) >= 2]
    if len(ivs) != len(loops) or len(ivs) < 2 or len(reads) != 1:
        return None
    ana = Analyzer()
    for iv in blk.iter_vars:
        ana.bind(iv.var, iv.dom)
    inner = ana.simplify(reads[0].region[-1].min)
    used = [i for i, v in enumerate(ivs) if inner.same_as(v)]
    if len(used) != 1 or used[0] == len(ivs) - 1:
        return None
    return used[0]


def _transpose_tile(sch: Sch, block: Any, loops: list[Any], exts: list[int], vec: int,
                    tiles: CpuTiles) -> bool:
    """A transpose reads its input's rows with a stride: writing whole output rows one
    at a time touches a new cache line per element and reuses it only rows later. Tile
    it instead: (t0 = the loop that walks the input's rows, ..., w0, t1, w1): each
    `lanes`-wide block of t reads whole cache lines once and writes vectors along w.
    Measured: a [1,3136,256] -> [1,256,56,56] transpose, 968 -> see git log."""
    t = _transposed_loop(sch, block)
    tt = largest_divisor(exts[t], tiles.lanes) if t is not None else 1
    if tt < 4:
        return False
    t0, t1 = sch.split(loops[t], [None, tt])
    w0, w1 = sch.split(loops[-1], [None, vec])
    mids = loops[t + 1:-1]
    sch.reorder(*loops[:t], t0, *mids, w0, t1, w1)
    sch.vectorize(w1)
    sch.parallel(sch.fuse(*loops[:t], t0, *mids))
    return True


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
        rows = 1
        for e in exts[:first_r]:
            rows *= e
        if kinds.count("R") == 1 and (rows < LONG_ROWS_MAX or exts[-1] >= LONG_ROW):
            rf = try_(lane_rfactor, sch, block, tiles.lanes, 16)
            if rf is not None:  # long rows: 16 lanes of partials per row
                vectorize_lanes(sch, rf, tiles.lanes)
                spatial = sch.get_loops(rf)[:-2]
                if rows > 1 and spatial:
                    try_(sch.parallel, sch.fuse(*spatial) if len(spatial) > 1 else spatial[0])
                return
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
        if cons and all("R" not in iter_kinds(sch, c) for c in cons) \
                and not _costly_broadcast(sch, b, cons):
            try_(sch.compute_inline, b)


# Calls and divisions worth computing once per value rather than once per use.
_COSTLY = ("T.sqrt(", "T.rsqrt(", "T.exp(", "T.log(", "T.tanh(", "T.erf(", "T.pow(", " / ")


def _costly_broadcast(sch: Sch, block: Any, consumers: list[Any]) -> bool:
    """A block with a division or a transcendental call that a larger consumer reads
    by broadcast (a layer norm's per-row rsqrt(var + eps), its mean's divide by C):
    inlined, it would be recomputed for every element of the row."""
    try:
        size = prod(out_shape(sch, block))
        if all(prod(out_shape(sch, c)) <= size for c in consumers):
            return False
    except (TypeError, ValueError):  # a symbolic shape
        return False
    text = str(sch.get(block).body)
    return any(c in text for c in _COSTLY)



def _kept(sch: Sch, block: Any) -> bool:
    return KEEP in sch.get(block).annotations


def _has_select(block: Any) -> bool:
    text = str(block.body)  # TVMScript of the block body (the Python API has no TIR visitor)
    return "if_then_else(" in text or "Select(" in text


def placed(sch: Sch, block: Any) -> bool:
    """A block under a parallel, vector or unrolled loop was placed by an anchor rule (a
    reduction's init block after decompose_reduction shares the tile's loops). Fusing
    those loops again turned a depthwise conv's parallel loop into a serial one."""
    return any(int(sch.get(lp).kind) != int(tirx.ForKind.SERIAL) for lp in sch.get_loops(block))


def schedule_rest(sch: Sch, blocks: list[Any], tiles: CpuTiles) -> None:
    for b in blocks:
        if _kept(sch, b):
            continue
        if placed(sch, b):  # only its innermost loop may still want vectors
            inner = sch.get_loops(b)[-1]
            if "R" not in iter_kinds(sch, b) and 1 < extent(sch, inner) <= 4 * tiles.lanes \
                    and int(sch.get(inner).kind) == int(tirx.ForKind.SERIAL):
                try_(sch.vectorize, inner)
            continue
        if "R" in iter_kinds(sch, b):
            try_(reduction, sch, b, tiles)
        else:
            try_(injective, sch, b, tiles)
