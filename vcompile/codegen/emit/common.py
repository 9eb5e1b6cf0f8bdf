"""Helpers the emission rules (`emit_*`, `schedules`) share: node attributes, layouts,
the float32-at-least compute dtype of statistics, typed scalars and constant operands.

    LAYOUT[nd]                       (data, kernel) layout names of an nd-d conv/pool: NC[D]HW
    attr_int(n, key) / attr_ints     an int / int-list attribute of a node
    static_shape(n)                  the node's (static) output shape as ints
    compute_dtype(dt)                f16 -> f32, else dt (ONNX stash_type)
    to_compute(ctx, x, dt) / from_compute(ctx, y, dt)
                                     cast an f16 operand up, and the result back down
    typed_scalar(v, dt)              a tirx constant of IR dtype `dt` (pad values)
    const_value(e)                   the numpy value of a relax constant, or None
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax

from vcompile.codegen.emit.relax import TVM_DTYPE, Ctx
from vcompile.ir.graph import Node

LAYOUT = {1: ("NCW", "OIW"), 2: ("NCHW", "OIHW"), 3: ("NCDHW", "OIDHW")}


def attr_int(n: Node, key: str) -> int:
    return int(n.attrs[key])  # type: ignore[arg-type]


def attr_ints(n: Node, key: str) -> list[int]:
    return [int(v) for v in n.attrs[key]]  # type: ignore[union-attr]


def static_shape(n: Node) -> list[int]:
    return [int(d) for d in n.output.shape]


def compute_dtype(dt: str) -> str:
    return "f32" if dt == "f16" else dt


def to_compute(ctx: Ctx, x: Any, dt: str) -> Any:
    """Statistics run in float32 at least (ONNX stash_type)."""
    return ctx.emit(relax.op.astype(x, "float32")) if dt == "f16" else x


def from_compute(ctx: Ctx, y: Any, dt: str) -> Any:
    return ctx.emit(relax.op.astype(y, "float16")) if dt == "f16" else y


def typed_scalar(v: float, dt: str) -> Any:
    from tvm import tirx
    if dt[0] in "iu":
        return tirx.const(int(v), TVM_DTYPE[dt])
    if dt == "bool":
        return tirx.const(bool(v), "bool")
    return tirx.const(v, TVM_DTYPE[dt])


def const_value(e: relax.Expr) -> np.ndarray | None:
    return e.value.numpy() if isinstance(e, tvm.ir.expr.Constant) else None
