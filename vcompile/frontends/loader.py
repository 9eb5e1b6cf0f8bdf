"""One entry point from "what the user named" to IR, shared by the CLI and `compile()`.

    load_model("model.onnx" | onnx.ModelProto)   => frontends.onnx.load
    load_model("block.vir")                      => ir.parse_graph (missing constants seeded)
    load_model(ir.Graph)                         => the graph as is
    load_model(nn.Module, example_inputs=(x,))   => frontends.torch.load
    load_model("timm:resnet18")                  => timm model, seeded random weights
    load_model("pkg.module:factory", {"x": (1, 3, 224, 224)})
                                                 => import pkg.module, call factory()

For modules without example inputs, `input_shapes` (name -> dims, in argument order;
the CLI's `--input x=1x3x224x224`) gives seeded standard-normal f32 inputs; a timm
model falls back to its pretrained config's input size. onnx and torch are imported
only on the paths that need them.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from vcompile.frontends import FrontendError
from vcompile.ir.graph import Graph

__all__ = ["ModelSpecError", "load_model", "module_from_reference"]

Shapes = Mapping[str, Sequence[int]]


class ModelSpecError(FrontendError):
    """A model reference that names nothing loadable (bad path, module or factory)."""


def load_model(spec: Any, input_shapes: Shapes | None = None,
               example_inputs: Sequence[Any] | None = None, *,
               dynamic_batch: bool = False) -> Graph:
    """The canonical IR of `spec` (see the module docstring for what it may be)."""
    if isinstance(spec, Graph):
        if input_shapes or example_inputs:
            raise ModelSpecError("input shapes apply to ONNX and PyTorch models; a Graph "
                                 "already has its types")
        return spec
    if _is_vir_path(spec):
        if input_shapes:
            raise ModelSpecError("--input applies to ONNX models; a .vir file fixes its own shapes")
        from vcompile.ir.parser import parse_graph
        with open(spec) as f:
            return parse_graph(f.read())
    if type(spec).__name__ == "ModelProto" or _is_onnx_path(spec):
        if example_inputs is not None:
            raise ModelSpecError("example_inputs apply to PyTorch modules; for ONNX use "
                                 "input_shapes")
        from vcompile.frontends import onnx as onnx_frontend
        return onnx_frontend.load(spec, input_shapes=input_shapes)
    if isinstance(spec, str | os.PathLike):
        module, default = module_from_reference(os.fspath(spec))
    elif _is_module(spec):
        module, default = spec, None
    else:
        raise ModelSpecError(f"cannot load a {type(spec).__name__}: pass an .onnx path, an "
                             "onnx.ModelProto, a vcompile Graph, an nn.Module, 'timm:NAME' or "
                             "'pkg.module:factory'")
    from vcompile.frontends import torch as torch_frontend
    inputs = example_inputs if example_inputs is not None else _inputs(input_shapes, default)
    return torch_frontend.load(module, inputs, dynamic_batch=dynamic_batch)


def _is_vir_path(spec: Any) -> bool:
    return isinstance(spec, str | os.PathLike) and os.fspath(spec).endswith(".vir") \
        and _existing_file(os.fspath(spec), ".vir")


def _existing_file(path: str, kind: str = ".onnx") -> bool:
    if not os.path.exists(path):
        raise ModelSpecError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelSpecError(f"{path} is a directory; give {_a(kind)} file")
    if not os.path.isfile(path):
        raise ModelSpecError(f"{path}: not a file; give {_a(kind)} file")
    return True


def _a(kind: str) -> str:
    return f"an {kind}" if kind == ".onnx" else f"a {kind}"


def _is_onnx_path(spec: Any) -> bool:
    if not isinstance(spec, str | os.PathLike):
        return False
    path = os.fspath(spec)
    if path.endswith(".onnx"):
        return _existing_file(path)
    if os.path.isdir(path):
        raise ModelSpecError(f"{path} is a directory; give an .onnx file (or 'timm:NAME' or "
                             "'pkg.module:factory')")
    if os.path.exists(path):
        raise ModelSpecError(f"cannot load {path}: expected an .onnx file, 'timm:NAME' or "
                             "'pkg.module:factory'")
    return False


def _is_module(x: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module"
               for c in type(x).__mro__)


def module_from_reference(ref: str) -> tuple[Any, tuple[int, ...] | None]:
    """('timm:NAME' | 'pkg.module:factory') -> (nn.Module, default input shape or None)."""
    prefix, sep, name = ref.partition(":")
    if not sep or not prefix or not name:
        raise ModelSpecError(f"cannot load {ref!r}: no such file; expected an .onnx path, "
                             "'timm:NAME' or 'pkg.module:factory'")
    if prefix == "timm":
        from vcompile.models import create_timm
        model, shape = create_timm(name)
        return model, shape
    try:
        mod = importlib.import_module(prefix)
    except ImportError as e:
        raise ModelSpecError(f"cannot import {prefix!r} for {ref!r}: {e}") from None
    factory = getattr(mod, name, None)
    if not callable(factory):
        raise ModelSpecError(f"{prefix!r} has no callable {name!r} (from {ref!r})")
    model = factory()
    if not _is_module(model):
        raise ModelSpecError(f"{ref}() returned a {type(model).__name__}, not an nn.Module")
    return model, None


def _inputs(input_shapes: Shapes | None, default: tuple[int, ...] | None) -> tuple[Any, ...]:
    import torch
    shapes = list((input_shapes or {}).values())
    if not shapes:
        if default is None:
            raise ModelSpecError("a PyTorch model needs example inputs or input shapes "
                                 "(--input x=1x3x224x224)")
        shapes = [default]
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randn(tuple(int(d) for d in s), generator=gen) for s in shapes)
