"""Builds graphs op by op: every `emit` fills default attrs and infers output types
from the op table, so a graph made by a Builder is well-typed by construction."""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np

from vcompile.errors import VcompileError
from vcompile.ir.graph import Attrs, Graph, Node, Value
from vcompile.ir.ops import OPS
from vcompile.ir.ops.registry import AttrError, AttrSpec, ShapeError
from vcompile.ir.types import Dim, TensorType


class BuildError(VcompileError, ValueError):
    """An op that cannot be emitted: unknown op, bad arity or attrs, ill-typed inputs."""


def infer_node(op: str, inputs: Sequence[Value], attrs: Mapping[str, Any],
               region: Graph | None = None) -> tuple[Attrs, tuple[TensorType, ...]]:
    """Fill default attrs and infer output types; raises BuildError with the reason."""
    for i, v in enumerate(inputs):
        if not isinstance(v, Value):
            raise BuildError(f"input {i} of {op} is a {type(v).__name__}, not a Value; "
                             "wrap arrays with Builder.const")
    if region is not None:
        return _infer_region(op, inputs, attrs, region)
    if op not in OPS:
        close = difflib.get_close_matches(op, OPS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise BuildError(f"unknown op {op!r}{hint} (the op table is vcompile.ir.ops.OPS)")
    opdef = OPS[op]
    if not opdef.arity_ok(len(inputs)):
        lo, hi = opdef.arity
        want = f"{lo}" if lo == hi else f"{lo} to {hi if hi is not None else 'any'}"
        raise BuildError(f"{op} takes {want} inputs, got {len(inputs)}")
    try:
        full = _canonical(opdef.fill_defaults(attrs), opdef.attrs)
        for k, spec in opdef.attrs.items():
            if not spec.check(full[k]):
                raise AttrError(f"{op}: attr {k}={full[k]!r} is not of kind {spec.kind}")
        types = opdef.infer([v.type for v in inputs], full)
    except (AttrError, ShapeError) as e:
        raise BuildError(str(e)) from e
    except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as e:
        ins = ", ".join(str(v.type) for v in inputs)
        raise BuildError(f"{op}: type inference failed on ({ins}) with {dict(full)}: "
                         f"{type(e).__name__}: {e}") from e
    want_n = opdef.num_outputs(full, len(inputs))
    if len(types) != want_n:
        raise BuildError(f"{op}: infer gave {len(types)} outputs, expected {want_n}")
    return full, tuple(types)


def _canonical(attrs: Attrs, specs: Mapping[str, AttrSpec]) -> Attrs:
    """Ints given for float attrs become floats, so `clip(min=0)` and `clip(min=0.0)`
    are one node (Attrs equality is exact: 0 != 0.0)."""
    fix: dict[str, Any] = {}
    for k, spec in specs.items():
        v = attrs[k]
        if spec.kind == "float" and _is_int(v):
            fix[k] = float(v)
        elif spec.kind == "floats" and isinstance(v, tuple) and any(_is_int(x) for x in v):
            fix[k] = tuple(float(x) if _is_int(x) else x for x in v)
    return attrs.replace(**fix) if fix else attrs


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _infer_region(op: str, inputs: Sequence[Value], attrs: Mapping[str, Any],
                  region: Graph) -> tuple[Attrs, tuple[TensorType, ...]]:
    """A region node (a fused kernel) is typed by its body: its inputs must have the
    region's input types exactly (symbols included) and its outputs get the
    region's output types. Its op is a free-form identifier that must not name a
    registered op (so no pattern mistakes it for one); its attrs are free-form."""
    if not op.isidentifier() or op in OPS:
        raise BuildError(f"a region node's op must be an identifier that is not a registered "
                         f"op (such as 'fused'), got {op!r}")
    if len(inputs) != len(region.inputs):
        raise BuildError(f"{op}: {len(inputs)} inputs for a region of {len(region.inputs)}")
    for i, (v, r) in enumerate(zip(inputs, region.inputs, strict=True)):
        if v.type != r.type:
            raise BuildError(f"{op}: input {i} is {v.type} but region input {i} is {r.type}")
    try:
        full = Attrs(attrs)
    except TypeError as e:
        raise BuildError(f"{op}: {e}") from e
    bad = [k for k in full if not k.isidentifier()]
    if bad:
        raise BuildError(f"{op}: attr names must be identifiers, got {', '.join(map(repr, bad))}")
    return full, tuple(v.type for v in region.outputs)


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
        arr.flags.writeable = False  # our own copy: Graph shares it instead of copying
        v = Value(TensorType.of(arr), hint)
        self.consts[v] = arr
        return v

    def emit(self, op: str, *inputs: Value, hint: str = "", loc: str = "",
             region: Graph | None = None, **attrs: Any) -> Value:
        """Append a one-output node and return its output."""
        full, types = infer_node(op, inputs, attrs, region)
        if len(types) != 1:
            raise BuildError(f"{op} has {len(types)} outputs; use emit_multi")
        return self._append(op, inputs, full, types, hint, loc, region)[0]

    def emit_multi(self, op: str, *inputs: Value, hint: str = "", loc: str = "",
                   region: Graph | None = None, **attrs: Any) -> tuple[Value, ...]:
        """Append a node and return all its outputs. With `region`, the node is a
        fused kernel whose body is the region graph (see `_infer_region`)."""
        full, types = infer_node(op, inputs, attrs, region)
        return self._append(op, inputs, full, types, hint, loc, region)

    def _append(self, op: str, inputs: Sequence[Value], attrs: Attrs,
                types: Sequence[TensorType], hint: str, loc: str,
                region: Graph | None) -> tuple[Value, ...]:
        outs = tuple(Value(t, hint) for t in types)
        self.nodes.append(Node(op, tuple(inputs), outs, attrs, loc, region))
        return outs

    def build(self, *outputs: Value) -> Graph:
        return Graph(self.name, tuple(self.inputs), tuple(self.nodes), tuple(outputs),
                     dict(self.consts))
