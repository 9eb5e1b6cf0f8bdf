"""The PyTorch frontend: `load(module, example_inputs, dynamic_batch=False) -> Graph`.

    nn.Module => torch.export.export (eval mode, no grad)
              => run_decompositions(core ATen, but conv, linear, layer_norm, batch_norm,
                 group_norm, softmax, gelu, sdpa, hardswish/hardsigmoid/silu,
                 adaptive_avg_pool2d and upsample kept whole)
              => canonical IR (the converters in `torch_ops` and `torch_nn`)

Parameters, buffers and lifted tensor constants become graph constants. Any ATen
node whose tensor inputs are all known at import time (constants, arange, index
tables) is evaluated eagerly by torch itself, so constant subgraphs never reach the
IR and fold exactly as PyTorch computes them. With `dynamic_batch=True` dim 0 of
every input is the symbol `N`. Every node's `loc` is the FX node's module path
(`blocks.0.attn.qkv`) or, outside any submodule, the FX node name.

Every failure is a one-line `FrontendError`: `ExportError` when torch.export cannot
trace the module (it names the failing frame and suggests ONNX), `UnsupportedOp`
listing every untranslatable ATen op with the module path of each node, and
`ConversionError` for a supported op used in a way the IR cannot express.
"""
from __future__ import annotations

import operator
import os
import re
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch  # NOTE: absolute import: the real torch, not this module

from vcompile.frontends import (
    FrontendError,
    UnsupportedOp,
    torch_nn,  # noqa: F401  (registers the nn converters)
)
from vcompile.frontends.onnx_ctx import ConversionError, sanitize
from vcompile.frontends.torch_ops import (
    CONVERTERS,
    PASS_THROUGH,
    SKIP,
    Call,
    Sym,
    TorchCtx,
    to_numpy,
    to_torch,
)
from vcompile.ir.graph import Graph, Value
from vcompile.ir.types import TensorType

__all__ = ["ConversionError", "ExportError", "FrontendError", "UnsupportedOp", "export",
           "load", "supported_ops"]

BATCH = "N"
# Ops kept whole: the IR has them (or a short exact lowering), and their core-ATen
# decompositions would hide them from every pattern downstream.
KEEP = ("conv", "linear", "layer_norm", "batch_norm", "group_norm", "softmax", "gelu",
        "scaled_dot_product", "hardswish", "hardsigmoid", "silu", "adaptive_avg_pool",
        "upsample", "matmul")
_TORCH_DIR = os.path.dirname(torch.__file__)


class ExportError(FrontendError):
    """torch.export could not trace the module (data-dependent control flow, ...)."""


def supported_ops() -> list[str]:
    return sorted(CONVERTERS)


def load(module: torch.nn.Module, example_inputs: Sequence[Any],
         dynamic_batch: bool = False) -> Graph:
    """Import an nn.Module as a canonical vcompile Graph, tracing it on `example_inputs`."""
    ep = export(module, example_inputs, dynamic_batch)
    return convert(ep, sanitize(type(module).__name__, "main"))


def decomposition_table() -> dict[Any, Any]:
    table = torch.export.default_decompositions()
    for op in list(table):
        if any(k in op.name() for k in KEEP):
            del table[op]
    return table


def export(module: torch.nn.Module, example_inputs: Sequence[Any],
           dynamic_batch: bool = False) -> Any:
    """The module's ExportedProgram in core ATen (with the KEEP ops whole)."""
    args = tuple(to_torch(x) if isinstance(x, np.ndarray) else x for x in example_inputs)
    dyn = None
    if dynamic_batch:
        # NOTE: torch.export specializes a size-1 dim to the constant 1, so trace at batch 2.
        args = tuple(x.expand(2, *x.shape[1:]).clone() if x.shape[0] == 1 else x for x in args)
        dim = torch.export.Dim(BATCH, min=1)
        dyn = tuple({0: dim} for _ in args)
    try:
        with torch.no_grad():
            ep = torch.export.export(module.eval(), args, dynamic_shapes=dyn)
    except Exception as e:  # noqa: BLE001  (torch raises many kinds)
        raise ExportError(_explain(module, e)) from None
    try:
        return ep.run_decompositions(decomposition_table())
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"decomposing the exported {type(module).__name__} failed: "
                          f"{type(e).__name__}: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    return lines[0][:300] if lines else type(e).__name__


def _user_frame(e: BaseException) -> str:
    """file:line of the innermost frame outside torch where tracing failed."""
    seen: list[str] = []
    err: BaseException | None = e
    while err is not None:
        for f in traceback.extract_tb(err.__traceback__):
            here = os.path.abspath(f.filename)
            if not here.startswith(_TORCH_DIR) and "vcompile/frontends" not in here:
                seen.append(f"{f.filename}:{f.lineno} in {f.name}")
        err = err.__cause__ or err.__context__
    if seen:
        return seen[-1]
    m = re.search(r"File: (\S+):(\d+) in (\w+)", str(e)) or \
        re.search(r'File "([^"]+)", line (\d+), in (\w+)', str(e))
    return f"{m.group(1)}:{m.group(2)} in {m.group(3)}" if m else "an unknown frame"


def _explain(module: torch.nn.Module, e: BaseException) -> str:
    what = _first_line(e)
    data_dep = "data-dependent" in str(e) or type(e).__name__.startswith("GuardOnDataDependent")
    why = "data-dependent control flow" if data_dep else type(e).__name__
    return (f"torch.export cannot trace {type(module).__name__} ({why}) at {_user_frame(e)}: "
            f"{what}; export it to ONNX instead (torch.onnx.export(model, args, "
            "'model.onnx', dynamo=False)) and load the .onnx file")


# ---- conversion ---------------------------------------------------------------------------

_POISON = object()  # the output of an unsupported node: its users are skipped


def _lifted(ep: Any) -> dict[str, tuple[str, Any]]:
    """Placeholder name -> (target, tensor) for parameters, buffers and constants."""
    out = {}
    for spec in ep.graph_signature.input_specs:
        if spec.kind.name == "USER_INPUT" or spec.target is None:
            continue
        t = ep.state_dict.get(spec.target)
        if t is None:
            t = ep.constants.get(spec.target)
        out[spec.arg.name] = (spec.target, t)
    return out


def _symbols(ep: Any) -> dict[str, str]:
    """Free symbols of the user inputs' shapes -> IR dim names (dim 0 -> N)."""
    names: dict[str, str] = {}
    for spec in ep.graph_signature.input_specs:
        if spec.kind.name != "USER_INPUT":
            continue
        node = next(n for n in ep.graph.nodes if n.name == spec.arg.name)
        val = node.meta.get("val")
        for i, d in enumerate(getattr(val, "shape", ())):
            if isinstance(d, torch.SymInt) and str(d.node.expr) not in names:
                names[str(d.node.expr)] = BATCH if i == 0 else sanitize(str(d.node.expr))
    return names


def convert(ep: Any, name: str = "main") -> Graph:
    ctx = TorchCtx(name, 0)
    ctx.symbols = _symbols(ep)
    lifted = _lifted(ep)
    env: dict[Any, Any] = {}
    bad: dict[str, list[str]] = {}
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            env[node] = _placeholder(ctx, node, lifted)
        elif node.op == "call_function":
            env[node] = _call(ctx, node, env, bad)
        elif node.op == "output":
            if bad:
                raise UnsupportedOp(bad, supported_ops(), source="ATen")
            return _outputs(ctx, ep, node, env)
    raise FrontendError("the exported program has no output node")


def _placeholder(ctx: TorchCtx, node: Any, lifted: dict[str, tuple[str, Any]]) -> Any:
    if node.name in lifted:
        target, t = lifted[node.name]
        if t is None:
            raise ConversionError(f"lifted input {target!r} has no tensor in the exported program")
        arr = to_numpy(t)
        ctx.const_hints[id(arr)] = sanitize("_".join(target.split(".")[-2:]), "c")
        return arr
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        return ctx.dim(val)  # a non-tensor user input, specialized by torch.export
    return ctx.bb.input(TensorType(ctx.ir_dtype(val.dtype), ctx.dims(val.shape)),
                        hint=sanitize(node.name, "x"))


def _loc(node: Any) -> str:
    stack = node.meta.get("nn_module_stack")
    path = list(stack.values())[-1][0] if stack else ""
    return path or node.name


_HINTS = {"_native_batch_norm_legit_no_training": "bn", "native_group_norm": "gn",
          "scaled_dot_product_attention": "attn", "adaptive_avg_pool2d": "pool",
          "max_pool2d_with_indices": "max_pool", "split_with_sizes": "split",
          "constant_pad_nd": "pad", "conv_transpose2d": "convt"}


def _hint(node: Any) -> str:
    base = re.sub(r"_\d+$", "", node.name)
    return _HINTS.get(base, sanitize(base.strip("_")[:16], "v"))


def _call(ctx: TorchCtx, node: Any, env: dict[Any, Any], bad: dict[str, list[str]]) -> Any:
    args = torch.fx.node.map_arg(node.args, lambda n: env[n])
    kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
    flat = _flatten((args, kwargs))
    if any(x is _POISON for x in flat):
        return _POISON
    val = node.meta.get("val")
    key = str(node.target)
    if val is not None and not isinstance(val, (torch.Tensor, list, tuple)):
        return ctx.dim(val)  # sym_size, SymInt arithmetic: the dims, not the computation
    if node.target is operator.getitem:
        return args[0][args[1]]
    if key in SKIP:
        return None
    if key in PASS_THROUGH:
        return args[0]
    if not any(isinstance(x, (Value, str, Sym)) for x in flat):
        return _fold(node, args, kwargs)
    conv = CONVERTERS.get(key)
    if conv is None:
        bad.setdefault(key, []).append(_loc(node))
        return _POISON
    ctx.loc, ctx.hint, ctx.op_type = _loc(node), _hint(node), key
    return conv(ctx, Call.bind(ctx, node, args, kwargs))


def _flatten(x: Any) -> list[Any]:
    if isinstance(x, (list, tuple)):
        return [y for item in x for y in _flatten(item)]
    if isinstance(x, dict):
        return _flatten(list(x.values()))
    return [x]


def _fold(node: Any, args: Any, kwargs: Any) -> Any:
    """Evaluate a node whose inputs are all known with torch itself."""
    def conv(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            return to_torch(x)
        if isinstance(x, (list, tuple)):
            return type(x)(conv(y) for y in x)
        return x
    with torch.no_grad():
        res = node.target(*conv(args), **{k: conv(v) for k, v in kwargs.items()})
    return _to_known(res)


def _to_known(res: Any) -> Any:
    if isinstance(res, torch.Tensor):
        return to_numpy(res)
    if isinstance(res, (list, tuple)):
        return tuple(_to_known(r) for r in res)
    return res


def _outputs(ctx: TorchCtx, ep: Any, node: Any, env: dict[Any, Any]) -> Graph:
    outs: list[Value] = []
    specs = ep.graph_signature.output_specs
    for spec, arg in zip(specs, node.args[0], strict=True):
        if spec.kind.name != "USER_OUTPUT":
            continue
        ctx.loc, ctx.hint = "output", "y"
        v = ctx.value(env[arg], hint="y")
        if v in ctx.bb.inputs or v in ctx.bb.consts or v in outs:
            v = ctx.bb.emit("identity", v, hint="y", loc="output")
        outs.append(v)
    return ctx.bb.build(*outs)
