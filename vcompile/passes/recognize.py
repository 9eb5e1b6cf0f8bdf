"""Recognize the model's real operators in the primitive ops exporters shred them into.

    x * 0.5 * (1 + erf(x / sqrt 2))                           => gelu(x)
        (with another constant factor k: gelu(x) * 2k; exporters fold the 0.5 away)
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))      => gelu(x) {approximate="tanh"}
    x * sigmoid(x)                                             => silu(x)
    clip(x + 3, 0, 6) / 6                                      => hard_sigmoid(x) {alpha=1/6, beta=0.5}
    x * hard_sigmoid(x) {1/6, 1/2}, x * clip(x + 3, 0, 6) / 6  => hard_swish(x)
    (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)          => layer_norm(x, 1) {axis, eps}
        (also * rsqrt(...), * reciprocal(sqrt(...)), d * d for d^2; the mean over
        trailing axes [axis, rank))
    layer_norm(x, s, b) * c + d                                => layer_norm(x, s * c, b * c + d)
    reshape(instance_norm | layer_norm(reshape(x, [N, G, -1])), S)
                                                               => group_norm(reshape(x, S)) {num_groups=G}
    group_norm(x, s, b) * c + d (c, d per channel)             => group_norm(x, s * c, b * c + d)
    matmul(x, w), matmul(x, w) + b, gemm(x, w, b)              => linear(x, w, b)  (w, b constants)
    matmul(softmax(scale * (q @ kT) + bias), v)                => attention(q, k, v, bias) {scale}
        (scales on q or k and transposes around them are peeled; bias terms may sit
        between reshapes, as Swin's shifted-window mask does; matmul(v, transpose(P))
        becomes a transposed attention, as EfficientViT writes it)

Constants are compared with a relative tolerance of 1e-3 (exporters print sqrt(2) and
1/6 to a few digits). Every rewrite keeps numerics within float32 rounding: the
reference interpreter checks each one in the tests. Constant-folding and dead-code
elimination of what the rewrites leave behind is `canonicalize`'s job.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vcompile.ir.graph import Graph, Node, Value
from vcompile.passes.infra.dims import static_dims
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, Rule, rewrite, rule
from vcompile.passes.infra.registry import register
from vcompile.passes.infra.rewriter import GraphEditor
from vcompile.passes.infra.weights import per_channel

X = P.any("x")
SQRT2 = math.sqrt(2.0)


# ---- matching helpers ----------------------------------------------------------------------

def _node(ed: GraphEditor, v: Value, *ops: str) -> Node | None:
    n = ed.producer.get(v)
    return n if n is not None and n.op in ops else None


def _scalar(ed: GraphEditor, v: Value) -> float | None:
    a = ed.consts.get(v)
    return float(a.reshape(-1)[0]) if a is not None and a.size == 1 and a.dtype.kind == "f" else None


def _near(x: float | None, want: float, rtol: float = 1e-3) -> bool:
    return x is not None and abs(x - want) <= rtol * abs(want)


def _factors(ed: GraphEditor, root: Node, depth: int = 3) -> list[Value]:
    """The operands of a product tree `a * (b * c)`; inner muls must have one use."""
    out: list[Value] = []
    for v in root.inputs:
        inner = _node(ed, v, "mul")
        if inner is not None and depth > 1 and ed.uses[v] == 1:
            out.extend(_factors(ed, inner, depth - 1))
        else:
            out.append(v)
    return out


def _split_consts(ed: GraphEditor, factors: Sequence[Value]) -> tuple[float, list[Value]] | None:
    """(product of the scalar-constant factors, the other factors)."""
    k, rest = 1.0, []
    for f in factors:
        s = _scalar(ed, f)
        if s is not None:
            k *= s
        elif f in ed.consts:
            return None
        else:
            rest.append(f)
    return k, rest


def _one_plus(ed: GraphEditor, v: Value, fn: str) -> Node | None:
    """The `fn` node of `fn(z) + 1`."""
    add = _node(ed, v, "add")
    if add is None or not _near(_scalar(ed, add.inputs[1]), 1.0):
        return None
    return _node(ed, add.inputs[0], fn)


def _times(ed: GraphEditor, v: Value, k: float) -> Value | None:
    """x when v is `x * k` or `x / (1/k)` (k a scalar constant)."""
    n = _node(ed, v, "mul", "div")
    if n is None:
        return None
    c = _scalar(ed, n.inputs[1])
    if c is None or c == 0:
        return None
    return n.inputs[0] if _near(c if n.op == "mul" else 1.0 / c, k) else None


# ---- activations --------------------------------------------------------------------------

def _tanh_arg_is_gelu(ed: GraphEditor, t: Value, x: Value) -> bool:
    """t == sqrt(2/pi) * (x + 0.044715 * x^3)?"""
    u = _times(ed, t, math.sqrt(2.0 / math.pi))
    add = _node(ed, u, "add") if u is not None else None
    if add is None:
        return False
    for a, b in (add.inputs, add.inputs[::-1]):
        cube = _times(ed, b, 0.044715)
        if a is x and cube is not None and _is_cube(ed, cube, x):
            return True
    return False


def _is_cube(ed: GraphEditor, v: Value, x: Value) -> bool:
    p = _node(ed, v, "pow")
    if p is not None:
        return p.inputs[0] is x and _near(_scalar(ed, p.inputs[1]), 3.0)
    m = _node(ed, v, "mul")
    if m is None:
        return False
    sq = [i for i in m.inputs if i is not x]
    if len(sq) != 1:
        return False
    m2 = _node(ed, sq[0], "mul")
    return m2 is not None and m2.inputs[0] is x and m2.inputs[1] is x


@rule(P.op("mul", P.any(), P.any()))
def gelu(m: Match, bb: RewriteBuilder) -> Value | None:
    ed = m.ed
    split = _split_consts(ed, _factors(ed, m.root))
    if split is None or len(split[1]) != 2 or split[0] == 0:
        return None
    for x, other in (split[1], split[1][::-1]):
        erf = _one_plus(ed, other, "erf")
        if erf is not None and _times(ed, erf.inputs[0], 1.0 / SQRT2) is x:
            y = bb.emit("gelu", x)
        else:
            tanh = _one_plus(ed, other, "tanh")
            if tanh is None or not _tanh_arg_is_gelu(ed, tanh.inputs[0], x):
                continue
            y = bb.emit("gelu", x, approximate="tanh")
        k = 2.0 * split[0]
        if _near(k, 1.0, 1e-6):
            return y
        return bb.emit("mul", y, bb.const(np.asarray(k, x.type.np_dtype), hint="c"))
    return None


@rule(P.op("mul", X, P.op("sigmoid", X), commute=True))
def silu(m: Match, bb: RewriteBuilder) -> Value | None:
    return bb.emit("silu", m["x"])


def _relu6_of_x_plus_3(ed: GraphEditor, v: Value) -> Value | None:
    """x when v is clip(x + 3, 0, 6)."""
    c = _node(ed, v, "clip")
    if c is None or c.attrs["min"] != 0.0 or c.attrs["max"] != 6.0:
        return None
    add = _node(ed, c.inputs[0], "add")
    if add is None or not _near(_scalar(ed, add.inputs[1]), 3.0):
        return None
    return add.inputs[0]


@rule(P.op(("div", "mul"), P.any(), P.const()))
def hard_sigmoid(m: Match, bb: RewriteBuilder) -> Value | None:
    """clip(x + 3, 0, 6) / 6, and x * clip(x + 3, 0, 6) / 6 (hard_swish)."""
    c = _scalar(m.ed, m.root.inputs[1])
    if c is None or c == 0 or not _near(c if m.root.op == "mul" else 1.0 / c, 1.0 / 6.0):
        return None
    inner = m.root.inputs[0]
    x = _relu6_of_x_plus_3(m.ed, inner)
    if x is not None:
        return bb.emit("hard_sigmoid", x, alpha=1.0 / 6.0, beta=0.5)
    prod = _node(m.ed, inner, "mul")
    if prod is not None and m.ed.uses[inner] == 1:
        for x, r in (prod.inputs, prod.inputs[::-1]):
            if _relu6_of_x_plus_3(m.ed, r) is x:
                return bb.emit("hard_swish", x)
    return None


@rule(P.op("mul", X, P.op("hard_sigmoid", X, name="hs"), commute=True))
def hard_swish(m: Match, bb: RewriteBuilder) -> Value | None:
    a = m.node("hs").attrs
    if not (_near(a.float("alpha"), 1.0 / 6.0, 1e-6) and a["beta"] == 0.5):
        return None
    return bb.emit("hard_swish", m["x"])


# ---- normalizations -----------------------------------------------------------------------

def _trailing_mean(ed: GraphEditor, v: Value) -> tuple[Value, int] | None:
    """(x, first axis) when v is reduce_mean(x) over axes [k, rank) with keepdims."""
    n = _node(ed, v, "reduce_mean")
    if n is None or not n.attrs["keepdims"]:
        return None
    r = n.inputs[0].type.rank
    axes = sorted(a % r for a in n.attrs.ints("axes")) or list(range(r))
    if axes != list(range(axes[0], r)) or axes[0] == 0:
        return None
    return n.inputs[0], axes[0]


def _centered(ed: GraphEditor, d: Value) -> tuple[Value, int] | None:
    """(x, axis) when d is x - mean(x) over trailing axes."""
    n = _node(ed, d, "sub")
    if n is not None:
        found = _trailing_mean(ed, n.inputs[1])
        return found if found is not None and found[0] is n.inputs[0] else None
    n = _node(ed, d, "add")
    if n is not None:
        neg = _node(ed, n.inputs[1], "neg")
        found = _trailing_mean(ed, neg.inputs[0]) if neg is not None else None
        return found if found is not None and found[0] is n.inputs[0] else None
    return None


def _inv_std(ed: GraphEditor, v: Value, d: Value, axis: int, *, inverted: bool) -> float | None:
    """eps when v is sqrt(mean(d^2) + eps) (or its reciprocal when `inverted`)."""
    if inverted:
        r = _node(ed, v, "rsqrt")
        if r is None:
            rec = _node(ed, v, "reciprocal")
            r = _node(ed, rec.inputs[0], "sqrt") if rec is not None else None
    else:
        r = _node(ed, v, "sqrt")
    add = _node(ed, r.inputs[0], "add") if r is not None else None
    eps = _scalar(ed, add.inputs[1]) if add is not None else None
    if eps is None or add is None:
        return None
    var = _trailing_mean(ed, add.inputs[0])
    if var is None or var[1] != axis:
        return None
    sq = ed.producer.get(var[0])
    if sq is None:
        return None
    if sq.op == "pow" and sq.inputs[0] is d and _near(_scalar(ed, sq.inputs[1]), 2.0):
        return eps
    if sq.op == "mul" and sq.inputs[0] is d and sq.inputs[1] is d:
        return eps
    return None


@rule(P.op(("div", "mul"), P.any("d"), P.any("s")))
def layer_norm(m: Match, bb: RewriteBuilder) -> Value | None:
    ed, d = m.ed, m["d"]
    found = _centered(ed, d)
    if found is None or d.dtype not in ("f32", "f16", "bf16", "f64"):
        return None
    x, axis = found
    eps = _inv_std(ed, m["s"], d, axis, inverted=m.root.op == "mul")
    if eps is None:
        return None
    norm = static_dims(x.shape[axis:])
    if norm is None:
        return None  # NOTE: layer_norm's scale has the normalized shape: it needs sizes
    ones = bb.const(np.ones(norm, x.type.np_dtype), hint="scale")
    return bb.emit("layer_norm", x, ones, axis=axis - x.type.rank, epsilon=eps)


def _affine_const(c: np.ndarray, target: tuple[int, ...]) -> np.ndarray | None:
    """c as an array of shape `target` (the normalized dims) if it broadcasts there
    without reaching into the dims before them."""
    shape = c.shape
    while len(shape) > len(target) and shape[0] == 1:
        shape = shape[1:]
    if len(shape) > len(target):
        return None
    try:
        return np.broadcast_to(c.reshape(shape), target)
    except ValueError:
        return None


@rule(P.op(("mul", "add"), P.op("layer_norm", any_inputs=True, name="ln").one_use(), P.const("c")))
def layer_norm_affine(m: Match, bb: RewriteBuilder) -> Value | None:
    ln = m.node("ln")
    x, rank, axis = ln.inputs[0], ln.inputs[0].type.rank, ln.attrs.int("axis")
    axis %= rank
    norm = static_dims(x.shape[axis:])
    if norm is None:
        return None
    c = _affine_const(m.array("c"), norm)
    if c is None or m.root.outputs[0].type != ln.outputs[0].type:
        return None
    s = m.const_of(ln.inputs[1])
    b = m.const_of(ln.inputs[2]) if len(ln.inputs) == 3 else np.zeros(norm, x.type.np_dtype)
    if s is None or b is None:
        return None
    s, b = np.broadcast_to(s, norm), np.broadcast_to(b, norm)
    if m.root.op == "mul":
        s, b = s * c, b * c
    else:
        b = b + c
    dt = x.type.np_dtype
    return bb.emit("layer_norm", x, bb.const(s.astype(dt), hint="scale"),
                   bb.const(b.astype(dt), hint="bias"), **ln.attrs)


def _per_group(a: np.ndarray | None, g: int, op: str) -> np.ndarray | None:
    """A norm's scale or shift as one value per group: instance_norm's is per channel of
    the [N, G, L] view, i.e. per group; layer_norm's (over L) must be one value."""
    if a is None:
        return None
    flat = a.reshape(-1)
    if op == "layer_norm" or flat.size == 1:
        return np.full(g, flat[0], a.dtype) if np.all(flat == flat[0]) else None
    return flat if flat.size == g else None


@rule(P.op("reshape", P.op(("instance_norm", "layer_norm"), P.op("reshape", X), any_inputs=True,
                           name="norm").one_use()))
def group_norm(m: Match, bb: RewriteBuilder) -> Value | None:
    x, norm = m["x"], m.node("norm")
    xt, inner = m.root.outputs[0].type, norm.inputs[0].type
    # NOTE: the batch dim may be a symbol (the reshapes keep it whole); groups need sizes
    if (xt.rank < 3 or inner.rank != 3 or static_dims(xt.shape[1:]) is None
            or static_dims(inner.shape[1:]) is None or static_dims(x.shape[1:]) is None
            or inner.shape[0] != xt.shape[0] or x.shape[0] != xt.shape[0]):
        return None
    if norm.op == "layer_norm" and norm.attrs.int("axis") % 3 != 2:
        return None
    c, g = int(xt.shape[1]), int(inner.shape[1])
    if c % g:
        return None
    gamma = _per_group(m.const_of(norm.inputs[1]), g, norm.op)
    beta = (_per_group(m.const_of(norm.inputs[2]), g, norm.op) if len(norm.inputs) == 3
            else np.zeros(g, xt.np_dtype))
    if gamma is None or beta is None:
        return None
    gamma, beta = np.repeat(gamma, c // g), np.repeat(beta, c // g)
    dt = xt.np_dtype
    if x.type != xt:  # groups are contiguous runs of each sample: any reshape keeps them
        x = bb.emit("reshape", x, shape=xt.shape)
    return bb.emit("group_norm", x, bb.const(gamma.astype(dt), hint="scale"),
                   bb.const(beta.astype(dt), hint="bias"), num_groups=g, epsilon=norm.attrs["epsilon"])


@rule(P.op(("mul", "add"), P.op("group_norm", X, P.const("s"), P.const("b"), name="gn").one_use(),
           P.const("c")))
def group_norm_affine(m: Match, bb: RewriteBuilder) -> Value | None:
    x = m["x"]
    cv = per_channel(m.array("c"), x.type.rank, 1, int(x.shape[1]))
    if cv is None or m.root.outputs[0].type != x.type:
        return None
    s, b = m.arrays("s", "b")
    s, b = (s * cv, b * cv) if m.root.op == "mul" else (s, b + cv)
    return bb.emit("group_norm", x, bb.const(s.astype(x.type.np_dtype), hint="scale"),
                   bb.const(b.astype(x.type.np_dtype), hint="bias"), **m.node("gn").attrs)


# ---- linear -------------------------------------------------------------------------------

@rule(P.op("matmul", X, P.const("w")))
def linear(m: Match, bb: RewriteBuilder) -> Value | None:
    w = m.array("w")
    if w.ndim != 2 or m["x"].type.rank < 2 or m["x"] in m.ed.consts:
        return None
    return bb.emit("linear", m["x"], m["w"])


@rule(P.op("add", P.op("linear", X, P.const("w"), name="lin").one_use(), P.const("b")))
def linear_bias(m: Match, bb: RewriteBuilder) -> Value | None:
    y = m.node("lin").outputs[0]
    b = per_channel(m.array("b"), y.type.rank, -1, int(m.array("w").shape[1]))
    if b is None or m.root.outputs[0].type != y.type:
        return None
    return bb.emit("linear", m["x"], m["w"], bb.const(b.astype(y.type.np_dtype), hint=m["b"].hint or "bias"))


@rule(P.op("gemm", X, P.const("w"), any_inputs=True))
def linear_gemm(m: Match, bb: RewriteBuilder) -> Value | None:
    a = m.root.attrs
    if a["trans_a"] or a["trans_b"] or a["alpha"] != 1.0 or a["beta"] != 1.0:
        return None
    if len(m.root.inputs) == 2:
        return bb.emit("linear", m["x"], m["w"])
    c = m.const_of(m.root.inputs[2])
    b = None if c is None else per_channel(c, 2, -1, int(m.array("w").shape[1]))
    if b is None or c is None:
        return None
    bias = bb.const(b.astype(c.dtype), hint=m.root.inputs[2].hint or "bias")
    return bb.emit("linear", m["x"], m["w"], bias)


# ---- attention ----------------------------------------------------------------------------

def _swap_last(rank: int) -> tuple[int, ...]:
    return (*range(rank - 2), rank - 1, rank - 2)


def _peel(ed: GraphEditor, v: Value) -> tuple[Value, tuple[int, ...], float]:
    """v = scale * transpose(base, perm) through scalar muls/divs and transposes."""
    rank = v.type.rank
    perm, scale = tuple(range(rank)), 1.0
    while True:
        n = ed.producer.get(v)
        if n is None:
            break
        if n.op == "transpose":
            p = n.attrs.ints("perm")
            perm = tuple(p[i] for i in perm)
            v = n.inputs[0]
            continue
        if n.op in ("mul", "div"):
            c = _scalar(ed, n.inputs[1])
            if c is not None and c != 0:
                scale *= c if n.op == "mul" else 1.0 / c
                v = n.inputs[0]
                continue
        break
    return v, perm, scale


def _apply(bb: RewriteBuilder, base: Value, perm: tuple[int, ...]) -> Value:
    return base if perm == tuple(range(len(perm))) else bb.emit("transpose", base, perm=perm)


def _score_chain(ed: GraphEditor, s: Value) -> tuple[Node, list[Node]] | None:
    """The Q @ KT matmul that softmax's input `s` comes from, and the reshapes, scalar
    muls/divs and adds on the way (outermost first)."""
    chain: list[Node] = []
    for _ in range(12):
        n = ed.producer.get(s)
        if n is None:
            return None
        if n.op == "matmul":
            return n, chain
        scalar = n.op in ("mul", "div") and (_scalar(ed, n.inputs[1]) or 0.0) != 0.0
        if not (n.op == "reshape" or scalar or (n.op == "add" and n.inputs[0] not in ed.consts)):
            return None
        chain.append(n)
        s = n.inputs[0]
    return None


def _scores(ed: GraphEditor, s: Value) -> tuple[Node, float, list[tuple[Value, float, tuple]]] | None:
    """Walk from softmax's input back to the Q @ KT matmul: (matmul, scale, biases), each
    bias as (value, coefficient, shape of the stage it was added at)."""
    found = _score_chain(ed, s)
    if found is None or found[0].outputs[0].shape != s.shape:
        return None
    mm, chain = found
    scale = 1.0
    biases: list[tuple[Value, float, tuple]] = []
    for c in reversed(chain):  # innermost first
        if c.op in ("mul", "div"):
            k = float(_scalar(ed, c.inputs[1]))  # type: ignore[arg-type]
            k = k if c.op == "mul" else 1.0 / k
            scale *= k
            biases = [(b, coef * k, sh) for b, coef, sh in biases]
        elif c.op == "add":
            biases.append((c.inputs[1], 1.0, tuple(c.outputs[0].shape)))
    return mm, scale, biases


def _bias(bb: RewriteBuilder, biases: list[tuple[Value, float, tuple]], shape: tuple) -> Value | None:
    total: Value | None = None
    for b, coef, stage in biases:
        if tuple(b.shape) != tuple(stage):
            b = bb.emit("expand", b, shape=stage)
        if tuple(stage) != tuple(shape):
            b = bb.emit("reshape", b, shape=shape)
        if coef != 1.0:
            b = bb.emit("mul", b, bb.const(np.asarray(coef, b.type.np_dtype), hint="coef"))
        total = b if total is None else bb.emit("add", total, b)
    return total


@rule(P.op("matmul", P.any("a"), P.any("b")))
def attention(m: Match, bb: RewriteBuilder) -> Value | None:
    ed = m.ed
    a, b = m["a"], m["b"]
    transposed = False
    p = _node(ed, a, "softmax")
    v = b
    if p is None:  # matmul(v, transpose(softmax(...))) = transpose(attention(..., vT))
        t = _node(ed, b, "transpose")
        if t is None or ed.uses[b] != 1 or t.attrs.ints("perm") != _swap_last(b.type.rank):
            return None
        p = _node(ed, t.inputs[0], "softmax")
        v, transposed = a, True
    if p is None or ed.uses[p.outputs[0]] != 1 or p.inputs[0].type.rank < 2:
        return None
    rank = p.inputs[0].type.rank
    if p.attrs.int("axis") % rank != rank - 1 or p.inputs[0].dtype not in ("f32", "f16", "bf16", "f64"):
        return None
    found = _scores(ed, p.inputs[0])
    if found is None:
        return None
    mm, scale, biases = found
    qb, qp, qs = _peel(ed, mm.inputs[0])
    kb, kp, ks = _peel(ed, mm.inputs[1])
    q_t, kt_t = mm.inputs[0].type, mm.inputs[1].type
    if q_t.rank != rank or kt_t.rank != rank or v.type.rank != rank:
        return None
    v_shape = v.type.shape if not transposed else tuple(v.shape[i] for i in _swap_last(rank))
    if not (q_t.shape[:-2] == kt_t.shape[:-2] == v_shape[:-2]):
        return None
    q = _apply(bb, qb, qp)
    k = _apply(bb, kb, tuple(kp[i] for i in _swap_last(rank)))
    vv = bb.emit("transpose", v, perm=_swap_last(rank)) if transposed else v
    ins = [q, k, vv]
    bias = _bias(bb, biases, tuple(mm.outputs[0].shape))
    if bias is not None:
        ins.append(bias)
    out = bb.emit("attention", *ins, scale=scale * qs * ks)
    return bb.emit("transpose", out, perm=_swap_last(rank)) if transposed else out


RULES: list[Rule] = [gelu, silu, hard_sigmoid, hard_swish, layer_norm, layer_norm_affine, group_norm,
                     group_norm_affine, linear, linear_bias, linear_gemm, attention]


@register("recognize")
def recognize(g: Graph) -> Graph:
    return rewrite(g, RULES)
