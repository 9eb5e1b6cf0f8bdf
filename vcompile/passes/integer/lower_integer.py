"""Lower a graph in QDQ form to integer-only ops (vcompile/ir/ops/integer.py).

    quantize_linear(op(dequantize_linear(x, s_x, z_x), ...), s_y, z_y)
      => requantize(integer_op(x, ...), dyadic(s_acc / s_y)) {zero_point=z_y}
    quantize_linear(relu|clip(op(...)), s_y, z_y)  => the same with the clip in requantize
    quantize_linear(dequantize_linear(x, s, z), s, z)  => x   (other params: a requantize)
    quantize_linear(float constant, s, z)               => integer constant
    quantize_linear(where(compare(dq x, k), a, b))      => where(compare(x, t), a', b')

Phase one (`qdq_sink`) moves dequantize_linear down and quantize_linear up through pure
layout ops, so that each compute op reads dequantized inputs and feeds a quantize_linear.
Phase two rewrites each quantize_linear whose input op has an integer form:
contractions and pools (`lower_contractions`), attention and the nonlinearities
(`lower_nonlinear`), elementwise ops (`lower_elementwise`); any other elementwise chain
on an 8-bit input becomes a 256-entry lookup table (`lower_lut`). An op without one (or whose
parameters do not fit: per-axis activations, 31-bit overflow) stays float between its
dequantize_linear and quantize_linear: a float island, counted by `note` as
"float island: <op>" and listed by `float_ops_in_integer_region`. The graph's outputs
stay float (the last dequantize_linear stays).

Runs after the -O2 rewrites (recognize made attention, gelu, layer_norm, linear) and
before `fuse`. A graph without quantize_linear comes back unchanged (the same object).
"""
from __future__ import annotations

import math

import numpy as np

from vcompile.ir.dtypes import float_ops_in_integer_region
from vcompile.ir.graph import Attrs, Graph, Node, Value
from vcompile.ir.ops import OPS
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, rewrite, rule
from vcompile.passes.infra.registry import note, register
from vcompile.passes.integer.contractions import CONTRACTIONS, Acc
from vcompile.passes.integer.elementwise import DIRECT, lower_sigmoid
from vcompile.passes.integer.lut import lower_lookup
from vcompile.passes.integer.nonlinear import (
    lower_attention,
    lower_gelu,
    lower_group_norm,
    lower_identity,
    lower_layer_norm,
    lower_silu,
    lower_softmax,
)
from vcompile.passes.integer.qdq_sink import sink_layout
from vcompile.passes.integer.qparams import OUT_DTYPES as OUT_NP
from vcompile.passes.integer.qparams import QOut, dequantized, quantized_out, rescale

__all__ = ["lower_integer"]

ACC = {**CONTRACTIONS, "attention": lower_attention, "gelu": lower_gelu, "silu": lower_silu,
       "layer_norm": lower_layer_norm, "group_norm": lower_group_norm, "sigmoid": lower_sigmoid,
       "dequantize_linear": lower_identity}
ACTIVATIONS = ("relu", "clip")


def _clipped(act: Node, out: QOut) -> QOut:
    """out with the activation's range, in out's integers, folded into its clip."""
    lo, hi = out.qrange()
    if act.op == "relu":
        lo = max(lo, out.z)
    else:
        a, b = act.attrs.float("min"), act.attrs.float("max")
        if np.isfinite(a):
            lo = max(lo, out.z + int(np.rint(a / out.s)))
        if np.isfinite(b):
            hi = min(hi, out.z + int(np.rint(b / out.s)))
    return QOut(out.s, out.z, out.dtype, (lo, max(lo, hi)))


def _unchanged(acc: Acc, out: QOut) -> bool:
    return (not out.clip and acc.zp == out.z and acc.value.dtype == out.dtype
            and np.size(acc.scale) == 1 and float(np.asarray(acc.scale).reshape(-1)[0]) == out.s)


def _emit(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Value | None:
    if n.op in DIRECT:
        return DIRECT[n.op](m, bb, n, out)
    if n.op == "where":
        return lower_where(m, bb, n, out)
    if n.op == "softmax":
        acc = lower_softmax(m, bb, n, out)
    elif n.op in ACC:
        acc = ACC[n.op](m, bb, n)
    else:
        return None
    if acc is None:
        return None
    if _unchanged(acc, out):
        return acc.value
    return rescale(bb, acc.value, acc.zp, acc.scale, out, acc.axis)


_FLIP = {"less": "greater", "greater": "less", "less_equal": "greater_equal",
         "greater_equal": "less_equal"}


def _int_condition(m: Match, bb: RewriteBuilder, c: Value) -> Value | None:
    """compare(dq x, scalar k) as the same comparison of x's integers with a threshold:
    (q - z) s < k  <=>  q < ceil(k / s + z), and so on (the QDQ form spells LeakyReLU so)."""
    n = m.ed.producer.get(c)
    if n is None or n.op not in _FLIP:
        return None
    op, (a, b) = n.op, n.inputs
    if m.const_of(a) is not None:
        op, a, b = _FLIP[op], b, a
    x, k = dequantized(m, a), m.const_of(b)
    if x is None or not x.per_tensor or k is None or k.size != 1:
        return None
    t = float(k.reshape(-1)[0]) / x.s + x.z
    t = math.ceil(t) if op in ("less", "greater_equal") else math.floor(t)
    info = np.iinfo(x.q.type.np_dtype)
    if not info.min <= t <= info.max:
        return None
    return bb.emit(op, x.q, bb.const(np.array(t, x.q.type.np_dtype), hint="t"))


def _branch(m: Match, bb: RewriteBuilder, v: Value, out: QOut) -> Value | None:
    arr = m.const_of(v)
    if arr is not None:  # a float constant in out's integers
        s, z = np.array(out.s, np.float32), np.array(out.z, OUT_NP[out.dtype])
        return bb.const(OPS["quantize_linear"].eval([arr, s, z], Attrs(axis=1, saturate=True))[0])
    n = m.ed.producer.get(v)
    if n is None or len(n.outputs) != 1 or (n.op != "dequantize_linear" and m.ed.uses[v] != 1):
        return None
    return _emit(m, bb, n, out)


def lower_where(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Value | None:
    """where(compare(dq x, k), a, b) => where(compare(x, t), a', b'), each branch lowered
    into out's parameters (one rounding each, as in the QDQ form)."""
    cond = _int_condition(m, bb, n.inputs[0])
    if cond is None:
        return None
    a, b = (_branch(m, bb, v, out) for v in n.inputs[1:])
    if a is None or b is None:
        return None
    return bb.emit("where", cond, a, b)


def _lower(m: Match, bb: RewriteBuilder, n: Node, out: QOut) -> Value | None:
    if n.op in ACTIVATIONS:
        inner = m.ed.producer.get(n.inputs[0])
        if inner is None or len(inner.outputs) != 1:
            return None
        if inner.op != "dequantize_linear" and m.ed.uses[n.inputs[0]] != 1:
            return None  # NOTE: the float op has another user: lowering it would compute it twice
        return _emit(m, bb, inner, _clipped(n, out))
    if n.op != "dequantize_linear" and m.ed.uses[n.outputs[0]] != 1:
        return None
    return _emit(m, bb, n, out) or lower_lookup(m, bb, n.outputs[0], out)


@rule(P.op("quantize_linear", P.any("y"), P.const(), P.const(), name="q"))
def lower_quantized(m: Match, bb: RewriteBuilder) -> Value | None:
    out = quantized_out(m, m.node("q"))
    arr = m.const_of(m["y"])
    if arr is not None and out is not None:  # a quantized constant (a class token): fold it
        node = m.node("q")
        (q,) = OPS["quantize_linear"].eval([arr, *(m.ed.consts[v] for v in node.inputs[1:])], node.attrs)
        return bb.const(q, hint=m["y"].hint)
    n = m.ed.producer.get(m["y"])
    if out is None or n is None or len(n.outputs) != 1:
        return None
    try:
        return _lower(m, bb, n, out)
    except ValueError:  # a multiplier or bias that does not fit 32 bits: stays float
        note(f"declined {n.op}: out of range")
        return None


@register("lower-integer")
def lower_integer(g: Graph) -> Graph:
    if not any(n.op == "quantize_linear" for n in g.nodes):
        return g
    out = rewrite(sink_layout(g), [lower_quantized])
    for n in float_ops_in_integer_region(out):
        note(f"float island: {n.op}")
    return out
