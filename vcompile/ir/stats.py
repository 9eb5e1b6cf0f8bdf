"""Graph statistics: op counts, parameter count and FLOPs, computed from types alone.

`graph_stats(g)` counts, and `format_stats(stats)` prints them as a table. Each op's
FLOP rule is a trait of its op table entry (`OpDef.flops`; the rules and their
conventions are in `ir.ops.flops`): a multiply-add counts as 2 FLOPs, an elementwise op
without a rule costs 1 per output element, and any other op without one costs 0 (shape
ops, gather, pad, resize).

NOTE: biases of conv and gemm are not counted (they are under 0.1% of a conv net and
the usual convention, e.g. resnet18 = 1.82 G multiply-adds = 3.64 GFLOP, leaves them
out). Symbolic dims count as 1, so FLOPs of a graph with a batch `N` are per N = 1.
The parameter count is the number of elements of the float constants the graph uses,
those inside fused nodes' regions included (fusion moves weights into regions), each
array counted once: passes that only move or re-lay weights keep it, and folding a
BatchNorm into a conv removes the BatchNorm's own 4 x C (scale, shift, mean, variance)
while the conv keeps its weight and bias.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from vcompile.ir.graph import Graph, Node, op_counts, used_consts
from vcompile.ir.ops import OPS
from vcompile.ir.ops.flops import per_out
from vcompile.ir.types import FLOAT_DTYPES, TensorType

# The ops that declare a FLOP rule, op -> rule (read off the table, for tests and tools).
FLOP_RULES: dict[str, Callable[[Node], int]] = {
    name: op.flops for name, op in OPS.items() if op.flops is not None}


def node_flops(n: Node) -> int:
    """FLOPs of one node by its op's `flops` rule; an elementwise op without one costs 1
    per element."""
    if n.region is not None:
        return sum(node_flops(m) for m in n.region.nodes)
    op = OPS.get(n.op)
    if op is None:
        return 0
    if op.flops is not None:
        return op.flops(n)
    return per_out(1)(n) if op.kind == "elementwise" else 0


@dataclass(frozen=True)
class Stats:
    name: str
    op_counts: Mapping[str, int]            # op -> nodes, sorted by op
    op_flops: Mapping[str, int]             # op -> FLOPs of all its nodes
    params: int                             # elements of the float constants used
    param_bytes: int
    flops: int
    inputs: tuple[TensorType, ...] = ()
    outputs: tuple[TensorType, ...] = ()
    symbols: tuple[str, ...] = field(default=())  # symbolic dims, counted as 1

    @property
    def nodes(self) -> int:
        return sum(self.op_counts.values())


def all_nodes(g: Graph) -> list[Node]:
    """Every node of `g`, with each fused node replaced by the nodes of its region."""
    out: list[Node] = []
    for n in g.nodes:
        out.extend(all_nodes(n.region) if n.region is not None else [n])
    return out


def param_arrays(g: Graph) -> list[np.ndarray]:
    """The float constants `g` uses, at top level and in every region, each array once
    (a weight shared by several nodes or regions is one parameter tensor)."""
    seen: dict[int, np.ndarray] = {}

    def collect(h: Graph) -> None:
        for v, a in used_consts(h).items():
            if v.dtype in FLOAT_DTYPES:
                seen.setdefault(id(a), a)
        for n in h.nodes:
            if n.region is not None:
                collect(n.region)

    collect(g)
    return list(seen.values())


def graph_stats(g: Graph) -> Stats:
    """Op counts, parameters and FLOPs of `g` (nodes inside fused regions count as theirs)."""
    nodes = all_nodes(g)
    flops: dict[str, int] = {}
    for n in nodes:
        flops[n.op] = flops.get(n.op, 0) + node_flops(n)
    params = param_arrays(g)
    types = [v.type for v in g.inputs] + [v.type for n in nodes for v in n.outputs]
    symbols = sorted({d for t in types for d in t.shape if isinstance(d, str)})
    return Stats(name=g.name, op_counts=op_counts(g.replace(nodes=tuple(nodes))),
                 op_flops=dict(sorted(flops.items())), params=sum(a.size for a in params),
                 param_bytes=sum(a.nbytes for a in params), flops=sum(flops.values()),
                 inputs=tuple(v.type for v in g.inputs), outputs=tuple(v.type for v in g.outputs),
                 symbols=tuple(symbols))


def _si(x: float, unit: str) -> str:
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f} {prefix}{unit}"
    return f"{x:.0f} {unit}"


def format_stats(s: Stats) -> str:
    """A plain-text table: one row per op (count, FLOPs, share of FLOPs), then totals."""
    width = max([len(op) for op in s.op_counts] + [5])
    lines = [f"graph @{s.name}: inputs {', '.join(map(str, s.inputs)) or '-'} -> "
             f"outputs {', '.join(map(str, s.outputs)) or '-'}",
             f"{'op':<{width}}  {'count':>6}  {'FLOPs':>15}  {'%':>5}"]
    for op, count in s.op_counts.items():
        f = s.op_flops.get(op, 0)
        share = f"{100 * f / s.flops:5.1f}" if s.flops else f"{0:5.1f}"
        lines.append(f"{op:<{width}}  {count:>6}  {f:>15,}  {share}")
    lines.append(f"{'total':<{width}}  {s.nodes:>6}  {s.flops:>15,}  {100 if s.flops else 0:5.1f}")
    lines.append(f"parameters: {s.params:,} ({_si(s.params, '').strip()}, {s.param_bytes / 2**20:.1f} MiB)")
    per = f" per {', '.join(f'{d}=1' for d in s.symbols)}" if s.symbols else ""
    lines.append(f"FLOPs: {s.flops:,} ({s.flops / 1e9:.3f} GFLOP{per}; multiply-add = 2 FLOPs)")
    return "\n".join(lines) + "\n"
