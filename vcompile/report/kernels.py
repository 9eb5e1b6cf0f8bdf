"""Kernel classes for the report: the IR's kernel table (`ir.kernels`), and a best guess
of a class from a kernel's name alone, for libraries TVM named (-O0, -O1)."""
from __future__ import annotations

from vcompile.ir.kernels import CLASSES, group_class, kernel_table, op_class
from vcompile.ir.ops import OPS

__all__ = ["CLASSES", "group_class", "kernel_table", "name_class", "op_class"]


def name_class(name: str) -> str:
    """A best guess from a kernel name alone (kernels TVM named, at -O0/-O1)."""
    parts = [p.rstrip("0123456789") for p in name.removeprefix("fused_").split("_")]
    ops = [p for p in parts if p in OPS] + [
        "_".join(parts[i:i + 2]) for i in range(len(parts) - 1) if "_".join(parts[i:i + 2]) in OPS]
    if any(p.startswith("conv") for p in parts) or "depthwise" in parts:
        ops.append("conv2d")
    if "dense" in parts or "matmul" in parts:
        ops.append("matmul")
    return group_class(ops) if ops else "other"
