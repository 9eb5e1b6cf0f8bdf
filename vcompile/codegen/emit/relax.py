"""IR -> Relax: one emission rule per op, over `relax.BlockBuilder`.

    Graph(inputs, nodes, outputs, consts)
      => IRModule{ main(inputs...) -> (outputs...) }   one dataflow block, one binding per node

`EMIT[op](ctx, node, args) -> relax.Expr | tuple[relax.Expr, ...]` (a tuple for a node
with several outputs). Rules live in `emit.basic` (elementwise, linalg), `emit.shape`
(data movement), `emit.nn` (conv, normalization, resize, quantization), `emit.pool` and
`emit.int`/`emit.int_linalg`; importing the `emit` package (and so this module) registers
them all, and this module imports none of them. Constants become `relax.const` (their
bytes end up in the library).
Symbolic dims become one `tirx.Var` per name, shared by every shape that names it.
`main` always returns a tuple, so the runtime sees a list of outputs whatever the count.

With CPU tiles, `emit.tiled`'s `TILED` rules are tried first and fall back to `EMIT`.

Precondition: a verified graph whose ops are all in `vcompile.ir.ops.OPS`, or fused
nodes (with a `region`) whose bodies are. Each fused node becomes a private Relax
function with the attribute `Primitive`, called from `main`: TVM's FuseTIR turns each
into one PrimFunc, so one fusion group of the `fuse` pass is one kernel.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tvm
from tvm import relax, tirx

from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph, Node, Value
from vcompile.ir.ops import VIEW_OPS
from vcompile.ir.types import Dim, TensorType

Emitted = relax.Expr | tuple[relax.Expr, ...]
EmitRule = Callable[["Ctx", Node, list[relax.Expr]], Emitted]
EMIT: dict[str, EmitRule] = {}
# Rules that may decline (return None); tried first when the build has CPU tiles.
TILED: dict[str, Callable[[Ctx, Node, list[relax.Expr]], Emitted | None]] = {}

TVM_DTYPE = {"f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64", "i8": "int8",
             "i16": "int16", "i32": "int32", "i64": "int64", "u8": "uint8", "u16": "uint16",
             "u32": "uint32", "u64": "uint64", "bool": "bool"}


class CodegenError(VcompileError, ValueError):
    """A graph the Relax emitter cannot translate (unknown op, unsupported attrs)."""


def rule(*ops: str) -> Callable[[EmitRule], EmitRule]:
    """Register one emission function for one or more ops."""
    def deco(fn: EmitRule) -> EmitRule:
        for op in ops:
            if op in EMIT:
                raise ValueError(f"emission rule for {op!r} registered twice")
            EMIT[op] = fn
        return fn
    return deco


@dataclass
class Ctx:
    """What a rule needs besides its node: the block builder and the symbol table."""
    bb: relax.BlockBuilder
    syms: dict[str, tirx.Var] = field(default_factory=dict)
    tiles: Any = None  # cpu.schedules.tiles.CpuTiles: emit the tiled CPU kernels (emit.tiled)
    regions: dict[int, Any] = field(default_factory=dict)  # id(fused node) -> its GlobalVar

    def dim(self, d: Dim) -> Any:
        if isinstance(d, str):
            return self.syms.setdefault(d, tirx.Var(d, "int64"))
        return int(d)

    def shape(self, shape: tuple[Dim, ...]) -> list[Any]:
        return [self.dim(d) for d in shape]

    def sinfo(self, t: TensorType) -> relax.TensorType:
        return relax.TensorType(shape=self.shape(t.shape), dtype=TVM_DTYPE[t.dtype])

    def emit(self, expr: relax.Expr) -> relax.Expr:
        return self.bb.emit(expr)

    def emit_te(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> relax.Expr:
        return self.bb.emit_te(fn, *args, **kw)

    def reshape(self, x: relax.Expr, shape: list[Any]) -> relax.Expr:
        """`x` reshaped to `shape`, or `x` itself when it has that static shape already.
        Inside a fusion group a reshape is a copy loop, not a view: an identity one cost
        every grouped linear a pass over its input (pvt's fc1: [3136, 32] read twice)."""
        cur = getattr(getattr(x, "ty", None), "shape", None)
        values = getattr(cur, "values", None)
        if values is not None and len(values) == len(shape) and all(
                isinstance(v, tirx.IntImm) and isinstance(d, int) and int(v) == d
                for v, d in zip(values, shape, strict=True)):
            return x
        return self.emit(relax.op.reshape(x, shape))

    def const(self, value: Any, dtype: str) -> relax.Expr:
        """A constant of IR dtype `dtype` (scalars are 0-d tensors)."""
        return np_const(np.asarray(value, dtype=TensorType(dtype, ()).np_dtype))


def np_const(arr: np.ndarray) -> relax.Expr:
    """A Relax constant of exactly the array's dtype.

    NOTE: relax.const without a dtype narrows 0-d int64 to int32 and float64 to float32.
    """
    arr = np.asarray(arr)
    return relax.const(np.ascontiguousarray(arr) if arr.ndim else arr, str(arr.dtype))


def _emit_node(ctx: Ctx, n: Node, args: list[relax.Expr]) -> tuple[relax.Expr, ...]:
    if n.region is not None:
        gv = ctx.regions.get(id(n))
        if gv is None:  # a region inside a region: inline it
            return tuple(_emit_body(ctx, n.region, args))
        return _call_region(ctx, n, gv, args)
    if id(n) in ctx.regions:  # one node as one kernel
        # the one-node region holds its constants; pass each other input once
        args = [a for a in dict(zip(n.inputs, args, strict=True)).values() if not _is_const(a)]
        return _call_region(ctx, n, ctx.regions[id(n)], args)
    if n.op not in EMIT:
        raise CodegenError(f"no Relax emission rule for op {n.op!r}"
                           + (f" (source node {n.loc!r})" if n.loc else ""))
    if all(v.type.is_static and v.type.size == 0 for v in n.outputs):
        # NOTE: empty results need no computation, and several Relax ops reject them (the
        # packed kernels' reshapes too: Relax reads a 0 in a reshape as "keep this dim")
        return tuple(ctx.emit(relax.op.zeros(ctx.shape(v.shape), TVM_DTYPE[v.dtype]))
                     for v in n.outputs)
    if ctx.tiles is not None and n.op in TILED:
        out = _guarded(TILED[n.op], ctx, n, args)
        if out is not None:
            return _check_arity(n, out)
    return _check_arity(n, _guarded(EMIT[n.op], ctx, n, args))


def _is_const(a: relax.Expr) -> bool:
    return isinstance(a, tvm.ir.expr.Constant)


def _call_region(ctx: Ctx, n: Node, gv: Any, args: list[relax.Expr]) -> tuple[relax.Expr, ...]:
    out = ctx.emit(relax.Call(gv, args))
    if len(n.outputs) == 1:
        return (out,)
    return tuple(ctx.emit(relax.TupleGetItem(out, i)) for i in range(len(n.outputs)))


def _guarded(fn: Callable[..., Any], ctx: Ctx, n: Node, args: list[relax.Expr]) -> Any:
    try:
        return fn(ctx, n, args)
    except CodegenError:
        raise
    except Exception as e:  # a TVM error: name the node, keep the cause
        where = f" (source node {n.loc!r})" if n.loc else ""
        raise CodegenError(f"emitting {n.op}{where} failed: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}") from e


def _check_arity(n: Node, out: Emitted) -> tuple[relax.Expr, ...]:
    outs = out if isinstance(out, tuple) else (out,)
    if len(outs) != len(n.outputs):
        raise CodegenError(f"rule for {n.op} gave {len(outs)} outputs, node has {len(n.outputs)}")
    return outs


def _emit_body(ctx: Ctx, g: Graph, args: list[relax.Expr]) -> list[relax.Expr]:
    env: dict[Value, relax.Expr] = dict(zip(g.inputs, args, strict=False))
    for v, arr in g.consts.items():
        env[v] = np_const(arr)
    for n in g.nodes:
        outs = _emit_node(ctx, n, [env[v] for v in n.inputs])
        env.update(zip(n.outputs, outs, strict=False))
    return [env[v] for v in g.outputs]


def to_relax(g: Graph, input_names: list[str] | None = None, tiles: Any = None,
             one_kernel_per_node: bool = False) -> tvm.IRModule:
    """The Relax module whose `main` computes `g` (inputs in order; returns a tuple).

    With `tiles` (a `cpu.schedules.tiles.CpuTiles`), convs and matmuls become the packed,
    tiled kernels of `emit.tiled` that the CPU schedules claim. With
    `one_kernel_per_node`, every single-output node that is not a view becomes a
    `Primitive` function as fused nodes do, so that it is one kernel too (an op such as
    linear otherwise emits a contraction and a bias add that TVM would launch apart).
    """
    ctx = Ctx(relax.BlockBuilder(), tiles=tiles)
    for i, n in enumerate(g.nodes):
        if n.region is not None:
            ctx.regions[id(n)] = _emit_region(ctx, n, i)
        elif one_kernel_per_node and len(n.outputs) == 1 and n.op not in VIEW_OPS:
            ctx.regions[id(n)] = _emit_region(ctx, _as_region(g, n), i)
    names = input_names or [v.hint or f"input{i}" for i, v in enumerate(g.inputs)]
    params = [relax.Var(_ident(nm, i), ctx.sinfo(v.type))
              for i, (nm, v) in enumerate(zip(names, g.inputs, strict=True))]
    with ctx.bb.function("main", params=params):
        with ctx.bb.dataflow():
            outs = _emit_body(ctx, g, list(params))
            result = ctx.bb.emit_output(relax.Tuple(outs))
        ctx.bb.emit_func_output(result)
    return ctx.bb.get()


def _as_region(g: Graph, n: Node) -> Node:
    """A one-node fused node computing `n` (constant inputs move inside)."""
    ins = [v for v in dict.fromkeys(n.inputs) if v not in g.consts]
    fresh = {v: Value(v.type, v.hint) for v in ins}
    inner = Node(n.op, tuple(fresh.get(v, v) for v in n.inputs), n.outputs, n.attrs, n.loc)
    body = Graph(n.op, tuple(fresh[v] for v in ins), (inner,), n.outputs,
                 {v: g.consts[v] for v in n.inputs if v in g.consts})
    return Node("fused", tuple(ins), n.outputs, {"kernel": n.op}, n.loc, body)


def _emit_region(ctx: Ctx, n: Node, index: int) -> Any:
    """A fused node's body as a private `Primitive` function; returns its GlobalVar."""
    body = n.region
    assert body is not None
    name = _ident(f"fused_{n.attrs.get('kernel', n.op)}_{index}", index)
    params = [relax.Var(f"p{i}", ctx.sinfo(v.type)) for i, v in enumerate(body.inputs)]
    with ctx.bb.function(name, params=params, attrs={"Primitive": True}, private=True):
        with ctx.bb.dataflow():
            outs = _emit_body(ctx, body, list(params))
            result = ctx.bb.emit_output(outs[0] if len(outs) == 1 else relax.Tuple(outs))
        # NOTE: the builder returns an existing function's GlobalVar for an identical body
        gv = ctx.bb.emit_func_output(result)
    return gv


def _ident(name: str, i: int) -> str:
    clean = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return clean if clean and not clean[0].isdigit() else f"in{i}_{clean}"
