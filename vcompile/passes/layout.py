"""simplify-layout: make every transpose move whole dims of a tensor, and nothing else.

    transpose(reshape(x), p)  => reshape(transpose(x, p'))   when the reshape's dim
                                 groups stay together and in order under p
    transpose(x, p)           => reshape(x)                  when p moves only size-1 dims
    unary(reshape|transpose(x)) => reshape|transpose(unary(x))  (gelu, relu, ...: one
                                 input, elementwise), so the activation joins the
                                 producer's epilogue and the layout op stays a plain copy
    layout(layer_norm(x))       => layer_norm(layout(x))     when the layout op (transpose,
                                 reshape, gather) moves whole normalized rows

and, as its own pass (`slices-before-transpose`, -O2 without attention-to-conv):

    slice_i(transpose(x))       => transpose(slice_i(x))     when only slices read the
                                 transpose (attention's q, k, v split)

Exporters write token <-> image moves as `reshape` + `transpose`: PVT's
`x.flatten(2).transpose(1, 2)` is [1,C,H,W] -> [1,C,HW] -> [1,HW,C]. Transposing the
merged dim reads the input through a division and a remainder per element (HW -> H, W),
which no vector unit likes; the same transpose on the unmerged dims ([1,C,H,W] ->
[1,H,W,C], then a free reshape) reads with plain strides, and the schedules tile it.
Both rewrites are exact: they move the same elements.

The pass runs after `recognize` (at -O2): the attention patterns match the reshapes and
transposes the exporters write, and this pass would respell them.
"""
from __future__ import annotations

from vcompile.ir.graph import Graph, Node, Value, users
from vcompile.ir.ops import OPS
from vcompile.ir.types import Dim
from vcompile.passes.canonicalize import canonicalize
from vcompile.passes.dce import dce
from vcompile.passes.infra.dims import dim_product
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, rewrite, rule
from vcompile.passes.infra.registry import register

X = P.any("x")


def dim_groups(src: tuple[Dim, ...], dst: tuple[Dim, ...]) -> list[tuple[range, range]] | None:
    """Split a reshape src -> dst into the fewest runs (src dims, dst dims) of equal
    product, in order: [2,3,4] -> [6,4] is ([0,1] -> [0]), ([2] -> [1]). Trailing
    size-1 dims join the last run. A symbolic dim must be a run of its own on both
    sides ([N,3,4] -> [N,12]: ([0] -> [0]), ([1,2] -> [1])), since its size is unknown.
    None if a dim is 0 or the products disagree."""
    if dim_product(src) != dim_product(dst) or 0 in src or 0 in dst:
        return None
    groups: list[tuple[range, range]] = []
    i = j = 0
    while i < len(src) and j < len(dst):
        i0, j0 = i, j
        a, b = src[i], dst[j]
        i, j = i + 1, j + 1
        if not (isinstance(a, int) and isinstance(b, int)):
            if a != b:
                return None
        else:
            while a != b:
                nxt = src[i] if a < b and i < len(src) else dst[j] if a > b and j < len(dst) else None
                if not isinstance(nxt, int):
                    return None
                if a < b:
                    a, i = a * nxt, i + 1
                else:
                    b, j = b * nxt, j + 1
        groups.append((range(i0, i), range(j0, j)))
    if groups and (i < len(src) or j < len(dst)):
        (si, sj) = groups[-1]
        groups[-1] = (range(si.start, len(src)), range(sj.start, len(dst)))
    return groups or None


@rule(P.op("transpose", P.op("reshape", X, name="reshape").one_use()))
def transpose_before_reshape(m: Match, bb: RewriteBuilder) -> Value | None:
    src = m["x"].type.shape
    groups = dim_groups(src, m.node("reshape").output.type.shape)
    if groups is None:
        return None
    perm = m.root.attrs.ints("perm")
    owner = {d: k for k, (_, ds) in enumerate(groups) for d in ds}
    order: list[int] = []  # groups in the order the transpose puts them
    pos = 0
    while pos < len(perm):
        k = owner[perm[pos]]
        run = tuple(groups[k][1])
        if tuple(perm[pos:pos + len(run)]) != run:
            return None  # the transpose splits a group or reverses it
        order.append(k)
        pos += len(run)
    new_perm = tuple(s for k in order for s in groups[k][0])
    if new_perm == tuple(range(len(src))):
        return bb.emit("reshape", m["x"], shape=m.root.output.type.shape)
    t = bb.emit("transpose", m["x"], perm=new_perm)
    return bb.emit("reshape", t, shape=m.root.output.type.shape)


@rule(P.op("transpose", X))
def unit_transpose_to_reshape(m: Match, bb: RewriteBuilder) -> Value | None:
    shape = m["x"].type.shape
    moved = [d for d in m.root.attrs.ints("perm") if shape[d] != 1]
    if moved != sorted(moved) or m.root.attrs.ints("perm") == tuple(range(len(shape))):
        return None
    return bb.emit("reshape", m["x"], shape=m.root.output.type.shape)


# One input, same shape out: these commute with any data movement.
UNARY = tuple(sorted(name for name, d in OPS.items()
                     if d.kind == "elementwise" and d.arity == (1, 1)))


@rule(P.op(UNARY, P.op(("reshape", "transpose"), X, name="layout").one_use()))
def unary_before_layout(m: Match, bb: RewriteBuilder) -> Value | None:
    y = bb.emit(m.root.op, m["x"], **m.root.attrs)
    lay = m.node("layout")
    return bb.emit(lay.op, y, **lay.attrs)


def _rows_only(lay: Node, ax: int, rank: int) -> int | None:
    """The axis the normalized trailing dims [ax, rank) start at after the layout op
    `lay`, when it moves whole rows only (they stay last and whole); else None."""
    # NOTE: symbolic dims are fine: rows move whole when the trailing dims stay the same
    src, dst = lay.inputs[0].type.shape, lay.output.type.shape
    tail = src[ax:]
    if lay.op == "transpose":
        perm = lay.attrs.ints("perm")
        return ax if perm[ax:] == tuple(range(ax, rank)) else None
    if lay.op == "reshape":
        return len(dst) - len(tail) if len(dst) >= len(tail) and dst[len(dst) - len(tail):] == tail else None
    gax = lay.attrs.int("axis") % rank
    return ax if gax < ax and lay.inputs[1].type.rank == 1 else None


@rule(P.op(("transpose", "reshape", "gather"),
           P.op("layer_norm", X, name="ln", any_inputs=True).one_use(), any_inputs=True))
def layer_norm_after_rows_move(m: Match, bb: RewriteBuilder) -> Value | None:
    """layout(layer_norm(x)) => layer_norm(layout(x)) when the layout op moves whole
    normalized rows (Swin's window partition and shifted-window roll): the norm's
    statistics are per row, so it commutes. Last in its group, the norm writes the rows
    where the next linear reads them, one parallel loop over them (`schedules.rows`);
    first, its rows were scattered by the moves fused after it (8-9 GFLOP/s against 31)."""
    ln, lay = m.node("ln"), m.root
    rank = ln.output.type.rank
    ax = ln.attrs.int("axis") % rank
    naxes = ln.attrs.int("naxes")
    if naxes and ax + naxes != rank:
        return None
    new_ax = _rows_only(lay, ax, rank)
    if new_ax is None:
        return None
    moved = bb.emit(lay.op, m["x"], *lay.inputs[1:], **lay.attrs)
    return bb.emit("layer_norm", moved, *ln.inputs[1:], axis=new_ax, naxes=naxes,
                   epsilon=ln.attrs["epsilon"])


RULES = [transpose_before_reshape, unit_transpose_to_reshape, unary_before_layout,
         layer_norm_after_rows_move]


@register("slices-before-transpose")
def slices_before_transpose(g: Graph) -> Graph:
    """slice_i(transpose(x, p)) => transpose(slice_i'(x), p) for every slice (a split's
    outputs become slices), when only slices and splits read a transpose: attention's
    q, k, v split of the qkv linear (timm's `permute(2, 0, 3, 1, 4)` then `unbind(0)`).
    Each part is then copied once (a slice and its transpose are one kernel) instead of
    the whole [3, B, H, N, D] transpose and then the split's copies. And a split whose
    parts each go to one transpose (LeViT) becomes slices, for the same reason. Exact."""
    from vcompile.ir.builder import infer_node
    us = users(g)
    parts = ("slice", "split")
    moved = {n.outputs[0] for n in g.nodes if n.op == "transpose" and n.outputs[0] not in g.outputs
             and us.get(n.outputs[0]) and all(u.op in parts for u in us[n.outputs[0]])}
    # a split whose every part goes to one transpose (LeViT's q, k, v): slices, so each
    # joins its transpose in one kernel
    to_slices = {id(n) for n in g.nodes if n.op == "split" and n.inputs[0] not in moved
                 and all(v not in g.outputs and [u.op for u in us.get(v, [])] == ["transpose"]
                         for v in n.outputs)}
    if not moved and not to_slices:
        return g
    producer = g.producers()
    nodes: list[Node] = []

    def emit(op: str, ins: tuple[Value, ...], attrs: dict, loc: str,
             out: Value | None = None) -> Value:
        full, (ty,) = infer_node(op, ins, attrs)
        if out is None:
            out = Value(ty, "")
        assert ty == out.type, (op, ty, out.type)
        nodes.append(Node(op, ins, (out,), full, loc))
        return out

    def cuts(n: Node) -> list[tuple[dict, Value]]:
        """A slice's attrs, or one slice per output of a split (same axis)."""
        if n.op == "slice":
            return [(dict(n.attrs), n.outputs[0])]
        axis, start, out = n.attrs.int("axis") % n.inputs[0].type.rank, 0, []
        for size, v in zip(n.attrs.ints("sizes"), n.outputs, strict=True):
            out.append(({"starts": (start,), "ends": (start + size,), "axes": (axis,),
                         "steps": (1,)}, v))
            start += size
        return out

    for n in g.nodes:
        if id(n) in to_slices:
            for attrs, out in cuts(n):
                emit("slice", n.inputs, attrs, n.loc, out)
            continue
        if n.op not in parts or n.inputs[0] not in moved:
            nodes.append(n)
            continue
        t = producer[n.inputs[0]]
        perm = list(t.attrs.ints("perm"))
        for attrs, out in cuts(n):
            attrs["axes"] = tuple(perm[int(a) % len(perm)] for a in attrs["axes"])
            part = emit("slice", t.inputs, attrs, n.loc)
            emit("transpose", (part,), dict(t.attrs), t.loc, out)
    return dce(g.replace(nodes=tuple(nodes)))  # the transposes the slices read are dead


@register("simplify-layout")
def simplify_layout(g: Graph) -> Graph:
    # NOTE: dead users first: a layout op read by a dead node is not one-use, and the
    # rules would only fire on a second run (hypothesis found such a graph).
    return canonicalize(rewrite(dce(g), RULES))
