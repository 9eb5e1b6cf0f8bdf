"""Rules for the contraction kernels of `codegen.kernels`: gemm, conv2d, depthwise_conv2d.

Each rule claims the blocks of one name, tiles them for registers and moves the block's
elementwise consumers (bias, activation, residual add fused by FuseOps) into the tile.
"""
from __future__ import annotations

from typing import Any

from vcompile.codegen import kernels
from vcompile.codegen.schedules.common import (
    Sch,
    block_named,
    extent,
    finish_reduction,
    fuse_epilogue,
    largest_divisor,
    register_tile,
)
from vcompile.codegen.schedules.tiles import CpuTiles


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


RULES = (gemm, conv2d, depthwise_conv2d)
