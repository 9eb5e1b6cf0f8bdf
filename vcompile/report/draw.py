"""The IR drawn with Graphviz: one box per op, fusion groups as clusters.

    draw(g) => graphviz.Digraph;  render(g, "out.svg" | "out.png" | "out.dot")

- A box per op: the op name, its main attributes (kernel, strides, groups), its output
  type, and its constants folded into the label (`w f32[64,3,7,7]`), so weights do not
  add boxes. Graph inputs and outputs are ellipses.
- A fused node (a fusion group, one kernel) is a cluster named after its kernel,
  holding one box per op of its region.
- Fill colours by op class (`kernels.op_class`): conv, matmul, attention, norm, pool,
  reduce, elementwise, layout; `LEGEND` lists them.
- Collapsing (`collapse="blocks"`, or "auto" above `AUTO_LIMIT` boxes): top-level nodes
  are grouped into blocks by the first two indexed parts of their source location (the
  exporter's module path: `blocks.3`, `layers.1/blocks.4`). A block whose ops and shapes
  repeat an earlier block (layout-only nodes aside) is not drawn again; consecutive
  repeats become one double-bordered box "blocks.1 .. blocks.11: 11 block(s) like
  blocks.0". deit_tiny keeps block 0 and one box for the other eleven; swin_tiny keeps
  each stage's first two blocks (plain and shifted window) and one box for the rest.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph, Node, Value
from vcompile.report.kernels import op_class

COLORS = {"conv": "#f4a261", "matmul": "#e76f51", "attention": "#d62839", "norm": "#2a9d8f",
          "pool": "#8ecae6", "reduce": "#90be6d", "elementwise": "#e9c46a", "layout": "#d9d9d9",
          "other": "#ffffff"}
LEGEND = tuple(COLORS.items())
AUTO_LIMIT = 250
FORMATS = ("svg", "png", "dot")
_INDEXED = re.compile(r"([A-Za-z_]\w*?)[./](\d+)(?=$|[/.])")


class DrawError(VcompileError, ValueError):
    """A drawing that cannot be made: unknown format, Graphviz missing."""


def _attrs(n: Node) -> str:
    a = n.attrs
    parts = []
    if n.op.startswith("conv") and "strides" in a:
        k = "x".join(str(d) for d in n.inputs[1].shape[2:]) if len(n.inputs) > 1 else ""
        parts.append(f"{k} s{max(a['strides'])}" + (f" g{a['groups']}" if a.get("groups", 1) != 1 else ""))
    elif "kernel" in a and n.region is None and "pool" in n.op:
        parts.append("x".join(map(str, a["kernel"])))
    return " ".join(parts)


def node_label(n: Node, consts: Any) -> str:
    head = f"{n.op} {_attrs(n)}".strip()
    lines = [head]
    folded = [f"{_const_name(v.hint)} {v.type}" for v in dict.fromkeys(n.inputs) if v in consts]
    lines += folded[:3] + ([f"+{len(folded) - 3} consts"] if len(folded) > 3 else [])
    lines.append(" ".join(str(v.type) for v in n.outputs))
    return "\\n".join(lines)


def _const_name(hint: str) -> str:
    """'blocks_0_attn_qkv_weight' -> 'weight': the block is clear from the drawing."""
    return (hint.rsplit("_", 1)[-1] if len(hint) > 12 else hint) or "const"


def block_key(loc: str) -> str:
    """'/layers/layers.0/blocks/blocks.1/attn/MatMul' -> 'layers.0/blocks.1' ('' if none)."""
    return "/".join(f"{m[0]}.{m[1]}" for m in _INDEXED.findall(loc)[:2])


def _unit_key(n: Node) -> str:
    locs = [m.loc for m in n.region.nodes] if n.region is not None else [n.loc]
    return next((k for k in map(block_key, locs) if k), "")


def _signature(nodes: list[Node]) -> tuple[Any, ...]:
    """The ops and shapes of a block's computing nodes. Layout-only nodes are left out:
    CSE lets a later block reuse an earlier one's mask or reshape."""
    out = []
    for n in nodes:
        ops = tuple(m.op for m in (n.region.nodes if n.region is not None else [n]))
        if any(op_class(op) != "layout" for op in ops):
            out.append((ops, tuple(str(v.type) for v in n.outputs)))
    return tuple(out)


@dataclass
class _Block:
    key: str
    nodes: list[Node] = field(default_factory=list)
    like: str = ""          # the keys of the earlier blocks these repeat
    keys: list[str] = field(default_factory=list)  # merged repeats


def blocks(g: Graph) -> list[_Block]:
    """Consecutive top-level nodes with one block key, repeats marked and merged."""
    out: list[_Block] = []
    for n in g.nodes:
        k = _unit_key(n)
        if not out or out[-1].key != k or not k:
            out.append(_Block(k))
        out[-1].nodes.append(n)
    seen: dict[tuple[Any, ...], str] = {}
    merged: list[_Block] = []
    for b in out:
        sig = _signature(b.nodes)
        if b.key and sig in seen and len(b.nodes) > 1:
            b.like = seen[sig]
            if merged and merged[-1].like:  # a run of repeats: one box
                last = merged[-1]
                last.nodes += b.nodes
                last.keys.append(b.key)
                if b.like not in last.like.split(", "):
                    last.like += f", {b.like}"
                continue
            b.keys = [b.key]
        elif b.key:
            seen.setdefault(sig, b.key)
        merged.append(b)
    return merged


def count_boxes(g: Graph) -> int:
    return sum(len(n.region.nodes) if n.region is not None else 1 for n in g.nodes)


def draw(g: Graph, collapse: str = "auto") -> Any:
    """A `graphviz.Digraph` of `g` (see the module docstring for `collapse`)."""
    import graphviz
    if collapse not in ("auto", "blocks", "none"):
        raise DrawError(f"collapse must be auto, blocks or none, got {collapse!r}")
    fold = collapse == "blocks" or (collapse == "auto" and count_boxes(g) > AUTO_LIMIT)
    dot = graphviz.Digraph(g.name, graph_attr={"rankdir": "TB", "fontname": "Helvetica",
                                               "label": f"@{g.name}", "labelloc": "t"},
                           node_attr={"shape": "box", "style": "rounded,filled", "fontsize": "10",
                                      "fontname": "Helvetica"},
                           edge_attr={"arrowsize": "0.6"})
    producer: dict[Value, str] = {}
    for i, v in enumerate(g.inputs):
        producer[v] = f"in{i}"
        dot.node(f"in{i}", f"{v.hint or 'input'}\\n{v.type}", shape="ellipse", style="filled",
                 fillcolor="#ffffff")
    edges: set[tuple[str, str]] = set()
    position = {id(n): i for i, n in enumerate(g.nodes)}
    for b in blocks(g) if fold else [_Block("", list(g.nodes))]:
        if b.like:
            _draw_repeat(dot, b, producer, edges)
            continue
        for n in b.nodes:
            _draw_node(dot, g, n, position[id(n)], producer, edges)
    for i, v in enumerate(g.outputs):
        dot.node(f"out{i}", f"{v.hint or 'output'}\\n{v.type}", shape="ellipse", style="filled",
                 fillcolor="#ffffff")
        if v in producer:
            edges.add((producer[v], f"out{i}"))
    for a, b2 in sorted(edges):
        dot.edge(a, b2)
    return dot


def _link(v: Value, to: str, producer: dict[Value, str], edges: set[tuple[str, str]]) -> None:
    src = producer.get(v)
    if src is not None and src != to:
        edges.add((src, to))


def _draw_node(dot: Any, g: Graph, n: Node, i: int, producer: dict[Value, str],
               edges: set[tuple[str, str]]) -> None:
    if n.region is None:
        dot.node(f"n{i}", node_label(n, g.consts), fillcolor=COLORS[op_class(n.op)])
        for v in n.inputs:
            _link(v, f"n{i}", producer, edges)
        producer.update((v, f"n{i}") for v in n.outputs)
        return
    body = n.region
    outer = dict(zip(body.inputs, n.inputs, strict=True))
    inner: dict[Value, str] = {}
    with dot.subgraph(name=f"cluster_{i}") as c:
        c.attr(label=str(n.attrs.get("kernel", "fused")), style="rounded,dashed", color="#555555",
               fontsize="10")
        for j, m in enumerate(body.nodes):
            nid = f"n{i}_{j}"
            c.node(nid, node_label(m, body.consts), fillcolor=COLORS[op_class(m.op)])
            for v in m.inputs:
                if v in inner:
                    edges.add((inner[v], nid))
                elif v in outer:
                    _link(outer[v], nid, producer, edges)
            inner.update((v, nid) for v in m.outputs)
    for v_out, v_in in zip(n.outputs, body.outputs, strict=True):
        producer[v_out] = inner.get(v_in, f"n{i}_0")


def _draw_repeat(dot: Any, b: _Block, producer: dict[Value, str], edges: set[tuple[str, str]]) -> None:
    nid = f"rep_{b.keys[0]}".replace("/", "_").replace(".", "_")
    ops = sum(len(n.region.nodes) if n.region is not None else 1 for n in b.nodes)
    span = b.keys[0] if len(b.keys) == 1 else f"{b.keys[0]} .. {b.keys[-1]}"
    dot.node(nid, f"{span}\\n{len(b.keys)} block(s) like {b.like}\\n{ops} ops",
             shape="box", style="rounded,filled", peripheries="2", fillcolor="#f0f0f0")
    mine = {v for n in b.nodes for v in n.outputs}
    for n in b.nodes:
        for v in n.inputs:
            if v not in mine:
                _link(v, nid, producer, edges)
    producer.update((v, nid) for v in mine)


def render(g: Graph, path: str | Path, collapse: str = "auto") -> tuple[int, int]:
    """Draw `g` into `path` (the format is the suffix: .svg, .png, .dot); returns the
    boxes and clusters drawn (fewer than the ops and groups when blocks were folded)."""
    from vcompile.files import write_atomic
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DrawError(f"cannot draw into {path}: the file must end in .svg, .png or .dot")
    dot = draw(g, collapse)
    write_atomic(path, dot.source if fmt == "dot" else pipe(dot, fmt))
    body = "".join(dot.body)
    boxes = len(re.findall(r"^\s*(?:n\d+(?:_\d+)?|rep_\w+) \[", body, re.M))
    return boxes, body.count("subgraph cluster_")


def pipe(dot: Any, fmt: str) -> bytes:
    """The drawing as `fmt` bytes, through Graphviz's `dot` program."""
    import graphviz
    try:
        return dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound as e:
        raise DrawError("Graphviz's `dot` program is not installed: apt-get install graphviz") from e
