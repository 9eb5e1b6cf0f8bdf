"""ONNX converters for the recurrent layers (opsets 7 to 28).

    LSTM(X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P?) => lstm(...) {present=...}
    GRU(X, W, R, B?, sequence_lens?, initial_h?)                   => gru(...)
    RNN(X, W, R, B?, sequence_lens?, initial_h?)                   => rnn(...)

Omitted optional inputs are left out and the IR op's `present` attr names the ones
given. Inputs that change nothing are dropped at import: a known `sequence_lens` equal
to the sequence length everywhere, and known all-zero initial states (what exporters
write for an LSTM called without a state). `layout` exists from opset 14; `hidden_size`,
when absent, is R's last dim.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vcompile.frontends.onnx_ctx import Ctx, V
from vcompile.frontends.onnx_ops import Node, converter
from vcompile.ir.ops.recurrent import OPTIONAL


def _drop_inert(ctx: Ctx, name: str, x: V, seq: Any) -> bool:
    """Whether a known optional input is what its absence means."""
    arr = ctx.known(x)
    if arr is None or arr.dtype == object:
        return False
    if name == "sequence_lens":
        return isinstance(seq, int) and bool(np.all(arr == seq))
    return name in ("initial_h", "initial_c") and not np.any(arr)


def _attrs(ctx: Ctx, n: Node, op: str, r: V) -> dict[str, Any]:
    a = n.attrs
    layout = int(a.get("layout", 0)) if ctx.opset >= 14 else 0
    out: dict[str, Any] = {
        "hidden_size": int(a.get("hidden_size", ctx.shape(r)[-1])),
        "direction": str(a.get("direction", "forward")),
        "activations": ",".join(a.get("activations", ())),
        "activation_alpha": tuple(float(v) for v in a.get("activation_alpha", ())),
        "activation_beta": tuple(float(v) for v in a.get("activation_beta", ())),
        "clip": float(a.get("clip", 0.0)), "layout": layout}
    if op == "lstm":
        out["input_forget"] = bool(a.get("input_forget", 0))
    if op == "gru":
        out["linear_before_reset"] = bool(a.get("linear_before_reset", 0))
    return out


def _convert(ctx: Ctx, n: Node, op: str) -> list[V]:
    x, w, r = n.inputs[0], n.inputs[1], n.inputs[2]
    if x is None or w is None or r is None:
        raise ctx.error("needs X, W and R")
    attrs = _attrs(ctx, n, op, r)
    seq = ctx.shape(x)[1 if attrs["layout"] else 0]
    names, extra = [], []
    for k, name in enumerate(OPTIONAL[op]):
        v = n.input(3 + k)
        if v is None or _drop_inert(ctx, name, v, seq):
            continue
        if name == "sequence_lens":
            v = ctx.cast(v, "i32")
        names.append(name)
        extra.append(v)
    outs = ctx.emit_multi(op, x, w, r, *extra, present=",".join(names), **attrs)
    return list(outs)


@converter("LSTM")
def convert_lstm(ctx: Ctx, n: Node) -> list[V]:
    return _convert(ctx, n, "lstm")


@converter("GRU")
def convert_gru(ctx: Ctx, n: Node) -> list[V]:
    return _convert(ctx, n, "gru")


@converter("RNN")
def convert_rnn(ctx: Ctx, n: Node) -> list[V]:
    return _convert(ctx, n, "rnn")
