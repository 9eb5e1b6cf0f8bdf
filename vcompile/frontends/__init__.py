"""Frontends: translate a source model into canonical vcompile IR.

    from vcompile.frontends import onnx
    g = onnx.load("model.onnx", input_shapes={"input": (1, 3, 224, 224)})

Vendor spellings stop here. Every failure a user can cause is a `FrontendError`
(a `VcompileError`) with a one-line message; ops a frontend cannot translate are
reported together in one `UnsupportedOp`.
"""
from __future__ import annotations

from vcompile.errors import VcompileError


class FrontendError(VcompileError):
    """A source model that cannot be imported; the message says why."""


class UnsupportedOp(FrontendError):
    """Ops the frontend cannot translate: every op type with the names of its nodes."""

    def __init__(self, unsupported: dict[str, list[str]], supported: list[str],
                 source: str = "ONNX") -> None:
        self.unsupported = unsupported
        self.supported = sorted(supported)
        ops = "; ".join(f"{op} (nodes: {', '.join(repr(n) for n in names[:5])}"
                        f"{f' and {len(names) - 5} more' if len(names) > 5 else ''})"
                        for op, names in sorted(unsupported.items()))
        super().__init__(f"unsupported {source} op(s): {ops}. "
                         f"Supported {source} ops: {', '.join(self.supported)}")


__all__ = ["FrontendError", "UnsupportedOp"]
