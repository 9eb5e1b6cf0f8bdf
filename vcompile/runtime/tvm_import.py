"""Import TVM without importing torch.

`tvm_ffi` imports torch eagerly when it is installed (an optional interop hook), which
costs seconds and breaks the promise that running a compiled model needs neither the
source framework nor onnx. vcompile passes numpy arrays only, so while TVM is first
imported, `import torch` is made to fail (tvm_ffi catches the ImportError); a later
`import torch` by the user works normally.
"""
from __future__ import annotations

import sys
from types import ModuleType


def import_tvm() -> ModuleType:
    if "tvm" in sys.modules:
        return sys.modules["tvm"]
    block = "torch" not in sys.modules
    if block:
        sys.modules["torch"] = None  # type: ignore[assignment]  # NOTE: makes `import torch` raise
    try:
        import tvm
    finally:
        if block and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return tvm
