"""Register-tile sizes for a CPU target, from its vector width and register count.

    cpu_tiles(Target{avx512f}) => CpuTiles(lanes=16, vectors=1, rows=14)   # 14 zmm accumulators
    cpu_tiles(Target{avx2})    => CpuTiles(lanes=8,  vectors=2, rows=6)    # 12 ymm accumulators
    cpu_tiles(Target{neon})    => CpuTiles(lanes=4,  vectors=4, rows=6)    # 24 q accumulators

A register tile is `rows` output rows (GEMM rows, or output columns of a convolution)
by `lanes * vectors` output channels; the accumulators stay in registers through the
whole reduction. The sizes leave room for the broadcast operand and the weight vectors
(AVX2 and SSE have 16 vector registers, AVX-512 and NEON 32). The AVX-512 figure was
measured on a 3x3 conv of resnet18 (64 channels, 56x56, 2 threads): 14 rows reached
425 GFLOP/s, 8 rows 391, 7 rows 354, 4 rows 230.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CpuTiles:
    lanes: int  # float32 lanes per vector register
    vectors: int  # vector registers across one column block
    rows: int  # rows per register tile
    cores: int = 1
    vnni: bool = False  # AVX-512 VNNI (vpdpbusd): the int8 kernels of `schedules.int8`

    @property
    def block(self) -> int:
        """Output channels per register tile (the packed weights' innermost dim)."""
        return self.lanes * self.vectors


def _has(feature: str, target: Any) -> bool:
    from tvm.target import codegen
    try:
        return bool(codegen.target_has_features(feature, target))
    except Exception:  # a feature LLVM does not know for this triple
        return False


def cpu_tiles(target: Any) -> CpuTiles | None:
    """Tiles for an LLVM CPU target; None for any other kind of target."""
    if target.kind.name != "llvm":
        return None
    cores = int(target.attrs.get("num-cores", 1) or 1)
    triple = str(target.attrs.get("mtriple", "") or "")
    if triple.startswith(("aarch64", "arm64")) or _has("neon", target):
        return CpuTiles(4, 4, 6, cores)
    if _has("avx512f", target):
        return CpuTiles(16, 1, 14, cores, vnni=_has("avx512vnni", target))
    if _has("avx2", target) or _has("avx", target):
        return CpuTiles(8, 2, 6, cores)
    return CpuTiles(4, 2, 6, cores)  # SSE and anything else with 16 registers
