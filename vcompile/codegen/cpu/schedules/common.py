"""Schedule helpers shared by the rules: block queries, safe primitives, the register tile.

    register_tile(sch, block, outer, row, rows, col, cols, reduce) => tile loop
        [outer..., col/cols, row/rows] -> [reduce...] -> [row%rows unrolled, col%cols vectorized]
        accumulators in a local buffer, column-innermost, written back once per tile

The accumulators of one tile live in registers through the whole reduction: the row
operand is broadcast from memory, the column operand (packed weights) is one contiguous
vector load, and each (row, vector) pair is one FMA.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tvm import s_tir, tirx

Sch = s_tir.Schedule
ScheduleError = s_tir.ScheduleError


def try_(fn: Callable[..., Any], *args: Any) -> Any:
    """Apply one optional primitive; None if TVM refuses it (the schedule is unchanged)."""
    try:
        return fn(*args)
    except ScheduleError:
        return None


def root_blocks(sch: Sch) -> list[Any]:
    root = sch.get_sblock("root") if _has_block(sch, "root") else None
    if root is None:
        return []
    return list(sch.get_child_blocks(root))


def _has_block(sch: Sch, name: str) -> bool:
    try:
        sch.get_sblock(name)
        return True
    except Exception:
        return False


def block_named(sch: Sch, name: str) -> list[Any]:
    """Blocks whose name is `name` or `name_<k>` (FuseTIR renames repeats)."""
    found = []
    for b in all_blocks(sch):
        nm = sch.get(b).name_hint
        if nm == name or (nm.startswith(name + "_") and nm[len(name) + 1:].isdigit()):
            found.append(b)
    return found


def all_blocks(sch: Sch) -> list[Any]:
    out: list[Any] = []

    def walk(b: Any) -> None:
        for c in sch.get_child_blocks(b):
            out.append(c)
            walk(c)
    walk(sch.get_sblock("root"))
    return out


def iter_kinds(sch: Sch, block: Any) -> list[str]:
    """'S' (spatial) or 'R' (reduce) or 'O' (other) per block iter var."""
    kinds = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}
    return [kinds.get(int(iv.iter_type), "O") for iv in sch.get(block).iter_vars]


def extent(sch: Sch, loop: Any) -> int:
    ext = sch.get(loop).extent
    return int(ext) if isinstance(ext, tirx.IntImm) else -1


def largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)


def consumers_chain(sch: Sch, block: Any) -> list[Any]:
    """Every block downstream of `block` in this function, producers first: in program
    order (a breadth-first walk put GELU's multiply before the erf it also reads)."""
    seen: list[Any] = []
    frontier = list(sch.get_consumers(block))
    while frontier:
        b = frontier.pop(0)
        if any(sch.get(b).same_as(sch.get(s)) for s in seen):
            continue
        seen.append(b)
        frontier.extend(sch.get_consumers(b))
    order = {sch.get(b).name_hint: i for i, b in enumerate(all_blocks(sch))}
    return sorted(seen, key=lambda b: order.get(sch.get(b).name_hint, len(order)))


def out_shape(sch: Sch, block: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in sch.get(block).writes[0].source.shape)


def fuse_epilogue(sch: Sch, block: Any, loop: Any, vector_limit: int) -> None:
    """Move the elementwise consumers of `block` under `loop` (the tile), vectorizing the
    innermost loop of each; consumers that cannot move stay where they are.

    NOTE: past the anchor's own write-back (which cuts its padding off), only consumers
    with the shape of what they read move: a reshape moved under a padded tile (a 1x1
    conv on 7x7 computed as one row of 49 pixels, padded to 52, then reshaped back) gave
    wrong results in TVM 0.27, and NaNs in Swin even without padding. A reshape left
    outside costs one copy."""
    direct = {sch.get(b).name_hint for b in sch.get_consumers(block)}
    for b in consumers_chain(sch, block):
        if "R" in iter_kinds(sch, b):
            continue
        shape = out_shape(sch, b)
        if sch.get(b).name_hint not in direct and all(
                tuple(int(d) for d in r.source.shape) != shape for r in sch.get(b).reads):
            continue
        if try_(sch.reverse_compute_at, b, loop, True) is None:
            continue
        inner = sch.get_loops(b)[-1]
        if 1 < extent(sch, inner) <= vector_limit:
            try_(sch.vectorize, inner)


def register_tile(sch: Sch, block: Any, outer: list[Any], row: Any, rows: int, col: Any,
                  cols: int, reduce: list[Any], col_last_layout: Callable[..., Any] | None,
                  parallel: list[Any] | None = None) -> Any:
    """Tile `block` (see module doc); returns the tile loop (where epilogues go)."""
    r0, r1 = sch.split(row, [None, rows])
    c0, c1 = sch.split(col, [None, cols])
    sch.reorder(*outer, c0, r0, *reduce, r1, c1)
    local = sch.cache_write(block, 0, "local")
    if col_last_layout is not None:
        sch.transform_layout(block, ("write", 0), col_last_layout)
    sch.reverse_compute_at(local, r0, True)
    par = parallel if parallel is not None else [*outer, c0]
    sch.parallel(sch.fuse(*par) if len(par) > 1 else par[0])
    sch.vectorize(c1)
    sch.unroll(r1)
    wl = sch.get_loops(local)[-1]
    if extent(sch, wl) > 1:
        try_(sch.vectorize, wl)
    return r0, local


def finish_reduction(sch: Sch, block: Any, first_reduce: Any) -> None:
    """Split the zero-init out of the reduction (last: it pins the loops in place)."""
    sch.decompose_reduction(block, first_reduce)


def lane_rfactor(sch: Sch, block: Any, lanes: int, min_lanes: int = 8) -> Any:
    """Split a block's last (reduce) loop into `lanes` running partials (the returned
    block, a reduction whose lanes are spatial) and one horizontal step: reduced in one
    scalar chain, each element would wait on the previous one. None (nothing done) when
    the loop is not a multiple of `lanes` or shorter than `min_lanes` vectors.
    Must run before compute_at."""
    r = sch.get_loops(block)[-1]
    # measured: attention's row max/sum gain from ~200 keys (deit 0.48 -> 0.39 ms) and
    # lose on Swin's 49
    if extent(sch, r) % lanes or extent(sch, r) < min_lanes * lanes:
        return None
    _, r1 = sch.split(r, [None, lanes])
    return sch.rfactor(r1, len(sch.get(block).writes[0].source.shape))  # lanes innermost


def vectorize_lanes(sch: Sch, rf: Any, lanes: int) -> None:
    """Put the lanes of an rfactor block innermost and vectorize them."""
    loops = sch.get_loops(rf)
    if extent(sch, loops[-1]) == lanes and len(loops) > 1:  # already (..., r0, lanes)
        lane, r0 = loops[-1], loops[-2]
    else:
        lane = next(lp for lp in loops if extent(sch, lp) == lanes and
                    any(extent(sch, x) > 1 for x in loops[loops.index(lp) + 1:]))
        rest = loops[loops.index(lane) + 1:]
        sch.reorder(*rest, lane)
        r0 = rest[-1]
    init = try_(sch.decompose_reduction, rf, r0)
    # NOTE: TVM refuses to vectorize a loop inside the reduction loop here (no "compact
    # dataflow"); unrolled, the lanes are independent and LLVM's SLP pass packs them.
    if try_(sch.vectorize, lane) is None:
        sch.unroll(lane)
    if init is not None:
        try_(sch.vectorize, sch.get_loops(init)[-1])
