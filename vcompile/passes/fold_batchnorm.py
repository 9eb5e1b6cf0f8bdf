"""Fold inference BatchNorm into the conv or linear next to it.

    batch_norm(conv(x, w, b), gamma, beta, mean, var)         conv2d, conv_transpose2d, ...
      => conv(x, w * s, (b - mean) * s + beta),   s = gamma / sqrt(var + epsilon)
    batch_norm(linear(x, w, b)) with a rank-2 BN input (channels = features), also
    batch_norm(reshape(linear(x, w, b))) when the reshape keeps the feature axis last
      => linear(x, w * s, (b - mean) * s + beta)
    conv(batch_norm(x), w, b) with zero padding (Next-ViT's pre-BN merge)
      => conv(x, w * s[in], b + sum(w * t[in])),   t = beta - mean * s
    linear(batch_norm(x), w, b) with rank-2 x
      => linear(x, s[:, None] * w, b + t @ w)
    add(batch_norm(x), mul(x, alpha))                         SLAB's RepBN
      => add(mul(x, s + alpha), t)
    batch_norm(x) anywhere else
      => add(mul(x, s), t)    then fold-scale folds that into a neighbouring conv/linear

where linear is `matmul(x, w)`, `add(matmul(x, w), b)` or a canonical gemm with a
constant (K, N) weight. BN parameters must be constants. The conv or linear result
must have no other user (else it would be computed twice). Folding is computed in
float64 and rounded once.
"""
from __future__ import annotations

import numpy as np

from vcompile.ir.graph import Graph, Value
from vcompile.passes.fold_scale import CONV_NODE, Linear, const_like, emit_linear, linear_of
from vcompile.passes.fold_scale import RULES as SCALE_RULES
from vcompile.passes.infra.pattern import Match, OpPat, P, Pattern, RewriteBuilder, Rule, rewrite, rule
from vcompile.passes.infra.registry import register
from vcompile.passes.infra.weights import CONV, bn_affine, conv_in_fold, f64, scale_out

X = P.any("x")
PARAMS = (P.const("gamma"), P.const("beta"), P.const("mean"), P.const("var"))


def bn(inp: Pattern, name: str = "bn") -> OpPat:
    return P.op("batch_norm", inp, *PARAMS, name=name)


def _affine(m: Match) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta, mean, var = m.arrays("gamma", "beta", "mean", "var")
    return bn_affine(gamma, beta, mean, var, m.node("bn").attrs.float("epsilon"))


@rule(bn(CONV_NODE.one_use()))
def fold_bn_into_conv(m: Match, bb: RewriteBuilder) -> Value | None:
    s, t = _affine(m)
    w, b = m.arrays("w", "b")
    conv = m.node("conv")
    new_w = const_like(bb, scale_out(conv, w, s), m["w"])
    new_b = const_like(bb, f64(b) * s + t, m["b"])
    return bb.emit(conv.op, m["x"], new_w, new_b, **conv.attrs)


def _fold_linear(m: Match, bb: RewriteBuilder, lin_name: str) -> Value | None:
    lin = linear_of(m.node(lin_name), m.ed)
    if lin is None or lin.w.shape[1] != m["bn"].shape[1]:
        return None
    s, t = _affine(m)
    b = t if lin.b is None else lin.b * s + t
    return emit_linear(bb, lin, lin.w * s[None, :], b)


@rule(bn(P.op(("matmul", "add", "gemm", "linear"), any_inputs=True, name="lin").one_use()))
def fold_bn_into_linear(m: Match, bb: RewriteBuilder) -> Value | None:
    if m["lin"].type.rank != 2:
        return None
    return _fold_linear(m, bb, "lin")


@rule(bn(P.op("reshape", P.op(("matmul", "add", "gemm"), any_inputs=True, name="lin").one_use(),
              name="flat").one_use()))
def fold_bn_into_linear_reshaped(m: Match, bb: RewriteBuilder) -> Value | None:
    y, flat = m["lin"], m["flat"]
    if flat.type.rank != 2 or y.shape[-1] != flat.shape[-1]:
        return None
    folded = _fold_linear(m, bb, "lin")
    return None if folded is None else bb.emit("reshape", folded, **m.node("flat").attrs)


@rule(P.op(CONV, bn(X), P.const("w"), P.const("b")))
def fold_pre_bn_into_conv(m: Match, bb: RewriteBuilder) -> Value | None:
    conv = m.root
    if any(conv.attrs.ints("pads")):
        return None  # NOTE: padding zeros would skip the BN shift
    s, t = _affine(m)
    w, b = m.arrays("w", "b")
    new_w, extra = conv_in_fold(w, conv.attrs.int("groups"), s, t)
    return bb.emit(conv.op, m["x"], const_like(bb, new_w, m["w"]), const_like(bb, f64(b) + extra, m["b"]),
                   **conv.attrs)


@rule(P.op(("matmul", "gemm", "linear"), bn(X), P.const("w"), any_inputs=True))
def fold_pre_bn_into_linear(m: Match, bb: RewriteBuilder) -> Value | None:
    lin = linear_of(m.root, m.ed)
    if lin is None or m["x"].type.rank != 2:
        return None
    s, t = _affine(m)
    extra = t @ lin.w
    lin = Linear(m["x"], lin.w, lin.b, lin.w_value, lin.kind)
    return emit_linear(bb, lin, lin.w * s[:, None], extra if lin.b is None else lin.b + extra)


def _channel_shape(x: Value, v: np.ndarray) -> np.ndarray:
    return v.reshape((-1,) + (1,) * (x.type.rank - 2))


@rule(P.op("add", bn(X).one_use(), P.op("mul", X, P.const("alpha")).one_use(), commute=True))
def fold_repbn(m: Match, bb: RewriteBuilder) -> Value | None:
    alpha = m.array("alpha")
    if alpha.size != 1:
        return None
    s, t = _affine(m)
    x = m["x"]
    scale = bb.emit("mul", x, const_like(bb, _channel_shape(x, s + f64(alpha).reshape(())), m["gamma"]))
    return bb.emit("add", scale, const_like(bb, _channel_shape(x, t), m["beta"]))


@rule(bn(X))
def bn_to_scale_shift(m: Match, bb: RewriteBuilder) -> Value | None:
    s, t = _affine(m)
    x = m["x"]
    scaled = bb.emit("mul", x, const_like(bb, _channel_shape(x, s), m["gamma"]))
    return bb.emit("add", scaled, const_like(bb, _channel_shape(x, t), m["beta"]))


RULES: list[Rule] = [fold_bn_into_conv, fold_bn_into_linear, fold_bn_into_linear_reshaped,
                     fold_pre_bn_into_conv, fold_pre_bn_into_linear, fold_repbn]


@register("fold-batchnorm")
def fold_batchnorm(g: Graph) -> Graph:
    # NOTE: phase order: BNs that fold into a conv/linear first; only the rest become
    # scale-shifts, which the fold-scale rules then push into a neighbour.
    g = rewrite(g, RULES)
    if not any(n.op == "batch_norm" for n in g.nodes):
        return g
    return rewrite(rewrite(g, [bn_to_scale_shift]), SCALE_RULES)
