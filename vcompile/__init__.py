"""vcompile: a neural-network graph compiler (ONNX/PyTorch -> IR -> passes -> TVM).

`vcompile.compile(model, target="host")`, `vcompile.load(path)`, `vcompile.CompileOptions`
and `vcompile.plan(options)` are imported lazily (PEP 562), so `import vcompile` stays
light and never imports TVM.
"""
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vcompile.api import compile, load
    from vcompile.planner import CompileOptions, Plan, plan

from vcompile.version import __version__ as __version__

__all__ = ["CompileOptions", "Plan", "compile", "load", "plan"]


def __getattr__(name: str) -> Any:
    if name in ("compile", "load"):
        from vcompile import api
        return getattr(api, name)
    if name in ("CompileOptions", "Plan", "plan"):
        from vcompile import planner
        return getattr(planner, name)
    raise AttributeError(f"module 'vcompile' has no attribute {name!r}")
