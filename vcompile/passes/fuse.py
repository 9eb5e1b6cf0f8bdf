"""Partition the graph into fusion groups; each group becomes one region node, one kernel.

    %y = fused(%x) {kernel="linear_gelu"} : f32[1,197,768] {
      graph @linear_gelu(%x: f32[1,197,192]) {
        const %w: f32[192,768]
        ...
        %linear = linear(%x, %w, %b) : f32[1,197,768]
        %gelu = gelu(%linear) : f32[1,197,768]
        return %gelu
      }
    }

Groups are grown over the nodes in order, by op kind (`OpDef.kind`):

- an *anchor* (conv, linear, matmul, gemm, attention, pooling) starts a group and takes
  its elementwise epilogue: bias, scale, activation, residual add;
- a *reduction* (reduce_*, softmax) or a normalization (layer/group/instance/batch norm)
  starts a group, takes the elementwise/injective chain that feeds it (its prologue)
  and its elementwise epilogue;
- elementwise and injective ops join the group of the value they consume, or chain
  into a group of their own; an injective op (transpose, concat, slice) never joins an
  anchor's group, whose schedule tiles the anchor's loops, with one exception:
- attention takes its layout prologue (the slices, transposes and views that cut q, k
  and v out of the qkv projection, when they feed nothing else) and its layout
  epilogue (the transpose and reshape back to tokens): its kernel reads through the
  former and writes the latter in one copy, where each would be a kernel of its own.

A node joins the group that produced its input only when that value has no other user,
so every group has one output, computes nothing twice and, with the `networkx` check
below, is convex (no path leaves it and comes back). Groups hold at most `MAX_NODES`
nodes. A group of one node stays a plain node: it is one kernel already. Constants
used inside a group are copied into its region (codegen packs weights it can see).

Views (`VIEW_OPS`: reshape, squeeze, unsqueeze) launch nothing when they stand alone,
so the kernel counts of `kernel_groups` leave them out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vcompile.ir.graph import Attrs, Graph, Node, Value
from vcompile.ir.nx import is_convex, to_networkx
from vcompile.ir.ops import OPS, VIEW_OPS
from vcompile.passes.infra.registry import note, register
from vcompile.passes.infra.rewriter import use_counts

MAX_NODES = 16
# anchors that take layout ops into their group, with how many leading operands take a
# prologue: attention reads q, k and v through slices and transposes as cheaply as from
# a copy of its own
LAYOUT_ANCHORS = {"attention": 3}
LAYOUT_PROLOGUE_OPS = frozenset({"slice", "transpose"}) | VIEW_OPS
# and the transposes and views of their result (attention's [B, H, N, E] -> [B, N, H*E]):
# one copy out of the kernel's rows instead of a kernel of its own
LAYOUT_EPILOGUE_OPS = frozenset({"transpose"}) | VIEW_OPS
# normalizations group like reductions (their fusion kind is opaque)
NORMS = frozenset(name for name, op in OPS.items() if op.category == "norm")


def _kind(n: Node) -> str:
    if n.op in NORMS:
        return "reduce"
    op = OPS.get(n.op)
    return op.kind if op is not None else "opaque"


@dataclass
class Group:
    nodes: list[Node] = field(default_factory=list)
    anchor: str = ""  # "anchor", "reduce" or "" (elementwise/injective only)

    @property
    def output(self) -> Value:
        return self.nodes[-1].outputs[0]


class FuseError(RuntimeError):
    """A group failed the legality check (a bug in the grouping rules)."""


def partition(g: Graph) -> list[Group]:
    """The fusion groups of `g`, in the order of their last nodes (a topological order
    of the fused graph)."""
    uses = use_counts(g)
    outputs = set(g.outputs)
    group_of: dict[Value, Group] = {}
    groups: list[Group] = []

    def joinable(v: Value) -> Group | None:
        grp = group_of.get(v)
        if grp is None or grp.output is not v or uses[v] != 1 or v in outputs:
            return None
        return grp if len(grp.nodes) < MAX_NODES else None

    for n in g.nodes:
        kind = _kind(n)
        target: Group | None = None
        if len(n.outputs) == 1 and n.region is None:
            inputs = [v for v in n.inputs if v not in g.consts]
            cands = [grp for v in inputs if (grp := joinable(v)) is not None]
            if kind == "elementwise":
                target = cands[0] if cands else None
            elif kind == "injective":
                target = next((c for c in cands if c.anchor != "anchor"
                               or (n.op in LAYOUT_EPILOGUE_OPS and _has_layout_anchor(c))), None)
            elif kind == "reduce" and len(inputs) == 1 and cands and not cands[0].anchor:
                target = cands[0]  # the elementwise prologue of a reduction
                target.anchor = "reduce"
            elif n.op in LAYOUT_ANCHORS:
                target = _layout_prologue(n, joinable, groups)
        if target is None:
            target = Group(anchor=kind if kind in ("anchor", "reduce") else "")
            groups.append(target)
        target.nodes.append(n)
        if len(n.outputs) == 1:  # a split's outputs go their own ways: never joined
            group_of[n.outputs[0]] = target
    # a group's region node sits where its last node was: every input is defined by then
    position = {id(n): i for i, n in enumerate(g.nodes)}
    return sorted(groups, key=lambda grp: position[id(grp.nodes[-1])])


def _has_layout_anchor(grp: Group) -> bool:
    return any(m.op in LAYOUT_ANCHORS for m in grp.nodes)


def _layout_prologue(n: Node, joinable: Callable[[Value], Group | None],
                     groups: list[Group]) -> Group | None:
    """The layout-only groups (slices, transposes, views) that make `n`'s leading
    operands and feed nothing else, taken out of `groups` and merged into one new group
    for `n` to join; None if there are none."""
    pro: list[Group] = []
    for v in n.inputs[:LAYOUT_ANCHORS[n.op]]:
        grp = joinable(v)
        if (grp is not None and not grp.anchor and grp not in pro
                and all(m.op in LAYOUT_PROLOGUE_OPS for m in grp.nodes)):
            pro.append(grp)
    if not pro or sum(len(grp.nodes) for grp in pro) >= MAX_NODES:
        return None
    for grp in pro:
        groups.remove(grp)
    # the groups read only values from outside: one after the other is a topological order
    merged = Group([m for grp in pro for m in grp.nodes], anchor="anchor")
    groups.append(merged)
    return merged


def check(g: Graph, groups: list[Group]) -> None:
    """Every node in exactly one group; every group convex. Raises FuseError."""
    seen: set[int] = set()
    for grp in groups:
        for n in grp.nodes:
            if id(n) in seen:
                raise FuseError(f"node {n.op} is in two groups")
            seen.add(id(n))
    if len(seen) != len(g.nodes):
        raise FuseError(f"{len(g.nodes) - len(seen)} nodes are in no group")
    dg = to_networkx(g)
    for grp in groups:
        if len(grp.nodes) > 1 and not is_convex(dg, set(grp.nodes)):
            raise FuseError(f"group {kernel_name(grp.nodes)} is not convex")


def kernel_name(nodes: list[Node], limit: int = 4) -> str:
    """The group's ops joined by "_", views left out, and so is an anchor's layout
    prologue: slices and transposes feeding attention name it "attention"."""
    ops = [n.op for n in nodes if n.op not in VIEW_OPS] or [nodes[0].op]
    first = next((i for i, op in enumerate(ops) if op in LAYOUT_ANCHORS), 0)
    if all(op in LAYOUT_PROLOGUE_OPS for op in ops[:first]):
        ops = ops[first:]
    name = "_".join(ops[:limit])
    return name + (f"_and_{len(ops) - limit}_more" if len(ops) > limit else "")


def _region(g: Graph, grp: Group) -> tuple[Graph, list[Value]]:
    """The group's body as a graph of fresh inputs; returns it and the outer inputs."""
    inside = {v for n in grp.nodes for v in n.outputs}
    outer: list[Value] = []
    consts = {}
    mapping: dict[Value, Value] = {}
    for n in grp.nodes:
        for v in n.inputs:
            if v in inside or v in mapping:
                continue
            if v in g.consts:
                consts[v] = g.consts[v]
                mapping[v] = v
            else:
                mapping[v] = Value(v.type, v.hint)
                outer.append(v)
    nodes = tuple(Node(n.op, tuple(mapping.get(v, v) for v in n.inputs), n.outputs, n.attrs, n.loc)
                  for n in grp.nodes)
    body = Graph(kernel_name(grp.nodes), tuple(mapping[v] for v in outer), nodes,
                 (grp.output,), consts)
    return body, outer


@register("fuse")
def fuse(g: Graph) -> Graph:
    if any(n.region is not None for n in g.nodes):
        return g  # fused already: fusion is not repeated over regions
    groups = partition(g)
    check(g, groups)
    if all(len(grp.nodes) == 1 for grp in groups):
        return g
    nodes: list[Node] = []
    used_consts: set[Value] = set(g.outputs)
    for grp in groups:
        if len(grp.nodes) == 1:
            nodes.append(grp.nodes[0])
            used_consts.update(v for v in grp.nodes[0].inputs if v in g.consts)
            continue
        body, outer = _region(g, grp)
        nodes.append(Node("fused", tuple(outer), (grp.output,), Attrs(kernel=body.name),
                          grp.nodes[-1].loc, body))
        note("groups")
        note("nodes fused", len(grp.nodes))
    consts = {v: a for v, a in g.consts.items() if v in used_consts}
    return g.replace(nodes=tuple(nodes), consts=consts)


def kernel_groups(g: Graph) -> list[tuple[str, int, Node]]:
    """(kernel name, nodes in it, top-level node) per kernel of a fused graph: views
    (reshape, squeeze, unsqueeze) launch nothing and are left out."""
    out = []
    for n in g.nodes:
        if n.region is not None:
            out.append((str(n.attrs["kernel"]), len(n.region.nodes), n))
        elif n.op not in VIEW_OPS:
            out.append((n.op, 1, n))
    return out


def format_groups(g: Graph) -> str:
    """The text of `vcompile inspect --fusion` (`g` is fused first if it is not): one
    line per kernel, then the counts."""
    from vcompile.ir.printer import value_names
    from vcompile.ir.stats import all_nodes
    g = g if any(n.region is not None for n in g.nodes) else fuse(g)
    groups = kernel_groups(g)
    names = value_names(g)
    lines = [f"{'#':>4}  {'kernel':<40} {'ops':>3}  output"]
    for i, (name, size, n) in enumerate(groups):
        out = n.outputs[0]
        lines.append(f"{i:>4}  {name:<40} {size:>3}  %{names.get(out, '?')}: {out.type}")
    fused = sum(1 for _, size, _ in groups if size > 1)
    plain = sum(1 for n in all_nodes(g) if n.op not in VIEW_OPS)
    lines.append(f"kernels: {len(groups)} ({fused} fused groups; {plain} ops unfused, views excluded)")
    return "\n".join(lines) + "\n"


__all__ = ["FuseError", "Group", "check", "format_groups", "fuse", "kernel_groups", "kernel_name",
           "partition"]
