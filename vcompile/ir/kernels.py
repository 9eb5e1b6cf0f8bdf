"""The kernels a graph launches: which IR nodes each computes, its class and its FLOPs.

    kernel_table(g) => [{"node": 3, "kernel": "conv2d_add_relu", "class": "conv",
                         "ops": ["conv2d", "add", "relu"], "flops": 231211008,
                         "output": "f32[1,64,56,56]"}, ...]

One row per top-level node that launches something: a fused node (one fusion group,
one kernel) or a plain node; views (reshape, squeeze, unsqueeze, identity) launch
nothing and are left out. The table goes into an artifact's metadata so that a loaded
library can be profiled without its IR (codegen writes it, the report reads it).
Codegen names a group's Relax function `fused_<kernel>_<node index>`
(`codegen.emit.relax._emit_region`); `profile` uses that to match timed calls to rows.
"""
from __future__ import annotations

from typing import Any

from vcompile.ir.graph import Graph, Node
from vcompile.ir.ops import OPS
from vcompile.ir.stats import node_flops

# Most specific first: a fused group takes the first class any of its ops has. The
# classes are the op categories of the table (`OpDef.category`).
CLASSES = ("conv", "attention", "matmul", "norm", "pool", "reduce", "elementwise", "layout",
           "other")


def op_class(op: str) -> str:
    """The class of one op, for colours and profile aggregation: its category."""
    return OPS[op].category if op in OPS else "other"


def group_class(ops: list[str]) -> str:
    classes = {op_class(op) for op in ops}
    return next((c for c in CLASSES if c in classes), "other")


def node_ops(n: Node) -> list[str]:
    return [m.op for m in n.region.nodes] if n.region is not None else [n.op]


def kernel_table(g: Graph) -> list[dict[str, Any]]:
    """One row per kernel of `g` (see the module docstring)."""
    rows = []
    for i, n in enumerate(g.nodes):
        if n.region is None and n.op in OPS and OPS[n.op].view:
            continue
        ops = node_ops(n)
        rows.append({"node": i, "kernel": str(n.attrs.get("kernel", n.op)) if n.region is not None
                     else n.op, "class": group_class(ops), "ops": ops, "flops": node_flops(n),
                     "output": str(n.outputs[0].type) if n.outputs else ""})
    return rows
