"""Index maps as views: which reshape / slice / transpose turns a tensor into another
whose elements are a known selection of it (`layout_twins` asks, with the flat index of
each wanted element).

    as_transpose(idx)       full permutation      => reshape + one transpose
    strided_box(idx)        strided selection     => reshape + slice + one transpose
    stepped_box(idx, shape) stepped selection     => slice with steps + one transpose
    invert(recipe)          reshape/transpose ops => the ops that undo them

Every answer is checked by rebuilding the index array from it: a wrong guess is None.
"""
from __future__ import annotations

from typing import Any

import numpy as np

Recipe = tuple[tuple[str, dict[str, Any]], ...]


def invert(recipe: Recipe, shape: tuple[int, ...]) -> Recipe:
    """The views that undo `recipe` applied to a value of `shape`."""
    shapes, steps = [shape], []
    for op, a in recipe:
        s = shapes[-1]
        shapes.append(tuple(a["shape"]) if op == "reshape" else tuple(s[p] for p in a["perm"]))
    for (op, a), before in zip(reversed(recipe), reversed(shapes[:-1]), strict=True):
        if op == "reshape":
            steps.append(("reshape", {"shape": before}))
        else:
            steps.append(("transpose", {"perm": tuple(int(i) for i in np.argsort(a["perm"]))}))
    return tuple(steps)


def as_transpose(flat: np.ndarray, size: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(shape, perm) with arange(size).reshape(shape).transpose(perm).ravel() == flat, when
    the permutation `flat` is one transpose of some reshape; else None. Dims are peeled
    innermost first (run length and stride), merged where contiguous, then checked."""
    dims: list[tuple[int, int]] = []  # (length, stride in t), innermost first
    step = 1
    while step < size:
        st = int(flat[step] - flat[0])
        n = size // step
        ks = np.arange(n)
        run = flat[: n * step: step] == flat[0] + ks * st
        length = int(np.argmin(run)) if not run.all() else n
        if length < 2 or size % (step * length):
            return None
        dims.append((length, st))
        step *= length
    merged = _merge_runs(dims)
    order = merged[::-1]  # outermost first, as q holds them
    by_stride = sorted(range(len(order)), key=lambda i: -order[i][1])
    shape = tuple(order[i][0] for i in by_stride)
    perm = tuple(by_stride.index(i) for i in range(len(order)))
    if np.array_equal(np.arange(size).reshape(shape).transpose(perm).reshape(-1), flat):
        return shape, perm
    return None


def _merge_runs(dims: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Join neighbouring (length, stride) runs that are one run of the outer stride."""
    merged: list[tuple[int, int]] = []
    for length, st in dims:
        if merged and st == merged[-1][1] * merged[-1][0]:
            merged[-1] = (merged[-1][0] * length, merged[-1][1])
        else:
            merged.append((length, st))
    return merged


def runs(flat: np.ndarray, merge: bool = True) -> list[tuple[int, int]] | None:
    """(length, stride) of each dim of `flat` seen as a strided box, innermost first."""
    n, dims, step = flat.size, [], 1
    while step < n:
        st = int(flat[step] - flat[0])
        m = n // step
        run = flat[: m * step: step] == flat[0] + np.arange(m) * st
        length = int(np.argmin(run)) if not run.all() else m
        if length < 2 or n % (step * length) or st <= 0:
            return None
        dims.append((length, st))
        step *= length
    if not merge:  # stepped boxes map each run to one axis of t: keep them apart
        return dims
    return _merge_runs(dims)


def strided_box(flat: np.ndarray, size: int) -> tuple[tuple[int, ...], list[int], list[int],
                                                       tuple[int, ...]] | None:
    """(shape, starts, ends, perm): arange(size).reshape(shape)[starts:ends].transpose(perm)
    .ravel() == flat, each stride of `flat` one axis of `shape`; else None."""
    dims = runs(flat)
    if dims is None:
        return None
    order = dims[::-1]  # outermost first, as q holds them
    by_stride = sorted(range(len(order)), key=lambda i: -order[i][1])
    strides = [order[i][1] for i in by_stride]
    if len(set(strides)) != len(strides):
        return None
    shape, prev = [], size
    for st in strides:
        if prev % st:
            return None
        shape.append(prev // st)
        prev = st
    shape.append(prev)  # the elements below the smallest stride: one of them is taken
    digits = [int(d) for d in np.unravel_index(int(flat[0]), shape)]
    lengths = [order[i][0] for i in by_stride] + [1]
    ends = [d + n for d, n in zip(digits, lengths, strict=True)]
    if any(e > s for e, s in zip(ends, shape, strict=True)):
        return None
    perm = (*(by_stride.index(i) for i in range(len(order))), len(order))
    box = np.arange(size).reshape(shape)[tuple(slice(d, e) for d, e in zip(digits, ends, strict=True))]
    if not np.array_equal(box.transpose(perm).reshape(-1), flat):
        return None
    return tuple(shape), digits, ends, perm


def stepped_box(flat: np.ndarray, shape: tuple[int, ...]) -> tuple[tuple[int, ...], list[int], list[int],
                                                                    tuple[int, ...], list[int]] | None:
    """(shape, starts, ends, perm, steps): a slice with steps of t's own axes, transposed,
    when each run of `flat` steps along one axis of t; else None."""
    dims = runs(flat, merge=False)
    if dims is None:
        return None
    rows = [int(np.prod(shape[a + 1:], dtype=np.int64)) for a in range(len(shape))]
    digits = [int(d) for d in np.unravel_index(int(flat[0]), shape)]
    starts, ends, steps = list(digits), [d + 1 for d in digits], [1] * len(shape)
    order, used = dims[::-1], []
    for length, st in order:
        a = next((a for a in range(len(shape)) if a not in used and st % rows[a] == 0
                  and digits[a] + (st // rows[a]) * (length - 1) < shape[a]), None)
        if a is None:
            return None
        used.append(a)
        steps[a] = st // rows[a]
        ends[a] = digits[a] + steps[a] * (length - 1) + 1
    perm = (*used, *(a for a in range(len(shape)) if a not in used))
    box = np.arange(int(np.prod(shape))).reshape(shape)[
        tuple(slice(b, e, k) for b, e, k in zip(starts, ends, steps, strict=True))]
    if not np.array_equal(box.transpose(perm).reshape(-1), flat):
        return None
    return shape, starts, ends, perm, steps


def refinements(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """t's shape, then each axis split in two (tokens [B, C, 1, N] of a 7x7 grid: N -> 7, 7)."""
    out = [shape]
    for a, e in enumerate(shape):
        out += [(*shape[:a], e // w, w, *shape[a + 1:]) for w in range(2, e) if e % w == 0]
    return out
