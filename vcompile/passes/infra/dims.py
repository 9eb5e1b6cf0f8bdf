"""Dims that may be symbols (`f32[batch,3,224,224]`): the checks a rewrite makes before
it does arithmetic on a shape.

A symbolic dim is a name bound only at run time (possibly to 1 or 0), so a rewrite may
compare it for identity with another dim but never order it, multiply it or make an
array of it. Rewrites that need the number decline (`static_dims(...) is None`);
rewrites that only move whole dims keep working with the symbol as an opaque factor
(`dim_product`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeGuard

from vcompile.ir.types import Dim, TensorType


def is_static(d: Dim) -> TypeGuard[int]:
    return isinstance(d, int)


def static_dim(d: Dim) -> int | None:
    return d if isinstance(d, int) else None


def static_dims(t: TensorType | Iterable[Dim]) -> tuple[int, ...] | None:
    """The shape as ints, or None if any dim is a symbol."""
    shape = tuple(t.shape) if isinstance(t, TensorType) else tuple(t)
    return shape if all(isinstance(d, int) for d in shape) else None  # type: ignore[return-value]


def static_size(t: TensorType | Iterable[Dim]) -> int | None:
    """The element count, or None if any dim is a symbol."""
    dims = static_dims(t)
    return None if dims is None else math.prod(dims)


def dim_product(dims: Iterable[Dim]) -> tuple[int, tuple[str, ...]]:
    """The product of `dims` with the symbols kept as opaque factors: (product of the int
    dims, the symbols sorted). Equal values mean equal products whatever the symbols bind
    to; unequal ones may still be equal at run time, so a rewrite only relies on equality."""
    n, syms = 1, []
    for d in dims:
        if isinstance(d, int):
            n *= d
        else:
            syms.append(d)
    return n, tuple(sorted(syms))
