"""The reference interpreter: runs a graph on numpy arrays with each op's numpy eval.

`run(graph, *arrays) -> list[np.ndarray]` is the semantics every pass and backend
is checked against. Symbolic dims bind to the inputs' sizes; intermediate arrays
are dropped after their last use so that large models fit in memory.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vcompile.errors import VcompileError
from vcompile.ir.graph import Attrs, Graph, Node, Value
from vcompile.ir.ops import OPS


class InterpError(VcompileError, ValueError):
    """Inputs that do not fit the graph, or an op that failed while evaluating."""


def _check_inputs(g: Graph, arrays: tuple[Any, ...]) -> tuple[list[np.ndarray], dict[str, int]]:
    if len(arrays) != len(g.inputs):
        raise InterpError(f"graph @{g.name} takes {len(g.inputs)} inputs, got {len(arrays)}")
    bindings: dict[str, int] = {}
    out = []
    for i, (v, a) in enumerate(zip(g.inputs, arrays)):
        arr = np.asarray(a)
        if not v.type.matches(arr, bindings):
            raise InterpError(f"input {i} ({v.hint or '?'}) must be {v.type}, got "
                              f"{arr.dtype.name}{list(arr.shape)}")
        out.append(arr)
    return out, bindings


def _bind(attrs: Attrs, op: str, bindings: Mapping[str, int]) -> Attrs:
    """Substitute bound symbols into "dims" attrs (e.g. reshape's target shape)."""
    if not bindings:
        return attrs
    dims_keys = [k for k, s in OPS[op].attrs.items() if s.kind == "dims"]
    subst = {k: tuple(bindings.get(d, d) if isinstance(d, str) else d for d in attrs[k])  # type: ignore[union-attr]
             for k in dims_keys}
    return attrs.replace(**subst) if subst else attrs


def _last_uses(g: Graph) -> dict[int, list[Value]]:
    keep = set(g.outputs)
    last: dict[Value, int] = {}
    for i, n in enumerate(g.nodes):
        for v in n.inputs:
            last[v] = i
    by_node: dict[int, list[Value]] = {}
    for v, i in last.items():
        if v not in keep and v not in g.consts:
            by_node.setdefault(i, []).append(v)
    return by_node


def _eval_node(n: Node, args: list[np.ndarray], bindings: Mapping[str, int]) -> tuple[np.ndarray, ...]:
    if n.region is not None:
        return tuple(run(n.region, *args))
    with np.errstate(all="ignore"):  # inf/nan follow IEEE, as on the targets
        return OPS[n.op].eval(args, _bind(n.attrs, n.op, bindings))


def run(graph: Graph, *arrays: Any) -> list[np.ndarray]:
    """Evaluate `graph` on `arrays` (one per graph input); returns one array per output."""
    inputs, bindings = _check_inputs(graph, arrays)
    env: dict[Value, np.ndarray] = dict(graph.consts)
    env.update(zip(graph.inputs, inputs))
    dead = _last_uses(graph)
    for i, n in enumerate(graph.nodes):
        try:
            results = _eval_node(n, [env[v] for v in n.inputs], bindings)
        except Exception as e:
            where = f" (source node {n.loc!r})" if n.loc else ""
            raise InterpError(f"evaluating {n.op}{where} failed: {type(e).__name__}: {e}") from e
        for v, r in zip(n.outputs, results):
            r = np.asarray(r)
            if r.dtype != v.type.np_dtype:
                r = r.astype(v.type.np_dtype)
            env[v] = r
        for v in dead.get(i, ()):
            del env[v]
    return [env[v] for v in graph.outputs]
