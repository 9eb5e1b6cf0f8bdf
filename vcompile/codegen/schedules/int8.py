"""int8 contraction kernels for x86 VNNI (stub, filled in below)."""
from __future__ import annotations

from typing import Any


def emit_qlinear(ctx: Any, n: Any, a: list) -> Any:
    return None


def emit_qconv2d(ctx: Any, n: Any, a: list) -> Any:
    return None


def describe() -> str:
    return "generic (TVM default schedule of the te kernels)"
