"""The fallback of `lower-integer` for elementwise float chains without an integer rule:
a chain of elementwise ops (scalar constants only) from one 8-bit per-tensor dequantized
input x to a quantize_linear is a function of x's 256 values, so it becomes a table:

    quantize_linear(f(dequantize_linear(x, s_x, z_x)), s_y, z_y)
      => gather(T, cast<i32>(x) - min(x's dtype))     T[i] = Q(f(DQ(min + i)))   (256 entries)

T is computed with the ops' own evals and quantize_linear's, so the lookup is bit-exact
with the QDQ form (ONNX Runtime's QDQ GELU spells `erf(x / sqrt(2))` with a quantize
after the erf; LeakyReLU arrives as less/mul/where). Integer-only: a cast, an add and a
gather. Tried only after the dedicated rules (Shiftmax, ShiftGELU, ...) decline.
"""
from __future__ import annotations

import numpy as np

from vcompile.ir.graph import Attrs, Node, Value
from vcompile.ir.ops import OPS
from vcompile.passes.infra.pattern import Match, RewriteBuilder
from vcompile.passes.integer.qparams import OUT_DTYPES, QOut, QParams, dequantized

MAX_CHAIN = 8


def _chain(m: Match, y: Value) -> tuple[list[Node], QParams] | None:
    """The elementwise nodes computing y (topological order) and their one 8-bit input."""
    nodes: list[Node] = []
    src: QParams | None = None
    stack = [y]
    while stack:
        v = stack.pop()
        n = m.ed.producer.get(v)
        dq = dequantized(m, v)
        if dq is not None:
            if (src is not None and src.q is not dq.q) or not dq.per_tensor or dq.q.dtype not in ("i8", "u8"):
                return None
            src = dq
            continue
        if m.const_of(v) is not None:
            if m.const_of(v).size != 1:  # type: ignore[union-attr]
                return None
            continue
        if n is None or OPS[n.op].kind != "elementwise" or len(n.outputs) != 1 or len(nodes) >= MAX_CHAIN:
            return None
        if v is not y and m.ed.uses[v] != 1:
            return None  # NOTE: an intermediate used elsewhere would be computed twice
        if n not in nodes:
            nodes.append(n)
            stack.extend(n.inputs)
    order = {id(n): i for i, n in enumerate(m.ed.nodes)}
    if src is None or not nodes or any(id(n) not in order for n in nodes):
        return None
    return sorted(nodes, key=lambda n: order[id(n)]), src


def _table(m: Match, nodes: list[Node], src: QParams, out: QOut) -> np.ndarray:
    info = np.iinfo(src.q.type.np_dtype)
    q = np.arange(info.min, info.max + 1).astype(src.q.type.np_dtype)
    dq = m.ed.producer[next(v for n in nodes for v in n.inputs if dequantized(m, v) is not None)]
    env: dict[Value, np.ndarray] = {}
    for v in (x for n in nodes for x in n.inputs):
        if dequantized(m, v) is not None:
            env[v] = OPS["dequantize_linear"].eval([q, *(m.const_of(u) for u in dq.inputs[1:])],  # type: ignore[list-item]
                                                   dq.attrs)[0]
        elif m.const_of(v) is not None:
            env[v] = m.const_of(v).reshape(())  # type: ignore[union-attr]
    for n in nodes:
        (env[n.outputs[0]],) = OPS[n.op].eval([env[v] for v in n.inputs], n.attrs)
    y = env[nodes[-1].outputs[0]]
    s, z = np.array(out.s, np.float32), np.array(out.z, OUT_DTYPES[out.dtype])
    (t,) = OPS["quantize_linear"].eval([y, s, z], Attrs(axis=0, saturate=True))
    lo, hi = out.clip or out.qrange()
    return np.clip(t, lo, hi).astype(t.dtype)


def lower_lookup(m: Match, bb: RewriteBuilder, y: Value, out: QOut) -> Value | None:
    got = _chain(m, y)
    if got is None or got[1].q.type.shape != y.type.shape:
        return None
    nodes, src = got
    table = bb.const(_table(m, nodes, src, out), hint="lut")
    idx = bb.emit("cast", src.q, to="i32")
    low = int(np.iinfo(src.q.type.np_dtype).min)
    if low:
        idx = bb.emit("sub", idx, bb.const(np.int32(low), hint="lo"))
    return bb.emit("gather", table, idx, axis=0)
