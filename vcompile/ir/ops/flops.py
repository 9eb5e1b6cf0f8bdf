"""FLOP rules that op entries name as `flops=` (`OpDef.flops`), computed from types alone.

A multiply-add counts as 2 FLOPs:

    conv{1,2,3}d          2 * out_elems * (C_in / groups) * prod(kernel)
    conv_transpose{1,2,3}d 2 * in_elems * (C_out / groups) * prod(kernel)
    matmul, gemm, linear  2 * out_elems * K
    einsum                2 * prod(size of every distinct letter)
    attention             rows * keys * (2 * D + 2 * E + 5)
    elementwise ops       1 per output element (`flops=None`; a transcendental counts as 1)
    reduce_*              1 per input element
    {max,avg}_pool*       1 per window tap: out_elems * prod(kernel)
    softmax, log_softmax  5 per element (max, subtract, exp, sum, divide)
    batch_norm            2 per element (inference: one scale, one shift)
    layer/group/instance_norm  7 per element (mean, center, square, sum, normalize,
                          scale, shift)
    qconv2d, qlinear, qmatmul, shiftmax, ilayernorm: as their float twins (integer OPs)
    identity, cast        0 (`free`: data movement, no arithmetic)
    everything else       0 (`flops=None`: shape ops, gather, pad, resize)

NOTE: biases of conv and gemm are not counted (they are under 0.1% of a conv net and
the usual convention, e.g. resnet18 = 1.82 G multiply-adds = 3.64 GFLOP, leaves them
out). Symbolic dims count as 1, so FLOPs of a graph with a batch `N` are per N = 1.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from vcompile.ir.graph import Node
from vcompile.ir.types import Dim, TensorType


def numel(t: TensorType) -> int:
    return math.prod(d if isinstance(d, int) else 1 for d in t.shape)


def dims(shape: tuple[Dim, ...]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else 1 for d in shape)


def conv(n: Node) -> int:
    w = dims(n.inputs[1].shape)  # (O, C/groups, k...)
    return 2 * numel(n.outputs[0].type) * math.prod(w[1:])


def conv_transpose(n: Node) -> int:
    w = dims(n.inputs[1].shape)  # (C, O/groups, k...)
    return 2 * numel(n.inputs[0].type) * math.prod(w[1:])


def matmul(n: Node) -> int:
    return 2 * numel(n.outputs[0].type) * dims(n.inputs[0].shape)[-1]


def gemm(n: Node) -> int:
    a = dims(n.inputs[0].shape)
    k = a[0] if n.attrs["trans_a"] else a[1]
    return 2 * numel(n.outputs[0].type) * k


def linear(n: Node) -> int:
    return 2 * numel(n.outputs[0].type) * dims(n.inputs[1].shape)[0]


def attention(n: Node) -> int:
    """Q @ KT and P @ V (2 FLOPs per multiply-add each) plus the softmax's 5 per score."""
    q, k, v = (dims(x.shape) for x in n.inputs[:3])
    rows, m, d, e = math.prod(q[:-1]), k[-2], q[-1], v[-1]
    return rows * m * (2 * d + 2 * e + 5)


def _einsum_letters(n: Node) -> dict[str, int]:
    """Size of each letter; an ellipsis becomes fresh upper-case letters, right-aligned."""
    lhs = n.attrs.str("equation").replace(" ", "").split("->")[0]
    terms = lhs.split(",")
    n_ell = max((len(v.shape) - len(t.replace("...", "")) for t, v in zip(terms, n.inputs, strict=True)
                 if "..." in t), default=0)
    fresh = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:n_ell]
    size: dict[str, int] = {}
    for term, v in zip(terms, n.inputs, strict=True):
        shape = dims(v.shape)
        if "..." in term:
            k = len(shape) - len(term.replace("...", ""))
            term = term.replace("...", fresh[n_ell - k:])
        for c, d in zip(term, shape, strict=True):
            size[c] = max(size.get(c, 1), d)
    return size


def einsum(n: Node) -> int:
    return 2 * math.prod(_einsum_letters(n).values())


def pool(n: Node) -> int:
    return numel(n.outputs[0].type) * math.prod(n.attrs.ints("kernel"))


def per_out(k: int) -> Callable[[Node], int]:
    """k FLOPs per element of the first output."""
    return lambda n: k * sum(numel(v.type) for v in n.outputs[:1])


def per_in(k: int) -> Callable[[Node], int]:
    """k FLOPs per element of the first input."""
    return lambda n: k * numel(n.inputs[0].type)


def free(n: Node) -> int:
    """Data movement, no arithmetic (for elementwise ops that would otherwise count 1)."""
    return 0
