"""vcompile: a neural-network graph compiler (ONNX/PyTorch -> IR -> passes -> TVM).

`vcompile.compile(model, target="host")` and `vcompile.load(path)` are imported lazily
(PEP 562), so `import vcompile` stays light and never imports TVM.
"""
from typing import Any

__version__ = "0.1.0"
__all__ = ["compile", "load"]


def __getattr__(name: str) -> Any:
    if name in ("compile", "load"):
        from vcompile import api
        return getattr(api, name)
    raise AttributeError(f"module 'vcompile' has no attribute {name!r}")
