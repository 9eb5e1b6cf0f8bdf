"""The text form of the IR: one op per line, deterministic, and parseable back.

    graph @block(%x: f32[1,3,8,8]) {
      const %w: f32[4,3,3,3]
      const %b: f32[4] = [0.0, 0.0, 0.0, 0.0]
      %y = conv2d(%x, %w, %b) {dilations=[1,1], groups=1, pads=[0,0,0,0], strides=[1,1]} : f32[1,4,6,6]
      return %y
    }

Names come from value hints (`_1`, `_2` on repeats); unhinted values are numbered.
Attrs print sorted. Constants show their values only when they have at most
`MAX_INLINE` elements. A node's source location prints as `loc("...")`.
"""
from __future__ import annotations

import json
import re

import numpy as np

from vcompile.ir.graph import Graph, Node, Value

MAX_INLINE = 8
_BAD = re.compile(r"[^A-Za-z0-9_.]")


class Namer:
    """Gives each value a unique printed name, in the order values are first seen."""

    def __init__(self) -> None:
        self.names: dict[Value, str] = {}
        self.taken: set[str] = set()
        self.counter = 0

    def __call__(self, v: Value) -> str:
        if v not in self.names:
            self.names[v] = self._fresh(v.hint)
        return self.names[v]

    def _fresh(self, hint: str) -> str:
        base = _BAD.sub("_", hint).strip(".")
        if not base or base.isdigit():
            while str(self.counter) in self.taken:
                self.counter += 1
            name = str(self.counter)
        else:
            name, i = base, 0
            while name in self.taken:
                i += 1
                name = f"{base}_{i}"
        self.taken.add(name)
        return name


def graph_name(name: str) -> str:
    """The printed (parseable) form of a graph name: `@my-net` would not parse."""
    return _BAD.sub("_", name) or "main"


def format_scalar(x: object) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, np.floating):
        return _fmt_float(float(x), str(x))  # numpy's shortest repr for the dtype
    if isinstance(x, float):
        return _fmt_float(x, repr(x))
    if isinstance(x, str):
        return json.dumps(x)
    raise TypeError(f"cannot print attr value {x!r}")


def _fmt_float(x: float, text: str) -> str:
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    if re.fullmatch(r"-?\d+", text):  # keep floats distinguishable from ints
        text += ".0"
    return text


def format_attr(v: object) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(format_attr(x) for x in v) + "]"
    return format_scalar(v)


def format_array(a: np.ndarray) -> str:
    if a.ndim == 0:
        return format_scalar(a[()])
    return "[" + ", ".join(format_scalar(x) for x in a.reshape(-1)) + "]"


def _node_line(n: Node, name: Namer, indent: str) -> list[str]:
    outs = ", ".join("%" + name(v) for v in n.outputs)
    args = ", ".join("%" + name(v) for v in n.inputs)
    line = f"{indent}{outs} = {n.op}({args})"
    if n.attrs:
        line += " {" + ", ".join(f"{k}={format_attr(v)}" for k, v in n.attrs.items()) + "}"
    line += " : " + ", ".join(str(v.type) for v in n.outputs)
    if n.loc:
        line += f" loc({json.dumps(n.loc)})"
    if n.region is None:
        return [line]
    body = _graph_lines(n.region, Namer(), indent + "  ")
    return [line + " {", *body, indent + "}"]


def _graph_lines(g: Graph, name: Namer, indent: str) -> list[str]:
    ins = ", ".join(f"%{name(v)}: {v.type}" for v in g.inputs)
    lines = [f"{indent}graph @{graph_name(g.name)}({ins}) {{"]
    inner = indent + "  "
    for v, arr in g.consts.items():
        text = f"{inner}const %{name(v)}: {v.type}"
        if arr.size <= MAX_INLINE:
            text += " = " + format_array(arr)
        lines.append(text)
    for n in g.nodes:
        lines.extend(_node_line(n, name, inner))
    lines.append(" ".join([f"{inner}return", ", ".join("%" + name(v) for v in g.outputs)]).rstrip())
    lines.append(indent + "}")
    return lines


def print_graph(g: Graph) -> str:
    """The graph's text form; `parse_graph(print_graph(g))` rebuilds an equal graph."""
    return "\n".join(_graph_lines(g, Namer(), "")) + "\n"


def value_names(g: Graph) -> dict[Value, str]:
    """The names `print_graph` gives each value of `g` (for messages and tools)."""
    namer = Namer()
    print_lines = _graph_lines(g, namer, "")
    del print_lines
    return dict(namer.names)


def const_names(g: Graph, prefix: str = "") -> dict[str, np.ndarray]:
    """Every constant's array by the key `parse_graph(text, consts=...)` looks it up by:
    its printed name, or for a constant inside the region of the node defining `%f`,
    `"f/name"` (regions name their values afresh, so bare names could clash).

    `parse_graph(print_graph(g), consts=const_names(g))` rebuilds `g` exactly."""
    names = value_names(g)
    out = {prefix + names[v]: a for v, a in g.consts.items()}
    for n in g.nodes:
        if n.region is not None and n.outputs:
            out.update(const_names(n.region, f"{prefix}{names[n.outputs[0]]}/"))
    return out


def print_node(n: Node, names: dict[Value, str] | None = None) -> str:
    """One node as a line of text, for error messages."""
    namer = Namer()
    if names:
        namer.names.update(names)
        namer.taken.update(names.values())
    return _node_line(n, namer, "")[0]
