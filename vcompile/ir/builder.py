"""Builds graphs op by op: every `emit` fills default attrs and infers output types
from the op table, so a graph made by a Builder is well-typed by construction."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph, Node, Value
from vcompile.ir.ops import OPS
from vcompile.ir.ops.registry import AttrError, ShapeError
from vcompile.ir.types import Dim, TensorType


class BuildError(VcompileError, ValueError):
    """An op that cannot be emitted: unknown op, bad arity or attrs, ill-typed inputs."""


def infer_node(op: str, inputs: Sequence[Value], attrs: Mapping[str, Any],
               region: Graph | None = None) -> tuple[Any, tuple[TensorType, ...]]:
    """Fill default attrs and infer output types; raises BuildError with the reason."""
    if region is not None:
        return _infer_region(op, inputs, attrs, region)
    if op not in OPS:
        raise BuildError(f"unknown op {op!r}; see vcompile.ir.ops.OPS for the op table")
    opdef = OPS[op]
    if not opdef.arity_ok(len(inputs)):
        lo, hi = opdef.arity
        want = f"{lo}" if lo == hi else f"{lo} to {hi if hi is not None else 'any'}"
        raise BuildError(f"{op} takes {want} inputs, got {len(inputs)}")
    try:
        full = opdef.fill_defaults(attrs)
        for k, spec in opdef.attrs.items():
            if not spec.check(full[k]):
                raise AttrError(f"{op}: attr {k}={full[k]!r} is not of kind {spec.kind}")
        types = opdef.infer([v.type for v in inputs], full)
    except (AttrError, ShapeError) as e:
        raise BuildError(str(e)) from e
    want_n = opdef.num_outputs(full, len(inputs))
    if len(types) != want_n:
        raise BuildError(f"{op}: infer gave {len(types)} outputs, expected {want_n}")
    return full, tuple(types)


def _infer_region(op: str, inputs: Sequence[Value], attrs: Mapping[str, Any],
                  region: Graph) -> tuple[Any, tuple[TensorType, ...]]:
    from vcompile.ir.graph import Attrs
    if len(inputs) != len(region.inputs):
        raise BuildError(f"{op}: {len(inputs)} inputs for a region of {len(region.inputs)}")
    for v, r in zip(inputs, region.inputs):
        if v.type != r.type:
            raise BuildError(f"{op}: input {v.type} does not match region input {r.type}")
    return Attrs(attrs), tuple(v.type for v in region.outputs)


class Builder:
    """Appends nodes to a graph under construction.

    >>> bb = Builder("block")
    >>> x = bb.input((1, 3, 8, 8), hint="x")
    >>> y = bb.emit("relu", x, hint="y")
    >>> g = bb.build(y)
    """

    def __init__(self, name: str = "main") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.consts: dict[Value, np.ndarray] = {}

    def input(self, shape: Sequence[Dim] | TensorType, dtype: str = "f32", hint: str = "x") -> Value:
        t = shape if isinstance(shape, TensorType) else TensorType(dtype, tuple(shape))
        v = Value(t, hint)
        self.inputs.append(v)
        return v

    def const(self, array: Any, hint: str = "c", dtype: str | None = None) -> Value:
        arr = np.array(array, dtype=None if dtype is None else TensorType(dtype, ()).np_dtype)
        if arr.dtype == np.float64 and dtype is None and not isinstance(array, np.ndarray):
            arr = arr.astype(np.float32)  # Python floats default to f32, the IR's working type
        v = Value(TensorType.of(arr), hint)
        self.consts[v] = arr
        return v

    def emit(self, op: str, *inputs: Value, hint: str = "", loc: str = "", **attrs: Any) -> Value:
        """Append a one-output node and return its output."""
        outs = self.emit_multi(op, *inputs, hint=hint, loc=loc, **attrs)
        if len(outs) != 1:
            raise BuildError(f"{op} has {len(outs)} outputs; use emit_multi")
        return outs[0]

    def emit_multi(self, op: str, *inputs: Value, hint: str = "", loc: str = "",
                   region: Graph | None = None, **attrs: Any) -> tuple[Value, ...]:
        full, types = infer_node(op, inputs, attrs, region)
        outs = tuple(Value(t, hint) for t in types)
        self.nodes.append(Node(op, tuple(inputs), outs, full, loc, region))
        return outs

    def build(self, *outputs: Value) -> Graph:
        return Graph(self.name, tuple(self.inputs), tuple(self.nodes), tuple(outputs),
                     dict(self.consts))
