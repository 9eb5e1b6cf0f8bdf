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

import builtins
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vcompile.ir.types import TensorType

AttrValue = int | float | str | bool | tuple["AttrValue", ...]


class AttrError(ValueError):
    """An attr that is unknown, missing, or of another kind than its reader expects."""


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


# NOTE: a Mapping[str, Any] whose `a[key]` is typed AttrValue. Reads go through the
# typed accessors below (or `a[key]`, which makes mypy ask which kind). The Any is for
# `bb.emit(op, *ins, **n.attrs)`: mypy checks a `**` mapping's value type against every
# keyword parameter (hint: str, loc: str | None), which AttrValue would fail.
class Attrs(Mapping[str, Any]):
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

    # ---- typed reads, one per attr kind of the op schema (ir.ops.registry.ATTR_KINDS) ----
    # Each checks the stored value's kind and raises AttrError naming the key and what
    # it found; nothing is converted except an int read as a float, which the schema's
    # "float" kind accepts. A bool is not an int here. A missing key raises KeyError.
    # (Annotations say builtins.int: inside the class `int` names the method.)

    def int(self, key: builtins.str) -> builtins.int:
        return self._read(key, "an int", _is_int)

    def float(self, key: builtins.str) -> builtins.float:
        return builtins.float(self._read(key, "a float", _is_real))

    def str(self, key: builtins.str) -> builtins.str:
        return self._read(key, "a str", _is_str)

    def bool(self, key: builtins.str) -> builtins.bool:
        return self._read(key, "a bool", _is_bool)

    def ints(self, key: builtins.str) -> tuple[builtins.int, ...]:
        return self._read_tuple(key, "ints", _is_int)

    def floats(self, key: builtins.str) -> tuple[builtins.float, ...]:
        return tuple(builtins.float(x) for x in self._read_tuple(key, "floats", _is_real))

    def dims(self, key: builtins.str) -> tuple[builtins.int | builtins.str, ...]:
        """Ints or symbol names (a shape)."""
        return self._read_tuple(key, "dims", _is_dim)

    def _read(self, key: builtins.str, want: builtins.str, ok: Callable[[object], builtins.bool]) -> Any:
        v = self[key]
        if not ok(v):
            raise AttrError(f"attr {key!r} is {_kind_of(v)} {v!r}, expected {want}")
        return v

    def _read_tuple(self, key: builtins.str, want: builtins.str,
                    ok: Callable[[object], builtins.bool]) -> tuple[Any, ...]:
        v = self[key]
        if not isinstance(v, tuple) or not all(ok(x) for x in v):
            raise AttrError(f"attr {key!r} is {_kind_of(v)} {v!r}, expected a tuple of {want}")
        return v


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _is_bool(v: object) -> bool:
    return isinstance(v, bool)


def _is_dim(v: object) -> bool:
    return _is_int(v) or isinstance(v, str)


def _kind_of(v: object) -> str:
    if isinstance(v, tuple):
        kinds = sorted({type(x).__name__ for x in v})
        return f"a tuple of {'/'.join(kinds)}" if kinds else "an empty tuple"
    name = type(v).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


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
        fields: dict[str, Any] = {"name": self.name, "inputs": self.inputs, "nodes": self.nodes,
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
