"""The op table: one `OpDef` per op, with attr schema, type inference and numpy eval.

`infer(types, attrs) -> tuple[TensorType, ...]` gives output types; the builder and
the verifier both use it. `eval(arrays, attrs) -> tuple[np.ndarray, ...]` is the
numpy reference that the interpreter and constant folding use. Attrs passed to
both always hold every key of the schema (defaults filled in by the builder).

Each entry also carries the op's traits, so no other module classifies ops by name:
`category` (one of `CATEGORIES`: the report's op class), `view` (the output is the
input's buffer relabelled: no kernel), `selection` (each output element is a distinct
element of the one data input, picked by attrs alone, so evaluating the op on an index
array gives its index map) and `flops` (`ir.stats`; None = 1 per output element for an
elementwise op, else 0).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vcompile.ir.graph import AttrError, Attrs, Node
from vcompile.ir.types import Dim, TensorType

Infer = Callable[[Sequence[TensorType], Attrs], tuple[TensorType, ...]]
Eval = Callable[[Sequence[np.ndarray], Attrs], tuple[np.ndarray, ...]]
Flops = Callable[[Node], int]

# What an op computes, for the report's colours and profile aggregation
# (`ir.kernels.op_class`) and for fusion (category "norm" is grouped as a reduction).
CATEGORIES = ("conv", "attention", "matmul", "norm", "pool", "reduce", "elementwise", "layout",
              "other")
# the category an entry gets when it names none: from its fusion kind
_KIND_CATEGORY = {"elementwise": "elementwise", "injective": "layout", "reduce": "reduce"}


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
ATTR_KINDS = ("int", "float", "str", "bool", "ints", "floats", "dims")


@dataclass(frozen=True, slots=True)
class AttrSpec:
    kind: str  # one of ATTR_KINDS; "dims" = ints or symbol names
    default: Any = REQUIRED

    def check(self, v: Any) -> bool:
        scalar = {"int": lambda x: isinstance(x, int) and not isinstance(x, bool),
                  "float": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
                  "str": lambda x: isinstance(x, str),
                  "bool": lambda x: isinstance(x, bool)}
        if self.kind in scalar:
            return scalar[self.kind](v)
        if not isinstance(v, tuple):
            return False
        item = {"ints": scalar["int"], "floats": scalar["float"],
                "dims": lambda x: scalar["int"](x) or (isinstance(x, str) and x.isidentifier())}
        return all(item[self.kind](x) for x in v)


@dataclass(frozen=True, slots=True)
class OpDef:
    name: str
    arity: tuple[int, int | None]  # (min, max) inputs; max None = variadic
    attrs: Mapping[str, AttrSpec]
    infer: Infer
    eval: Eval
    kind: str = "opaque"  # elementwise | injective | reduce | anchor | opaque (for fusion)
    doc: str = ""
    num_outputs: Callable[[Attrs, int], int] = field(default=lambda attrs, n_in: 1)
    category: str = "other"  # one of CATEGORIES
    view: bool = False       # output = input buffer relabelled; launches nothing
    selection: bool = False  # output elements = distinct elements of input 0, by attrs
    flops: Flops | None = None  # None: 1 per output element if elementwise, else 0

    def fill_defaults(self, attrs: Mapping[str, Any]) -> Attrs:
        """Attrs with defaults for the keys not given; raises on unknown or missing keys."""
        unknown = sorted(set(attrs) - set(self.attrs))
        if unknown:
            raise AttrError(f"{self.name}: unknown attr(s) {', '.join(unknown)}; "
                            f"known: {', '.join(self.attrs) or 'none'}")
        full: dict[str, Any] = {}
        for k, spec in self.attrs.items():
            if k in attrs:
                full[k] = attrs[k]
            elif spec.default is REQUIRED:
                raise AttrError(f"{self.name}: missing required attr {k!r}")
            else:
                full[k] = spec.default
        return Attrs(full)

    def arity_ok(self, n: int) -> bool:
        lo, hi = self.arity
        return n >= lo and (hi is None or n <= hi)


OPS: dict[str, OpDef] = {}


def register_op(name: str, arity: int | tuple[int, int | None], infer: Infer, eval: Eval, *,
                attrs: Mapping[str, AttrSpec | tuple[str] | tuple[str, Any]] | None = None,
                kind: str = "opaque",
                doc: str = "", num_outputs: Callable[[Attrs, int], int] | None = None,
                category: str | None = None, view: bool = False, selection: bool = False,
                flops: Flops | None = None) -> OpDef:
    """Add one op to the table. `attrs` maps name -> AttrSpec or (kind, default);
    `category` defaults to the one of `kind` (elementwise, layout, reduce; else other)."""
    if name in OPS:
        raise ValueError(f"op {name!r} is registered twice")
    specs = {k: v if isinstance(v, AttrSpec) else AttrSpec(*v) for k, v in (attrs or {}).items()}
    for k, s in specs.items():
        if s.kind not in ATTR_KINDS:
            raise ValueError(f"op {name}: attr {k} has unknown kind {s.kind!r}")
    category = category or _KIND_CATEGORY.get(kind, "other")
    if category not in CATEGORIES:
        raise ValueError(f"op {name}: unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    ar = (arity, arity) if isinstance(arity, int) else arity
    traits: dict[str, Any] = {"category": category, "view": view, "selection": selection,
                              "flops": flops}
    if num_outputs is not None:
        traits["num_outputs"] = num_outputs
    op = OpDef(name, ar, specs, infer, eval, kind, doc, **traits)
    OPS[name] = op
    return op


class ShapeError(ValueError):
    """Inputs whose types an op cannot accept; the message says which and why."""


# ---- helpers shared by the op modules -------------------------------------------------

def broadcast_shapes(*shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """numpy broadcasting over dims that may be symbols (a symbol only matches itself or 1)."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError(f"shapes {' and '.join(_fmt(s) for s in shapes)} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _fmt(shape: tuple[Dim, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def norm_axis(axis: int, rank: int, op: str = "") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def same_dtype(types: Sequence[TensorType], op: str) -> str:
    dts = {t.dtype for t in types}
    if len(dts) != 1:
        raise ShapeError(f"{op}: inputs must share one dtype, got {', '.join(sorted(dts))}")
    return dts.pop()


def one(x: np.ndarray | np.generic, like: np.ndarray | None = None) -> tuple[np.ndarray]:
    """Wrap a single eval result, keeping 0-d results as arrays of the right dtype."""
    arr = np.asarray(x)
    if like is not None and arr.dtype != like.dtype:
        arr = arr.astype(like.dtype)
    return (arr,)
