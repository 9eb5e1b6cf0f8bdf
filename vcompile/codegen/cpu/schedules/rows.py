"""Row-wise kernels (layer norm, softmax, RMS norm): one parallel loop over the rows.

    rows(sch, tiles) => True when it scheduled the function

A function qualifies when its one output is [rows..., C], every reduction in it reduces
the trailing axes of those same rows, and there are at least `MIN_ROWS` rows. Then:

    for row in parallel(rows):             # one fork of the thread pool, not one per block
        statistics of the row              # each reduction: `lanes` partial sums, then one
                                           #   horizontal step (not one scalar chain of C)
        per-row values (rsqrt(var + eps))  # once per row, not once per element
        out[row, :] vectorized

Each row's statistics are read back while the row is still in L1. Generic rules gave one
parallel loop per block, each reduction a scalar chain (deit's [197,192] layer norm:
20 us, of which 2 x 192 dependent adds per row are most).

Functions with few, long rows (a group norm with one group) keep the generic schedule,
which splits the row itself across threads.
"""
from __future__ import annotations

from math import prod
from typing import Any

from vcompile.codegen.cpu.schedules import generic
from vcompile.codegen.cpu.schedules.common import (
    Sch,
    ScheduleError,
    extent,
    iter_kinds,
    lane_rfactor,
    out_shape,
    root_blocks,
    try_,
    vectorize_lanes,
)
from vcompile.codegen.cpu.schedules.tiles import CpuTiles

MIN_ROWS = 16  # fewer rows than this: the generic rules split the rows themselves
MAX_ROW = 8192  # a longer row's statistics do not stay in L1 between the passes


def _row_reduction(sch: Sch, block: Any, rows: tuple[int, ...]) -> bool:
    """A reduction over trailing axes whose spatial part is `rows` (keepdims or not)."""
    kinds = iter_kinds(sch, block)
    if "R" not in kinds or len(sch.get_loops(block)) != len(kinds):
        return False
    first = kinds.index("R")
    if any(k != "R" for k in kinds[first:]):
        return False
    shape = out_shape(sch, block)
    lead = shape[:len(rows)]
    return lead == rows and all(d == 1 for d in shape[len(rows):])


def rows(sch: Sch, tiles: CpuTiles) -> bool:
    root = sch.get_sblock("root")
    outs = sch.get_output_blocks(root)
    blocks = root_blocks(sch)
    if len(outs) != 1 or len(blocks) < 2 or any(generic.placed(sch, b) for b in blocks):
        return False  # an anchor rule took this function
    out = outs[0]
    if "R" in iter_kinds(sch, out):
        return False
    shape = out_shape(sch, out)
    loops = sch.get_loops(out)
    if len(shape) < 2 or len(loops) != len(shape) or any(extent(sch, lp) != d
                                                         for lp, d in zip(loops, shape, strict=True)):
        return False
    lead, width = shape[:-1], shape[-1]
    n_rows = prod(lead)
    reds = [b for b in blocks if "R" in iter_kinds(sch, b)]
    if n_rows < MIN_ROWS or width > MAX_ROW or not reds:
        return False
    if not all(_row_reduction(sch, b, lead) for b in reds):
        return False
    for b in blocks:  # a reduction reads its elementwise input, (x - mean)^2, as it sums
        cons = sch.get_consumers(b)
        if "R" not in iter_kinds(sch, b) and cons and all("R" in iter_kinds(sch, c) for c in cons):
            try_(sch.compute_inline, b)
    # short rows sum in half-width partials: fewer lanes to add up at the end (swin's
    # [3136,96] layer norm: 60 -> 49 us with 8 lanes; deit's 192 wide rows keep 16)
    lanes = tiles.lanes if width >= 8 * tiles.lanes or tiles.lanes <= 4 else tiles.lanes // 2
    rfs = [try_(lane_rfactor, sch, b, lanes, 2) for b in reds]
    row = sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0]
    sch.parallel(row)
    _vectorize_row(sch, out, tiles.lanes)
    # producers last-first: each one's consumers are under `row` by the time it moves
    for b in reversed(root_blocks(sch)):
        if sch.get(b).same_as(sch.get(out)):
            continue
        try:
            sch.compute_at(b, row, True)
        except ScheduleError:
            continue  # it stays at the top level, before the loop: still correct
        if "R" not in iter_kinds(sch, b) and not any(sch.get(b).same_as(sch.get(rf))
                                                     for rf in rfs if rf is not None):
            _vectorize_row(sch, b, tiles.lanes)
    for rf in rfs:
        if rf is not None:
            vectorize_lanes(sch, rf, lanes)
    return True


def _vectorize_row(sch: Sch, block: Any, lanes: int) -> None:
    inner = sch.get_loops(block)[-1]
    n = extent(sch, inner)
    if n <= 1:
        return
    if n % lanes == 0 and n > lanes:
        _, inner = sch.split(inner, [None, lanes])
    if n % lanes == 0 or n < lanes:
        try_(sch.vectorize, inner)
