"""Dtype census and the integer region: what `vcompile inspect --dtypes` reports.

    dtype_census(g)               {dtype of the op's first output: {op: count}}
    integer_region(g)             the nodes on a path from a quantize_linear to a
                                  dequantize_linear, those ops themselves excluded
    float_ops_in_integer_region   the region's nodes that read or write a float tensor

Fused nodes are looked through: their bodies' ops are counted and walked, a body's
inputs and outputs standing for the fused node's (so the region crosses kernels).
After `lower-integer`, an --int8 graph has no float op inside its integer region; in the
QDQ form before it, every compute op between the pairs is still float.
"""
from __future__ import annotations

from collections import Counter, deque

from vcompile.ir.graph import Graph, Node, Value

BOUNDARY = frozenset({"quantize_linear", "dequantize_linear"})
FLOAT_PREFIXES = ("f", "bf")


def _is_float(v: Value) -> bool:
    return v.type.dtype.startswith(FLOAT_PREFIXES)


def flat_nodes(g: Graph) -> list[tuple[Node, tuple[Value, ...]]]:
    """Every op node, fused bodies inlined, with its inputs resolved to the values that
    feed them in the flat graph (a body input resolves to the outer value)."""
    out: list[tuple[Node, tuple[Value, ...]]] = []
    alias: dict[Value, Value] = {}

    def resolve(v: Value) -> Value:
        while v in alias:
            v = alias[v]
        return v

    def walk(graph: Graph) -> None:
        for n in graph.nodes:
            if n.region is None:
                out.append((n, tuple(resolve(v) for v in n.inputs)))
                continue
            for rv, v in zip(n.region.inputs, n.inputs, strict=True):
                alias[rv] = resolve(v)
            walk(n.region)
            for v, rv in zip(n.outputs, n.region.outputs, strict=True):
                if v is not rv:
                    alias[v] = resolve(rv)
    walk(g)
    return out


def dtype_census(g: Graph) -> dict[str, Counter[str]]:
    """Ops grouped by the dtype of their (first) output, fused bodies counted op by op."""
    census: dict[str, Counter[str]] = {}
    for n, _ in flat_nodes(g):
        dt = n.outputs[0].type.dtype if n.outputs else "none"
        census.setdefault(dt, Counter())[n.op] += 1
    return census


def integer_region(g: Graph) -> set[Node]:
    """Nodes reachable from a quantize_linear that reach a dequantize_linear, minus
    quantize_linear/dequantize_linear nodes (the region's boundary)."""
    flat = flat_nodes(g)
    prod: dict[Value, Node] = {v: n for n, _ in flat for v in n.outputs}
    succ: dict[Node, list[Node]] = {n: [] for n, _ in flat}
    pred: dict[Node, list[Node]] = {n: [] for n, _ in flat}
    for n, ins in flat:
        for v in ins:
            p = prod.get(v)
            if p is not None:
                succ[p].append(n)
                pred[n].append(p)
    fwd = _reach([n for n, _ in flat if n.op == "quantize_linear"], succ)
    bwd = _reach([n for n, _ in flat if n.op == "dequantize_linear"], pred)
    return {n for n in fwd & bwd if n.op not in BOUNDARY}


def _reach(starts: list[Node], edges: dict[Node, list[Node]]) -> set[Node]:
    """Nodes strictly after `starts` along `edges` (the starts only if reached again)."""
    seen: set[Node] = set()
    todo = deque(m for s in starts for m in edges[s])
    while todo:
        n = todo.popleft()
        if n not in seen:
            seen.add(n)
            todo.extend(edges[n])
    return seen


def float_ops_in_integer_region(g: Graph) -> list[Node]:
    """The integer region's nodes with a float input or output, in graph order."""
    region = integer_region(g)
    return [n for n, ins in flat_nodes(g)
            if n in region and any(_is_float(v) for v in ins + n.outputs)]


def format_census(g: Graph) -> str:
    """The `inspect --dtypes` table: one row per dtype, then the integer-region line."""
    census = dtype_census(g)
    rows = sorted(census.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    lines = [f"{'dtype':<6} {'ops':>5}  by op"]
    for dt, ops in rows:
        detail = ", ".join(f"{op} {k}" for op, k in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"{dt:<6} {sum(ops.values()):>5}  {detail}")
    bad = float_ops_in_integer_region(g)
    lines.append(f"integer region: {len(integer_region(g))} ops")
    line = f"float ops inside the integer region: {len(bad)}"
    if bad:
        line += " (" + ", ".join(f"{op} {k}" for op, k in Counter(n.op for n in bad).most_common()) + ")"
    lines.append(line)
    return "\n".join(lines) + "\n"
