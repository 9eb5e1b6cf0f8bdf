"""The IR data model: SSA values, nodes and graphs, all immutable plain data.

A `Value` is an SSA definition and compares by identity. A `Node` applies one op
from the op table to input values and defines its output values. A `Graph` lists
its nodes in topological order; constants are values with an array in `consts`.
Use lists are not stored: `users(g)` computes them, so nothing can go stale.
A node may carry a `region` (a Graph): fused kernels hold their body there. A
region node's op is a free-form name that is not in the op table (`fused`); it
is typed by its region (see `builder.infer_node`). Graph consts are read-only.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vcompile.ir.types import TensorType

AttrValue = int | float | str | bool | tuple["AttrValue", ...]


def _freeze_attr(v: Any) -> AttrValue:
    if isinstance(v, (list, tuple)):
        return tuple(_freeze_attr(x) for x in v)
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            return _freeze_attr(v.item())
        return tuple(_freeze_attr(x) for x in v.tolist())
    if isinstance(v, np.generic):
        return _freeze_attr(v.item())
    if isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"attribute value {v!r} of type {type(v).__name__} is not allowed: "
                    "attrs hold scalars, strings and tuples (tensors go in Graph.consts)")


def _attr_key(v: AttrValue) -> object:
    if isinstance(v, tuple):
        return tuple(_attr_key(x) for x in v)
    if isinstance(v, float):
        return ("float", repr(v))  # repr round-trips exactly and spells nan once
    return (type(v).__name__, v)


class Attrs(Mapping[str, AttrValue]):
    """An immutable, hashable attribute dictionary, iterated in sorted key order."""

    __slots__ = ("_items",)
    _items: tuple[tuple[str, AttrValue], ...]

    def __init__(self, items: Mapping[str, Any] | None = None, **kw: Any) -> None:
        merged = {**(items or {}), **kw}
        self._items = tuple(sorted((k, _freeze_attr(v)) for k, v in merged.items()))

    def __getitem__(self, key: str) -> AttrValue:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _key(self) -> tuple[tuple[str, object], ...]:
        return tuple((k, _attr_key(v)) for k, v in self._items)

    # NOTE: two Attrs are equal exactly when they print the same: 1, 1.0 and True
    # differ, nan equals nan, and 0.0 differs from -0.0. A plain dict compares
    # after freezing, so lists equal tuples. CSE-style passes rely on this.
    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping) and not isinstance(other, Attrs):
            try:
                other = Attrs(other)
            except TypeError:
                return False
        return isinstance(other, Attrs) and self._key() == other._key()

    def __repr__(self) -> str:
        return f"Attrs({dict(self._items)!r})"

    def replace(self, **kw: Any) -> Attrs:
        return Attrs({**dict(self._items), **kw})


@dataclass(frozen=True, slots=True, eq=False)  # identity == SSA definition
class Value:
    type: TensorType
    hint: str = ""  # name prefix for the printer

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def __repr__(self) -> str:
        return f"Value({self.hint or '?'}: {self.type})"


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    op: str  # key into ir.ops.OPS
    inputs: tuple[Value, ...]
    outputs: tuple[Value, ...]
    attrs: Attrs = field(default_factory=Attrs)  # frozen; sorted when printed
    loc: str = ""  # node name in the source model
    region: Graph | None = None  # body of a fused node

    def __post_init__(self) -> None:
        # Accept lists and plain dicts from callers, but store the frozen forms.
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not isinstance(self.attrs, Attrs):
            object.__setattr__(self, "attrs", Attrs(self.attrs))

    @property
    def output(self) -> Value:
        """The single output of a one-output node."""
        if len(self.outputs) != 1:
            raise ValueError(f"{self.op} has {len(self.outputs)} outputs; use .outputs")
        return self.outputs[0]


@dataclass(frozen=True, slots=True, eq=False)
class Graph:
    name: str
    inputs: tuple[Value, ...]
    nodes: tuple[Node, ...]  # invariant: topological order
    outputs: tuple[Value, ...]
    consts: Mapping[Value, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in ("inputs", "nodes", "outputs"):
            object.__setattr__(self, f, tuple(getattr(self, f)))
        object.__setattr__(self, "consts", {v: _frozen(a) for v, a in self.consts.items()})

    def producers(self) -> dict[Value, Node]:
        """Map each node output to the node that defines it."""
        return {v: n for n in self.nodes for v in n.outputs}

    def replace(self, **kw: Any) -> Graph:
        fields = {"name": self.name, "inputs": self.inputs, "nodes": self.nodes,
                  "outputs": self.outputs, "consts": self.consts}
        fields.update(kw)
        return Graph(**fields)

    def __repr__(self) -> str:
        return (f"Graph(@{self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, "
                f"{len(self.consts)} consts, {len(self.outputs)} outputs)")


def _frozen(a: Any) -> np.ndarray:
    """A read-only array with `a`'s contents, sharing memory only when `a` is read-only.

    NOTE: a writeable array is copied rather than frozen in place, so building a
    graph never changes the caller's array and later writes to it cannot change
    the graph. Arrays already read-only (every const of a graph made by Builder,
    parse_graph or another Graph) are shared, so passes that rebuild graphs do
    not copy weights.
    """
    if isinstance(a, np.ndarray) and not _writeable_anywhere(a):
        return a
    arr = np.array(a)
    arr.flags.writeable = False
    return arr


def _writeable_anywhere(a: np.ndarray) -> bool:
    """Whether `a` or an array it is a view of can be written (views share memory)."""
    b: Any = a
    while isinstance(b, np.ndarray):
        if b.flags.writeable:
            return True
        b = b.base
    return False


def users(g: Graph) -> dict[Value, list[Node]]:
    """Each value's consuming nodes, in graph order (graph outputs are not nodes)."""
    out: dict[Value, list[Node]] = {}
    for n in g.nodes:
        for v in n.inputs:
            lst = out.setdefault(v, [])
            if not lst or lst[-1] is not n:
                lst.append(n)
    return out


def op_counts(g: Graph) -> dict[str, int]:
    """How many nodes of each op the graph has, sorted by op name."""
    counts: dict[str, int] = {}
    for n in g.nodes:
        counts[n.op] = counts.get(n.op, 0) + 1
    return dict(sorted(counts.items()))


def used_consts(g: Graph) -> dict[Value, np.ndarray]:
    """The constants some node or output still uses, in their original order."""
    live = {v for n in g.nodes for v in n.inputs} | set(g.outputs)
    return {v: a for v, a in g.consts.items() if v in live}


def io_names(g: Graph) -> tuple[list[str], list[str]]:
    """Unique input and output names from the values' hints (the source model's names; a
    compiled model reports these): the hint, else input<i>/output<i>; a repeat gets _<i>."""
    def uniq(vals: tuple[Value, ...], prefix: str) -> list[str]:
        seen: set[str] = set()
        out = []
        for i, v in enumerate(vals):
            nm = v.hint or f"{prefix}{i}"
            while nm in seen:
                nm = f"{nm}_{i}"
            seen.add(nm)
            out.append(nm)
        return out
    return uniq(g.inputs, "input"), uniq(g.outputs, "output")
