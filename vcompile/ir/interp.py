"""The reference interpreter: runs a graph on numpy arrays with each op's numpy eval.

`run(graph, *arrays) -> list[np.ndarray]` is the semantics every pass and backend
is checked against. Symbolic dims bind to the inputs' sizes; intermediate arrays
are dropped after their last use so that large models fit in memory.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vcompile.errors import VcompileError
from vcompile.ir.graph import Attrs, Graph, Node, Value
from vcompile.ir.ops import OPS
from vcompile.ir.printer import print_node
from vcompile.ir.types import dtype_of


class InterpError(VcompileError, ValueError):
    """Inputs that do not fit the graph, or an op that failed while evaluating."""


def _check_inputs(g: Graph, arrays: tuple[Any, ...]) -> tuple[list[np.ndarray], dict[str, int]]:
    if len(arrays) != len(g.inputs):
        raise InterpError(f"graph @{g.name} takes {len(g.inputs)} inputs, got {len(arrays)}")
    bindings: dict[str, int] = {}
    out = []
    for i, (v, a) in enumerate(zip(g.inputs, arrays, strict=True)):
        arr = np.asarray(a)
        before = dict(bindings)
        if not v.type.matches(arr, bindings):
            bound = [f"{d}={before[d]}" for d in v.type.shape if isinstance(d, str) and d in before]
            why = f" ({', '.join(bound)} from earlier inputs)" if bound else ""
            raise InterpError(f"input {i} (%{v.hint or '?'}) must be {v.type}{why}, got "
                              f"{_describe(arr)}")
        out.append(arr)
    return out, bindings


def _describe(arr: np.ndarray) -> str:
    """An array's type in IR spelling (`f64[2,3]`), or numpy's name for other dtypes."""
    try:
        dt = dtype_of(arr)
    except TypeError:
        dt = arr.dtype.name
    return f"{dt}[{','.join(map(str, arr.shape))}]"


def _bind(attrs: Attrs, op: str, bindings: Mapping[str, int]) -> Attrs:
    """Substitute bound symbols into "dims" attrs (e.g. reshape's target shape)."""
    if not bindings:
        return attrs
    dims_keys = [k for k, s in OPS[op].attrs.items() if s.kind == "dims"]
    subst = {k: tuple(bindings.get(d, d) if isinstance(d, str) else d for d in attrs.dims(k))
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


def run(graph: Graph, *arrays: Any,
        observe: Callable[[Value, np.ndarray], None] | None = None) -> list[np.ndarray]:
    """Evaluate `graph` on `arrays` (one per graph input); returns one array per output.
    `observe(value, array)` sees every input and every node output as it is computed
    (calibration folds them into statistics before they are freed)."""
    inputs, bindings = _check_inputs(graph, arrays)
    env: dict[Value, np.ndarray] = dict(graph.consts)
    env.update(zip(graph.inputs, inputs, strict=True))
    if observe is not None:
        for v, a in zip(graph.inputs, inputs, strict=True):
            observe(v, a)
    dead = _last_uses(graph)
    for i, n in enumerate(graph.nodes):
        try:
            results = _eval_node(n, [env[v] for v in n.inputs], bindings)
        except Exception as e:
            raise InterpError(f"evaluating {n.op} failed: {type(e).__name__}: {e}"
                              f"{_where(n)}") from e
        if len(results) != len(n.outputs):
            raise InterpError(f"{n.op} eval gave {len(results)} results for {len(n.outputs)} "
                              f"outputs (a bug in the op's eval){_where(n)}")
        for v, r in zip(n.outputs, results, strict=True):
            r = np.asarray(r)
            # NOTE: checked, never cast: constant folding calls eval directly, so an
            # eval that disagrees with infer must fail here, where the node is known.
            if not v.type.matches(r, bindings):
                raise InterpError(f"{n.op} eval returned {_describe(r)} for an output declared "
                                  f"{v.type} (a bug in the op's eval or infer){_where(n)}")
            env[v] = r
            if observe is not None:
                observe(v, r)
        del results
        for v in dead.get(i, ()):
            del env[v]
    return [env[v] for v in graph.outputs]


def _where(n: Node) -> str:
    return f"\n  in: {print_node(n)}" + (f"\n  from source node {n.loc!r}" if n.loc else "")
