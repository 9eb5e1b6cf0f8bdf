"""The verifier: checks that a graph is well-formed and well-typed.

Checked: each value defined once and before use; known op, arity and attr schema;
`infer(inputs)` equal to the declared output types; graph outputs defined;
constants' arrays matching their types; regions verified recursively.
Raises `VerifyError` naming what is wrong, the printed node, and its `loc`.
"""
from __future__ import annotations

from vcompile.errors import VcompileError
from vcompile.ir.builder import BuildError, infer_node
from vcompile.ir.graph import Attrs, Graph, Node, Value
from vcompile.ir.printer import print_node, value_names


class VerifyError(VcompileError, ValueError):
    """A malformed graph. The message shows the offending node and where it came from."""


class _Names:
    """The printed names of a graph's values, computed on first use: only a failing check
    formats anything, so verifying a valid graph stays linear in its size."""

    def __init__(self, g: Graph) -> None:
        self._g = g
        self._names: dict[Value, str] | None = None

    def get(self) -> dict[Value, str]:
        if self._names is None:
            self._names = value_names(self._g)
        return self._names

    def __getitem__(self, v: Value) -> str:
        return self.get()[v]

    def name(self, v: Value) -> str:
        return self.get().get(v, "?")


def _where(n: Node, names: _Names) -> str:
    """The offending node's text and source location, for a message (errors only: this
    prints the node, which costs time proportional to the graph's names)."""
    return (f"\n  in: {print_node(n, names.get())}"
            + (f"\n  from source node {n.loc!r}" if n.loc else ""))


def verify(g: Graph) -> Graph:
    """Return `g` unchanged if it is well-formed; raise VerifyError otherwise.

    Linear in the size of `g`: names and node text are formatted only for an error."""
    names = _Names(g)
    defined: set[Value] = set()

    def define(v: Value, what: str, node: Node | None = None) -> None:
        if v in defined:
            where = _where(node, names) if node is not None else ""
            raise VerifyError(f"value %{names.name(v)} is defined twice (again as {what}); "
                              f"each SSA value has exactly one definition{where}")
        defined.add(v)

    for v in g.inputs:
        define(v, "a graph input")
    for v, arr in g.consts.items():
        if not v.type.is_static or not v.type.matches(arr):
            why = "" if v.type.is_static else " (constants need static types)"
            raise VerifyError(f"constant %{names[v]} is declared {v.type} but holds an array of "
                              f"shape {list(arr.shape)} and dtype {arr.dtype}{why}")
        define(v, "a constant")
    for n in g.nodes:
        _check_node(n, defined, names)
        for v in n.outputs:
            define(v, f"an output of {n.op}", n)
    for v in g.outputs:
        if v not in defined:
            raise VerifyError(f"graph output %{names.name(v)} ({v.type}) is not defined by "
                              "any input, constant or node of the graph")
    return g


def _check_node(n: Node, defined: set[Value], names: _Names) -> None:
    for i, v in enumerate(n.inputs):
        if v not in defined:
            raise VerifyError(f"input {i} of {n.op} ({v.type}) is used before it is defined; "
                              f"nodes must be in topological order{_where(n, names)}")
    if n.region is not None:
        try:
            verify(n.region)
        except VerifyError as e:
            raise VerifyError(f"the region of {n.op} is malformed: {e}{_where(n, names)}") from e
    try:
        full, types = infer_node(n.op, n.inputs, n.attrs, n.region)
    except BuildError as e:
        raise VerifyError(f"{e}{_where(n, names)}") from e
    if full != n.attrs:
        missing = sorted(set(full) - set(n.attrs))
        if missing:
            raise VerifyError(f"{n.op} lacks attrs {', '.join(missing)}: nodes carry every "
                              f"attr; build them with Builder.emit{_where(n, names)}")
        bad = ", ".join(f"{k}={n.attrs[k]!r}" for k in full
                       if Attrs({k: full[k]}) != Attrs({k: n.attrs[k]}))
        raise VerifyError(f"{n.op} has attrs not in canonical form ({bad}; float attrs hold "
                          f"floats); build nodes with Builder.emit{_where(n, names)}")
    if tuple(v.type for v in n.outputs) != types:
        declared = ", ".join(str(v.type) for v in n.outputs)
        raise VerifyError(f"{n.op} declares output type {declared} but its inputs infer "
                          f"{', '.join(map(str, types))}{_where(n, names)}")
