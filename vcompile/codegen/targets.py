"""Named targets: each name maps to a TVM target dict, a toolchain and a run check.

    resolve("host") => Target({"kind": "llvm", "mcpu": <detected, validated>, "num-cores": N})

TVM only logs and falls back to a generic CPU on an unknown `mcpu`, so every mcpu is
checked against LLVM's CPU list for the triple, and the host's detected CPU must not
imply ISA features the kernel hides from us (a VM may mask AVX-512 while LLVM's
cpuid-based name says znver5): then a lower x86-64 level is used instead.
Listing targets needs no TVM; resolving one imports it.
"""
from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass, field
from typing import Any

from vcompile.errors import VcompileError


class TargetError(VcompileError, ValueError):
    """An unknown target name, a bad mcpu, or a missing toolchain."""


@dataclass(frozen=True)
class TargetSpec:
    name: str
    description: str
    triple: str | None = None  # None: the host's
    mcpu: str | None = None  # None: detect the host's
    mattr: tuple[str, ...] = ()
    cc: str | None = None  # cross compiler for export_library; None: the host's cc
    link_options: tuple[str, ...] = ()
    needs: tuple[str, ...] = field(default_factory=tuple)  # executables the build needs
    runs_here: bool = True
    implemented: bool = True

    def missing(self) -> list[str]:
        return [t for t in self.needs if shutil.which(t) is None]


TARGETS: dict[str, TargetSpec] = {t.name: t for t in [
    TargetSpec("host", "this machine's CPU (LLVM; mcpu detected and validated)"),
    TargetSpec("x86_64", "portable x86-64 Linux (AVX2+FMA: x86-64-v3)",
               triple="x86_64-linux-gnu", mcpu="x86-64-v3",
               runs_here=platform.machine() == "x86_64"),
    TargetSpec("arm64", "aarch64 Linux with NEON (cross-compiled; default mcpu cortex-a72)",
               triple="aarch64-linux-gnu", mcpu="cortex-a72", mattr=("+neon",),
               cc="aarch64-linux-gnu-gcc", link_options=("-lm",), needs=("aarch64-linux-gnu-gcc",),
               runs_here=platform.machine() == "aarch64"),
    TargetSpec("cuda", "NVIDIA GPU (planned: needs GPU schedules)", needs=("nvcc",),
               runs_here=False, implemented=False),
]}

# The features a given x86 CPU name implies that must also be in /proc/cpuinfo.
_X86_CHECKED = {"avx512f": "avx512f", "avx2": "avx2", "fma": "fma", "avx": "avx"}
_X86_LEVELS = (("x86-64-v4", {"avx512f", "avx2", "fma"}), ("x86-64-v3", {"avx2", "fma"}),
               ("x86-64-v2", set()))


def names() -> list[str]:
    return list(TARGETS)


def spec(name: str) -> TargetSpec:
    if name not in TARGETS:
        raise TargetError(f"unknown target {name!r}; valid targets: {', '.join(TARGETS)}")
    return TARGETS[name]


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def host_mcpu() -> str:
    """LLVM's name for this CPU, lowered to an x86-64 level if the OS hides features it implies."""
    from tvm.target import codegen
    cpu = str(codegen.llvm_get_system_cpu())
    triple = str(codegen.llvm_get_system_triple())
    if platform.machine() != "x86_64" or not cpu or cpu == "generic":
        return cpu or "generic"
    flags = _cpu_flags()
    if not flags:
        return cpu
    implied = _implied_features(cpu, triple)
    hidden = {f for f in _X86_CHECKED if f in implied and _X86_CHECKED[f] not in flags}
    if not hidden:
        return cpu
    for level, need in _X86_LEVELS:
        if need <= flags:
            return level
    return "x86-64"


def _implied_features(cpu: str, triple: str) -> set[str]:
    import tvm
    from tvm.target import codegen
    t = tvm.target.Target({"kind": "llvm", "mtriple": triple, "mcpu": cpu})
    try:
        return {str(f) for f in codegen.llvm_get_cpu_features(t)}
    except Exception:  # older LLVM builds lack the query: trust the name
        return set()


def validate_mcpu(mcpu: str, triple: str) -> None:
    from tvm.target import codegen
    if not codegen.llvm_is_valid_cpu(mcpu, triple):
        import tvm
        known = codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm", "mtriple": triple}))
        raise TargetError(f"mcpu {mcpu!r} is not a CPU LLVM knows for {triple} (TVM would silently "
                          f"use a generic CPU); known: {', '.join(sorted(str(c) for c in known))}")


def target_dict(name: str, mcpu: str | None = None, num_cores: int | None = None) -> dict[str, Any]:
    """The TVM target dict for a named target (mcpu validated)."""
    s = spec(name)
    if not s.implemented:
        raise TargetError(f"target {name!r} is listed but not implemented yet; "
                          f"implemented: {', '.join(n for n, t in TARGETS.items() if t.implemented)}")
    from tvm.target import codegen
    triple = s.triple or str(codegen.llvm_get_system_triple())
    cpu = mcpu or s.mcpu or host_mcpu()
    validate_mcpu(cpu, triple)
    d: dict[str, Any] = {"kind": "llvm", "mtriple": triple, "mcpu": cpu,
                         "num-cores": int(num_cores or os.cpu_count() or 1)}
    if s.mattr:
        d["mattr"] = list(s.mattr)
    return d


def resolve(name: str, mcpu: str | None = None, num_cores: int | None = None) -> Any:
    """A `tvm.target.Target` for a named target."""
    import tvm
    missing = spec(name).missing()
    if missing:
        raise TargetError(f"target {name!r} needs {', '.join(missing)} on PATH")
    return tvm.target.Target(target_dict(name, mcpu, num_cores))


def fcompile(name: str) -> Any:
    """The `fcompile` for export_library: None for the host's cc, else a fresh cross compiler
    (TVM's cross_compiler accumulates options across calls, so never reuse one)."""
    s = spec(name)
    if s.cc is None:
        return None
    from tvm.support import cc
    return cc.cross_compiler(s.cc, options=list(s.link_options))
