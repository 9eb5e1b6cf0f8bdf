"""Test helpers for lower-integer: put a float graph in QDQ form with a simple min/max
calibration (the real PTQ lives in vcompile/quant/), and measure a lowered graph.

    qg = insert_qdq(g, [x])            # every float activation quantized, weights per channel
    lowered = passes.run(qg, "lower-integer")
    assert float_ops(lowered) == []
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vcompile.ir import Builder, Graph, Value, interp, used_consts
from vcompile.ir.dtypes import float_ops_in_integer_region
from vcompile.ir.types import FLOAT_DTYPES

WEIGHT_AXIS = {"conv2d": 0, "linear": 1, "matmul": 1, "gemm": 1}


def float_ops(g: Graph) -> list[str]:
    """The ops of the float nodes inside the integer region (the lead replaces this helper)."""
    return [n.op for n in float_ops_in_integer_region(g)]


def _ranges(g: Graph, inputs: Sequence[np.ndarray]) -> dict[Value, tuple[float, float]]:
    vals = [v for v in g.inputs if v.dtype in FLOAT_DTYPES]
    vals += [v for n in g.nodes for v in n.outputs if v.dtype in FLOAT_DTYPES]
    arrays = interp.run(g.replace(outputs=tuple(vals)), *inputs)
    return {v: (float(a.min()), float(a.max())) for v, a in zip(vals, arrays, strict=True)}


def _act_params(lo: float, hi: float, asym: bool) -> tuple[np.ndarray, np.ndarray]:
    if asym:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        s = max(hi - lo, 1e-6) / 255
        return np.float32(s), np.uint8(np.clip(np.rint(-lo / s), 0, 255))
    return np.float32(max(abs(lo), abs(hi), 1e-6) / 127), np.int8(0)


def _qdq(bb: Builder, v: Value, scale: object, zp: object) -> Value:
    s, z = bb.const(np.asarray(scale, np.float32), hint="s"), bb.const(np.asarray(zp), hint="zp")
    q = bb.emit("quantize_linear", v, s, z, hint=v.hint + "_q")
    return bb.emit("dequantize_linear", q, s, z, hint=v.hint + "_dq")


def _weight(bb: Builder, w: np.ndarray, axis: int) -> Value:
    other = tuple(i for i in range(w.ndim) if i != axis)
    s = np.maximum(np.abs(w).max(axis=other), 1e-8).astype(np.float32) / 127
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / s.reshape(shape)), -127, 127).astype(np.int8)
    qv = bb.const(q, hint="wq")
    sv, zv = bb.const(s, hint="ws"), bb.const(np.zeros(s.shape, np.int8), hint="wzp")
    return bb.emit("dequantize_linear", qv, sv, zv, axis=axis, hint="w")


def insert_qdq(g: Graph, inputs: Sequence[np.ndarray], *, asym: bool = False,
               skip: Sequence[str] = ()) -> Graph:
    """g with every float activation v replaced by dequantize(quantize(v)) (min/max ranges,
    symmetric i8, or u8 with a zero point when `asym`; softmax outputs u8 at 2^-8) and the
    weights of conv2d/linear/matmul (constants) per-channel symmetric i8. The outputs of
    `skip` ops stay unquantized (conv2d: a relu after it fuses into the requantize)."""
    ranges = _ranges(g, inputs)
    bb = Builder(g.name)
    env: dict[Value, Value] = {}
    for v, a in g.consts.items():
        env[v] = bb.const(a, hint=v.hint)
    for x in g.inputs:
        env[x] = bb.input(x.type, hint=x.hint)
        if x.dtype in FLOAT_DTYPES:
            env[x] = _qdq(bb, env[x], *_act_params(*ranges[x], asym))
    for n in g.nodes:
        ins = [env[v] for v in n.inputs]
        if n.op in WEIGHT_AXIS and n.inputs[1] in g.consts and n.inputs[1].type.rank in (2, 4):
            axis = 0 if n.op == "gemm" and n.attrs["trans_b"] else WEIGHT_AXIS[n.op]
            ins[1] = _weight(bb, g.consts[n.inputs[1]], axis)
        outs = bb.emit_multi(n.op, *ins, hint=n.outputs[0].hint, loc=n.loc, **n.attrs)
        for old, new in zip(n.outputs, outs, strict=True):
            env[old] = new
            if old.dtype not in FLOAT_DTYPES or n.op in skip:
                continue
            params = ((np.float32(2 ** -8), np.uint8(0)) if n.op == "softmax"
                      else _act_params(*ranges[old], asym))
            env[old] = _qdq(bb, new, *params)
    out = bb.build(*(env[v] for v in g.outputs))
    return out.replace(consts=used_consts(out))  # the float weights were replaced


def output_steps(g: Graph, got: np.ndarray, want: np.ndarray) -> float:
    """The largest difference in units of the output's quantization step, to 4 decimals:
    both sides are dequantized in float32, so one step can read 1.0000002."""
    dq = next(n for n in reversed(g.nodes) if n.op == "dequantize_linear")
    step = float(g.consts[dq.inputs[1]].reshape(-1)[0])
    return round(float(np.abs(got.astype(np.float64) - want).max() / step), 4)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
