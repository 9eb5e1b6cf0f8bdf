"""Graph statistics: op counts, parameter count and FLOPs, computed from types alone.

`graph_stats(g)` counts, and `format_stats(stats)` prints them as a table. FLOPs
follow one table, `FLOP_RULES`, keyed by op; a multiply-add counts as 2 FLOPs:

    conv{1,2,3}d          2 * out_elems * (C_in / groups) * prod(kernel)
    conv_transpose{1,2,3}d 2 * in_elems * (C_out / groups) * prod(kernel)
    matmul, gemm          2 * out_elems * K
    einsum                2 * prod(size of every distinct letter)
    elementwise ops       1 per output element (a transcendental counts as 1)
    reduce_*              1 per input element
    {max,avg}_pool*       1 per window tap: out_elems * prod(kernel)
    softmax, log_softmax  5 per element (max, subtract, exp, sum, divide)
    batch_norm            2 per element (inference: one scale, one shift)
    layer/group/instance_norm  7 per element (mean, center, square, sum, normalize,
                          scale, shift)
    qconv2d, qlinear, qmatmul, shiftmax, ilayernorm: as their float twins (integer ops)
    everything else       0 (shape ops, gather, pad, cast, identity, resize)

NOTE: biases of conv and gemm are not counted (they are under 0.1% of a conv net and
the usual convention, e.g. resnet18 = 1.82 G multiply-adds = 3.64 GFLOP, leaves them
out). Symbolic dims count as 1, so FLOPs of a graph with a batch `N` are per N = 1.
The parameter count is the number of elements of the float constants the graph uses.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vcompile.ir.graph import Graph, Node, op_counts, used_consts
from vcompile.ir.ops import OPS
from vcompile.ir.types import FLOAT_DTYPES, Dim, TensorType


def _numel(t: TensorType) -> int:
    return math.prod(d if isinstance(d, int) else 1 for d in t.shape)


def _dims(shape: tuple[Dim, ...]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else 1 for d in shape)


def _conv(n: Node) -> int:
    w = _dims(n.inputs[1].shape)  # (O, C/groups, k...)
    return 2 * _numel(n.outputs[0].type) * math.prod(w[1:])


def _conv_transpose(n: Node) -> int:
    w = _dims(n.inputs[1].shape)  # (C, O/groups, k...)
    return 2 * _numel(n.inputs[0].type) * math.prod(w[1:])


def _matmul(n: Node) -> int:
    return 2 * _numel(n.outputs[0].type) * _dims(n.inputs[0].shape)[-1]


def _gemm(n: Node) -> int:
    a = _dims(n.inputs[0].shape)
    k = a[0] if n.attrs["trans_a"] else a[1]
    return 2 * _numel(n.outputs[0].type) * k


def _linear(n: Node) -> int:
    return 2 * _numel(n.outputs[0].type) * _dims(n.inputs[1].shape)[0]


def _attention(n: Node) -> int:
    """Q @ KT and P @ V (2 FLOPs per multiply-add each) plus the softmax's 5 per score."""
    q, k, v = (_dims(x.shape) for x in n.inputs[:3])
    rows, m, d, e = math.prod(q[:-1]), k[-2], q[-1], v[-1]
    return rows * m * (2 * d + 2 * e + 5)


def _einsum_letters(n: Node) -> dict[str, int]:
    """Size of each letter; an ellipsis becomes fresh upper-case letters, right-aligned."""
    lhs = str(n.attrs["equation"]).replace(" ", "").split("->")[0]
    terms = lhs.split(",")
    n_ell = max((len(v.shape) - len(t.replace("...", "")) for t, v in zip(terms, n.inputs, strict=True)
                 if "..." in t), default=0)
    fresh = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:n_ell]
    size: dict[str, int] = {}
    for term, v in zip(terms, n.inputs, strict=True):
        shape = _dims(v.shape)
        if "..." in term:
            k = len(shape) - len(term.replace("...", ""))
            term = term.replace("...", fresh[n_ell - k:])
        for c, d in zip(term, shape, strict=True):
            size[c] = max(size.get(c, 1), d)
    return size


def _einsum(n: Node) -> int:
    return 2 * math.prod(_einsum_letters(n).values())


def _per_out(k: int) -> Callable[[Node], int]:
    return lambda n: k * sum(_numel(v.type) for v in n.outputs[:1])


def _per_in(k: int) -> Callable[[Node], int]:
    return lambda n: k * _numel(n.inputs[0].type)


def _pool(n: Node) -> int:
    return _numel(n.outputs[0].type) * math.prod(int(k) for k in n.attrs["kernel"])  # type: ignore[union-attr]


_FREE = frozenset({"identity", "cast"})  # data movement, no arithmetic

FLOP_RULES: dict[str, Callable[[Node], int]] = {
    **{f"conv{d}d": _conv for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": _conv_transpose for d in (1, 2, 3)},
    **{f"{p}_pool{d}d": _pool for p in ("max", "avg") for d in (1, 2, 3)},
    "matmul": _matmul, "gemm": _gemm, "einsum": _einsum, "linear": _linear,
    "attention": _attention,
    # integer ops count integer operations the same way (OPs, with "FLOPs" as the name)
    "qconv2d": _conv, "depthwise_conv2d_nhwc": _conv, "qlinear": _linear, "qmatmul": _matmul,
    "shiftmax": _per_out(5), "ilayernorm": _per_out(7),
    **{r: _per_in(1) for r in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min",
                               "reduce_prod")},
    "softmax": _per_out(5), "log_softmax": _per_out(5),
    "batch_norm": _per_out(2),
    "layer_norm": _per_out(7), "group_norm": _per_out(7), "instance_norm": _per_out(7),
}


def node_flops(n: Node) -> int:
    """FLOPs of one node by `FLOP_RULES`; elementwise ops not listed there cost 1 per element."""
    if n.region is not None:
        return sum(node_flops(m) for m in n.region.nodes)
    rule = FLOP_RULES.get(n.op)
    if rule is not None:
        return rule(n)
    op = OPS.get(n.op)
    if op is not None and op.kind == "elementwise" and n.op not in _FREE:
        return _per_out(1)(n)
    return 0


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


def graph_stats(g: Graph) -> Stats:
    """Op counts, parameters and FLOPs of `g` (nodes inside fused regions count as theirs)."""
    nodes = all_nodes(g)
    flops: dict[str, int] = {}
    for n in nodes:
        flops[n.op] = flops.get(n.op, 0) + node_flops(n)
    params = [a for v, a in used_consts(g).items() if v.dtype in FLOAT_DTYPES]
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
