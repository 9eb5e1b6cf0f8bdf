"""Rules for the contraction kernels of `codegen.emit.kernels`: gemm, conv2d, depthwise_conv2d,
attention.

Each rule claims the blocks of one name, tiles them for registers and moves the block's
elementwise consumers (bias, activation, residual add fused by FuseOps) into the tile.
"""
from __future__ import annotations

from typing import Any

from vcompile.codegen.cpu.schedules import generic
from vcompile.codegen.cpu.schedules.common import (
    Sch,
    ScheduleError,
    block_named,
    extent,
    finish_reduction,
    fuse_epilogue,
    lane_rfactor,
    largest_divisor,
    register_tile,
    try_,
    vectorize_lanes,
)
from vcompile.codegen.cpu.schedules.tiles import CpuTiles
from vcompile.codegen.emit import kernels


def _packed_block(sch: Sch, block: Any, rank: int) -> int:
    """The innermost dim of the block's packed operand (the one read buffer of `rank` dims)."""
    bufs = [r.source for r in sch.get(block).reads if len(r.source.shape) == rank]
    if len(bufs) != 1:
        raise ValueError(f"expected one {rank}-d packed operand, found {len(bufs)}")
    return int(bufs[0].shape[-1])


def gemm(sch: Sch, tiles: CpuTiles) -> bool:
    """Claims "gemm" blocks: C[b, i, j] += A[b, i, k] * Bp[b, j/nb, k, j%nb].

    Register tile: rows of A (broadcast) x one nb-wide column block of packed B (vector
    loads), reduction over all of K inside; parallel over (batch, column block, row tile).
    """
    found = block_named(sch, kernels.GEMM_BLOCK)
    for blk in found:
        b, i, j, k = sch.get_loops(blk)
        nb = _packed_block(sch, blk, 4)
        mt = largest_divisor(extent(sch, i), tiles.rows)
        tile, _ = register_tile(sch, blk, [b], i, mt, j, nb, [k], None, parallel=None)
        fuse_epilogue(sch, blk, tile, 4 * tiles.block)
        finish_reduction(sch, blk, k)
    return bool(found)


def conv2d(sch: Sch, tiles: CpuTiles) -> bool:
    """Claims "conv2d" blocks: y[n, o, h, w] += x[n, c, h*s+rh, w*s+rw] * Wp[o/ob, c, rh, rw, o%ob].

    Register tile: `rows` output columns (input values broadcast) x one ob-wide block of
    output channels (packed weight vectors); reduction over (c, rh, rw) inside; parallel
    over (n, output row, channel block). Accumulators are laid out channel-innermost.
    """
    found = block_named(sch, kernels.CONV_BLOCK)
    for blk in found:
        n, o, h, w, rc, rh, rw = sch.get_loops(blk)
        ob = _packed_block(sch, blk, 5)
        wt = largest_divisor(extent(sch, w), tiles.rows)
        tile, _ = register_tile(sch, blk, [n, h], w, wt, o, ob, [rc, rh, rw],
                                lambda a, b, c, d: (a, c, d, b))
        fuse_epilogue(sch, blk, tile, 4 * tiles.block)
        finish_reduction(sch, blk, rc)
    return bool(found)


def depthwise_conv2d(sch: Sch, tiles: CpuTiles) -> bool:
    """Claims "depthwise_conv2d" blocks: y[n, c, h, w] += x[n, c, h*s+rh, w*s+rw] * W[c, rh, rw].

    NCHW rows are contiguous in w, so the tile is one output row segment as a vector
    (inputs are vector loads when the stride is 1, weights are broadcast), reduction over
    the window inside; parallel over (n, c, h).
    """
    found = block_named(sch, kernels.DW_BLOCK)
    for blk in found:
        n, c, h, w, rh, rw = sch.get_loops(blk)
        wt = largest_divisor(extent(sch, w), 2 * tiles.lanes)
        w0, w1 = sch.split(w, [None, wt])
        sch.reorder(n, c, h, w0, rh, rw, w1)
        local = sch.cache_write(blk, 0, "local")
        sch.reverse_compute_at(local, w0, True)
        sch.parallel(sch.fuse(n, c, h))
        sch.vectorize(w1)
        sch.vectorize(sch.get_loops(local)[-1])
        fuse_epilogue(sch, blk, w0, 4 * tiles.block)
        finish_reduction(sch, blk, rh)
    return bool(found)


def depthwise_conv2d_nhwc(sch: Sch, tiles: CpuTiles) -> bool:
    """Claims "depthwise_conv2d_nhwc" blocks: y[n, h, w, c] += xp[n, h*s+rh, w*s+rw, c] * W[rh, rw, c].

    Channels are contiguous: the tile is `rows` output columns x one vector of channels
    (inputs and weights are vector loads), reduction over the window inside; parallel
    over (n, output row). The zero padding is read in place (inlined): a padded copy
    would be one more pass over the block's widest activation.
    """
    found = block_named(sch, kernels.DW_NHWC_BLOCK)
    for blk in found:
        for pad in sch.get_producers(blk):
            if sch.get(pad).name_hint.startswith("depthwise_nhwc_pad"):
                sch.compute_inline(pad)
        n, h, w, c, rh, rw = sch.get_loops(blk)
        wt = largest_divisor(extent(sch, w), tiles.rows)
        w0, w1 = sch.split(w, [None, wt])
        c0, c1 = sch.split(c, [None, tiles.lanes])
        sch.reorder(n, h, w0, c0, rh, rw, w1, c1)
        local = sch.cache_write(blk, 0, "local")
        sch.reverse_compute_at(local, c0, True)
        sch.parallel(sch.fuse(n, h))
        sch.unroll(w1)
        sch.vectorize(c1)
        sch.vectorize(sch.get_loops(local)[-1])
        fuse_epilogue(sch, blk, c0, tiles.lanes)
        finish_reduction(sch, blk, rh)
    return bool(found)


def _maybe_producer(sch: Sch, block: Any, name: str) -> Any | None:
    try:
        return _producer(sch, block, name)
    except ValueError:
        return None


def _producer(sch: Sch, block: Any, name: str) -> Any:
    """The producer of `block` whose name starts with `name` (FuseTIR may add suffixes)."""
    for b in sch.get_producers(block):
        if sch.get(b).name_hint.startswith(name):
            return b
    raise ValueError(f"no producer {name!r} of {sch.get(block).name_hint}")


def _row_tile_fma(sch: Sch, block: Any, lanes: int) -> None:
    """Register-tile a block computed for one tile of rows: loops (rows, cols, reduce) ->
    (cols/lanes, reduce, rows unrolled, lanes vectorized), accumulators local."""
    i, j, r = sch.get_loops(block)[-3:]
    j0, j1 = sch.split(j, [None, lanes])
    sch.reorder(j0, r, i, j1)
    local = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(local, j0, True)
    sch.annotate(local, generic.KEEP, 1)
    sch.unroll(i)
    sch.vectorize(j1)
    try_(sch.vectorize, sch.get_loops(local)[-1])
    sch.decompose_reduction(block, r)


def attention(sch: Sch, tiles: CpuTiles) -> bool:
    """Claims "attention_out" blocks (`kernels.attention`) and everything they read.

    Parallel over groups when there are enough of them (Swin's windows x heads), the
    keys transposed once per group, in cache; else over (group, tile of query rows)
    with the transposed keys made first (deit's 3 heads). Inside one tile: the tile's
    queries copied (padded rows repeat the last), the scores as a register tile (rows
    x one vector of keys, reduction over D), the row max, the exponentials (vectorized
    over keys), the row sums, P @ V as a register tile (rows x one vector of the value
    width, reduction over keys) and the normalization. The row max and sum of rows up
    to 16 vectors (Swin's 49 keys, deit's 197) are folds
    (`kernels._row_fold`): vector ops, then a tree over the lanes; longer rows are
    reductions in `lanes` partials. Only the tile's [rows, M] scores exist at a time,
    per thread.
    """
    found = block_named(sch, kernels.ATTN_BLOCK)
    for out in found:
        pv = _producer(sch, out, "attn_pv")
        sm = _producer(sch, out, "attn_sum")
        sml = _maybe_producer(sch, sm, "attn_sum_lanes")  # a short row's fold (kernels._row_fold)
        exp = _producer(sch, sml if sml is not None else sm, "T_fast_exp")
        z = _producer(sch, exp, "attn_z")
        mx = _producer(sch, z, "attn_max")
        mxl = _maybe_producer(sch, mx, "attn_max_lanes")
        lg = _producer(sch, mxl if mxl is not None else mx, "attn_logit")
        score = _producer(sch, lg, "attn_score")
        kt = _producer(sch, score, "attn_kt")
        rfs = [None if lanes is not None else lane_rfactor(sch, b, tiles.lanes, min_lanes=8)
               for b, lanes in ((mx, mxl), (sm, sml))]
        qps = block_named(sch, "attn_q")  # queries padded to whole tiles
        # q, k, v reshaped [B, H, N, D] -> [B*H, N, D], or sliced and transposed out of
        # the qkv projection (the fusion group's layout prologue), would be copy loops:
        # read through them instead (index arithmetic on the group loop)
        for b in (score, kt, pv, *qps):
            _inline_layout_producers(sch, b)
        # the normalized rows are written once, in the tile: inlined into a consumer
        # outside it (the reshape back to [B, H, N, E]), every output element would re-add
        # its row's sum, and the tile's exponentials would outlive the tile (the whole
        # [G, N, M] score matrix, held for that consumer)
        sch.annotate(out, generic.KEEP, 1)
        g, i, c = sch.get_loops(out)
        rt = _attn_rows(sch, out, extent(sch, i))
        i0, i1 = sch.split(i, [None, rt])
        by_group = extent(sch, g) >= ATTN_GROUPS_PARALLEL
        if by_group:
            sch.parallel(g)
            tile = i0
        else:
            tile = sch.fuse(g, i0)
            sch.parallel(tile)
        try_(sch.vectorize, c)
        for b in (pv, sm, sml, rfs[1], exp, z, mx, mxl, rfs[0], lg, score):
            if b is not None:
                sch.compute_at(b, tile, True)
        for qp in qps:  # copied per tile: read in place, each row's min(i, N - 1) clamp
            # made the register tile's 14 broadcasts 14 pointers, spilled to the stack
            sch.compute_at(qp, tile, True)
            try_(sch.vectorize, sch.get_loops(qp)[-1])
        if by_group:
            sch.compute_at(kt, g, True)
            try_(sch.vectorize, sch.get_loops(kt)[-1])
        sch.compute_inline(z)
        _row_tile_fma(sch, pv, tiles.lanes)
        _row_tile_fma(sch, score, tiles.lanes)
        for rf, lanes in zip(rfs, (mxl, sml), strict=True):
            if lanes is not None:  # a fold: vector ops, then each row's lanes
                sch.vectorize(sch.get_loops(lanes)[-1])
            elif rf is not None:  # long rows: lane partials
                vectorize_lanes(sch, rf, tiles.lanes)
        for b in (exp, lg):
            try_(sch.vectorize, sch.get_loops(b)[-1])
    return bool(found)


LAYOUT_BLOCKS = ("T_reshape", "T_transpose", "T_strided_slice", "T_squeeze", "T_expand_dims")


def _inline_layout_producers(sch: Sch, block: Any) -> None:
    """Inline the chain of layout blocks (reshape, transpose, slice) that feeds `block`."""
    todo = list(sch.get_producers(block))
    while todo:
        p = todo.pop()
        if not sch.get(p).name_hint.startswith(LAYOUT_BLOCKS):
            continue
        upstream = list(sch.get_producers(p))
        try:
            sch.compute_inline(p)
        except ScheduleError:
            continue
        todo.extend(upstream)


# Groups (batch x heads x windows) from which the parallel loop runs over groups alone.
ATTN_GROUPS_PARALLEL = 16


def _attn_rows(sch: Sch, out: Any, rows: int) -> int:
    """The row tile the kernel padded the queries for (its "rows" annotation); any
    divisor of the padded rows would be correct."""
    rt = sch.get(out).annotations.get("rows")
    return int(rt) if rt is not None and rows % int(rt) == 0 else largest_divisor(rows, 16)


RULES = (gemm, conv2d, depthwise_conv2d, depthwise_conv2d_nhwc, attention)
