"""QDQ insertion: where post-training quantization puts quantize/dequantize pairs.

    v  =>  dequantize_linear(quantize_linear(v, s, 0), s, 0)      for every consumer of v
    W  =>  dequantize_linear(W_i8, s[O], 0) {axis}                  weights, per channel

This module writes THE QDQ FORM that `lower-integer` consumes (see
vcompile/ir/ops/integer.py and the issue): symmetric, zero points 0.

Activations (per tensor, i8, s = range / 127; softmax outputs u8 at s = 2^-8):
  - the graph's float inputs, first thing;
  - the outputs of conv*/linear/matmul/gemm/attention, add/sub/mul/div, gelu, layer_norm,
    softmax, hard_swish/hard_sigmoid/sigmoid/silu, relu/clip, pools, reduce_mean, concat.
    When the only user of a contraction's (conv*, linear, matmul, gemm, attention) or an
    add/sub/mul/div's output is a relu or clip, the pair is quantized after the activation,
    never between (the lowering folds the activation into the clip of its requantization);
    after any other op (concat, pools, ...) the activation gets a pair of its own;
  - any other float value a quantized op reads, found by walking back through layout
    ops (so an op the list does not name is still bounded by QDQ and shows up as a
    float op inside the integer region instead of going unnoticed);
  - every float graph output, so that outputs are dequantize_linear results.
Layout ops (reshape, transpose, slice, split, squeeze, unsqueeze, expand, tile, gather,
pad, identity) move quantized values unchanged and get no QDQ of their own.

Constants read by quantized ops:
  - conv weights (OIHW): i8 per output channel, axis 0; linear weights [K, N]: axis 1;
    a matmul's constant second operand: axis = its last;
  - conv/linear/gemm biases, constant attention biases and layer_norm's gamma and beta
    stay float (the lowering quantizes them at the scales it derives: an attention bias
    is added to the i32 scores at their scale). NOTE: not i8 per tensor, because swin's
    shifted-window bias holds a -100 mask beside relative-position terms of about 0.05:
    one i8 scale for both (100/127) rounds every relative-position term to 0;
  - scalar constants of mul/div stay float too (x * c and x / c become one exact rescale);
  - every other float constant (positional embeddings, class tokens): i8 per tensor; a
    constant that reaches its reader through layout ops (expand(cls_token)) is quantized
    as an activation at the reader's input.

Preconditions: a float graph after the -O rewrites, before `fuse` (no region nodes).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vcompile.errors import VcompileError
from vcompile.ir.graph import Attrs, Graph, Node, Value, users
from vcompile.ir.types import TensorType

ANCHORS = frozenset({"conv1d", "conv2d", "conv3d", "linear", "matmul", "gemm", "attention"})
QUANT_OPS = ANCHORS | frozenset({
    "add", "sub", "mul", "div", "gelu", "layer_norm", "softmax", "hard_swish", "hard_sigmoid",
    "sigmoid", "silu", "relu", "clip", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d",
    "avg_pool2d", "avg_pool3d", "reduce_mean", "concat"})
LAYOUT_OPS = frozenset({"reshape", "transpose", "slice", "split", "squeeze", "unsqueeze",
                        "expand", "tile", "gather", "pad", "identity"})
ACTIVATIONS = frozenset({"relu", "clip"})
# ops whose integer form ends in a requantization with a clip, which a following relu/clip
# folds into (concat, pools and the nonlinearities get their own pair before the activation)
ABSORBS = ANCHORS | frozenset({"add", "sub", "mul", "div"})
# (op, input index) -> quantization axis of a per-channel weight
WEIGHT_AXIS: dict[tuple[str, int], int] = {("conv1d", 1): 0, ("conv2d", 1): 0, ("conv3d", 1): 0,
                                           ("linear", 1): 1}
# (op, input index) of constants left float
FLOAT_PARAMS = frozenset({("conv1d", 2), ("conv2d", 2), ("conv3d", 2), ("linear", 2), ("gemm", 2),
                          ("layer_norm", 1), ("layer_norm", 2), ("attention", 3)})
SOFTMAX_SCALE = 2.0 ** -8


class QuantizeError(VcompileError, ValueError):
    """A graph or option post-training quantization cannot work with."""


def is_float(v: Value) -> bool:
    return v.type.dtype.startswith(("f", "bf"))


def plan(g: Graph) -> dict[Value, str]:
    """The activations to quantize -> their quantized dtype ("i8", or "u8" for softmax)."""
    if any(n.region is not None for n in g.nodes):
        raise QuantizeError("quantization needs the graph before fusion; run it without 'fuse' "
                            "and fuse afterwards")
    uses, prod = users(g), g.producers()
    marked: dict[Value, str] = {v: "i8" for v in g.inputs if is_float(v)}
    absorbed: set[Value] = set()
    for n in g.nodes:
        if n.op not in QUANT_OPS or not is_float(n.outputs[0]):
            continue
        out = n.outputs[0]
        nxt = uses.get(out, [])
        if n.op in ABSORBS and len(nxt) == 1 and nxt[0].op in ACTIVATIONS and out not in g.outputs:
            absorbed.add(out)  # the activation that follows is quantized instead
            continue
        marked[out] = "u8" if n.op == "softmax" else "i8"
    for n in g.nodes:
        if n.op in QUANT_OPS:
            for v in n.inputs:
                if v not in absorbed:
                    _cover(v, g, prod, marked)
    for v in g.outputs:
        if is_float(v) and v not in g.consts:
            marked.setdefault(v, "i8")
    return marked


def _cover(v: Value, g: Graph, prod: Mapping[Value, Node], marked: dict[Value, str]) -> None:
    """Make the float value `v` reach its reader from a quantized value, through layout ops.
    A constant reached through layout ops (expand(cls_token)) quantizes the reader's input."""
    start = v
    while is_float(v) and v not in marked:
        if v in g.consts:
            if v is not start:
                marked[start] = "i8"
            return
        n = prod.get(v)
        if n is None:
            return
        if n.op in LAYOUT_OPS and n.inputs:
            v = n.inputs[0]
            continue
        marked[v] = "i8"
        return


def _const_role(n: Node, i: int) -> tuple[str, int | None]:
    """('float', None), ('channel', axis) or ('tensor', None) for constant input i of n."""
    if (n.op, i) in FLOAT_PARAMS:
        return "float", None
    if n.op in ("mul", "div") and n.inputs[i].type.size == 1:
        return "float", None  # x*c, x/c: the lowering folds c into one exact rescale
    if (n.op, i) in WEIGHT_AXIS:
        return "channel", WEIGHT_AXIS[(n.op, i)]
    if n.op == "matmul" and i == 1 and n.inputs[1].type.rank >= 2:
        return "channel", n.inputs[1].type.rank - 1
    return "tensor", None


def symmetric_scale(absmax: np.ndarray | float, qmax: int = 127) -> np.ndarray:
    """s = absmax / qmax, with 1.0 for all-zero ranges (so nothing divides by zero)."""
    a = np.asarray(absmax, dtype=np.float64)
    return np.where(a > 0, a / qmax, 1.0)


def quantize_weight(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(i8 weights, f32 scale): symmetric, per channel along `axis` or per tensor."""
    wf = w.astype(np.float64)
    if axis is None:
        scale = symmetric_scale(np.abs(wf).max() if wf.size else 0.0)
        q = np.rint(wf / scale)
    else:
        red = tuple(d for d in range(w.ndim) if d != axis)
        scale = symmetric_scale(np.abs(wf).max(axis=red) if wf.size else np.zeros(w.shape[axis]))
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.rint(wf / scale.reshape(shape))
    return np.clip(q, -127, 127).astype(np.int8), scale.astype(np.float32)


class _Emitter:
    """Appends Q/DQ nodes and their constants while the graph is rebuilt."""

    def __init__(self, g: Graph) -> None:
        self.nodes: list[Node] = []
        self.consts: dict[Value, np.ndarray] = dict(g.consts)
        self.weights: dict[tuple[Value, int | None], Value] = {}

    def const(self, arr: np.ndarray, hint: str) -> Value:
        arr = np.array(arr)
        arr.flags.writeable = False
        v = Value(TensorType.of(arr), hint)
        self.consts[v] = arr
        return v

    def node(self, op: str, inputs: tuple[Value, ...], t: TensorType, hint: str, axis: int = 1,
             loc: str = "") -> Value:
        attrs = {"axis": axis, "saturate": True} if op == "quantize_linear" else {"axis": axis}
        out = Value(t, hint)
        self.nodes.append(Node(op, inputs, (out,), Attrs(attrs), loc))
        return out

    def activation(self, v: Value, scale: float, qdtype: str, out_hint: str | None = None,
                   loc: str = "") -> Value:
        fdt = TensorType(v.type.dtype, ()).np_dtype
        s = self.const(np.asarray(scale, dtype=fdt), f"{v.hint}_scale")
        zp = self.const(np.zeros((), dtype=np.uint8 if qdtype == "u8" else np.int8), f"{v.hint}_zp")
        q = self.node("quantize_linear", (v, s, zp), v.type.with_dtype(qdtype), f"{v.hint}_q", loc=loc)
        return self.node("dequantize_linear", (q, s, zp), v.type, out_hint or f"{v.hint}_dq", loc=loc)

    def weight(self, w: Value, arr: np.ndarray, axis: int | None) -> Value:
        key = (w, axis)
        if key not in self.weights:
            q, s = quantize_weight(arr, axis)
            fdt, hint = arr.dtype, w.hint or "w"
            qv = self.const(q, f"{hint}_i8")
            sv = self.const(s.astype(fdt) if axis is not None else s.reshape(()).astype(fdt), f"{hint}_scale")
            zv = self.const(np.zeros(s.shape if axis is not None else (), np.int8), f"{hint}_zp")
            self.weights[key] = self.node("dequantize_linear", (qv, sv, zv), w.type,
                                          f"{hint}_dq", axis=axis if axis is not None else 1)
        return self.weights[key]


def insert_qdq(g: Graph, scales: Mapping[Value, float], dtypes: Mapping[Value, str]) -> Graph:
    """The QDQ form of `g`: every value in `scales` quantized (dtype from `dtypes`), and
    the constants of the ops in QUANT_OPS quantized by their role (module docstring)."""
    em = _Emitter(g)
    subst: dict[Value, Value] = {}
    # NOTE: a graph output's DQ takes the output's name: compiled models name their
    # outputs by hint, and int8 must not rename them
    outs = set(g.outputs)
    for v in g.inputs:
        if v in scales:
            subst[v] = em.activation(v, scales[v], dtypes[v], v.hint if v in outs else None)
    for n in g.nodes:
        ins = tuple(_operand(em, n, i, subst.get(v, v), g) for i, v in enumerate(n.inputs))
        em.nodes.append(Node(n.op, ins, n.outputs, n.attrs, n.loc, n.region) if ins != n.inputs else n)
        for o in n.outputs:
            if o in scales:
                subst[o] = em.activation(o, scales[o], dtypes[o], o.hint if o in outs else None, n.loc)
    outs = tuple(subst.get(v, v) for v in g.outputs)
    live = {v for n in em.nodes for v in n.inputs} | set(outs)
    consts = {v: a for v, a in em.consts.items() if v in live}
    return Graph(g.name, g.inputs, tuple(em.nodes), outs, consts)


def _operand(em: _Emitter, n: Node, i: int, v: Value, g: Graph) -> Value:
    if n.op not in QUANT_OPS or v not in g.consts or not is_float(v):
        return v
    role, axis = _const_role(n, i)
    if role == "float":
        return v
    return em.weight(v, np.asarray(g.consts[v]), axis)


def form_violations(g: Graph) -> list[str]:
    """Where `g` departs from the QDQ form a lowering can consume (empty: none): every
    float input of a quantized op comes from a dequantize_linear through layout ops (or is
    a constant left float), and every user of its output is a quantize_linear (or the
    relu/clip it absorbs, whose users are)."""
    prod, uses = g.producers(), users(g)
    bad: list[str] = []
    for n in g.nodes:
        if n.op not in QUANT_OPS or not is_float(n.outputs[0]):
            continue
        p = prod.get(n.inputs[0])
        absorbed = (n.op in ACTIVATIONS and p is not None and p.op in ABSORBS
                    and len(uses.get(n.inputs[0], [])) == 1)
        for i, v in enumerate(n.inputs[1:] if absorbed else n.inputs, start=int(absorbed)):
            src = v
            while src in prod and prod[src].op in LAYOUT_OPS:
                src = prod[src].inputs[0]
            kept_float = src in g.consts and _const_role(n, i)[0] == "float"
            if is_float(v) and not kept_float and (src not in prod or prod[src].op != "dequantize_linear"):
                bad.append(f"{n.op} %{n.outputs[0].hint}: input {i} (%{v.hint}) is not dequantized")
        out = n.outputs[0]
        nxt = uses.get(out, [])
        if len(nxt) == 1 and nxt[0].op in ACTIVATIONS and n.op in ABSORBS:
            out, nxt = nxt[0].outputs[0], uses.get(nxt[0].outputs[0], [])
        if out in g.outputs or any(m.op != "quantize_linear" for m in nxt):
            bad.append(f"{n.op} %{n.outputs[0].hint}: output is read unquantized")
    return bad
