"""Named targets: each name maps to a TVM target dict, a toolchain and a run check.

    resolve("host")  => Target({"kind": "llvm", "mcpu": <detected, validated>, "num-cores": N})
    resolve("arm64", mcpu="cortex-a76") => Target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", ...})
    resolve("cuda", arch="sm_90") => Target({"kind": "cuda", "arch": "sm_90"}, host=<x86_64 dict>)

TVM only logs and falls back to a generic CPU on an unknown `mcpu`, so every mcpu is
checked against the target's list and LLVM's CPU list for the triple, and the host's
detected CPU must not imply ISA features the kernel hides from us (a VM may mask
AVX-512 while LLVM's cpuid-based name says znver5): then a lower x86-64 level is used.
GPU targets (`kind` cuda/opencl) name a CPU target for their host code. What depends on
the kind (the TVM pipeline, the device, the toolchain every target of the kind needs,
whether code runs here, what a bundle ships) is the kind's `codegen.backends.Backend`.
Listing targets needs no TVM; resolving one imports it.
"""
from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from typing import Any

from vcompile.codegen import backends
from vcompile.codegen.backends import Backend, Tool
from vcompile.errors import VcompileError


class TargetError(VcompileError, ValueError):
    """An unknown target name, a bad mcpu/arch/API level, or a missing toolchain."""


ARM_CPUS = ("cortex-a53", "cortex-a55", "cortex-a57", "cortex-a72", "cortex-a73", "cortex-a75",
            "cortex-a76", "cortex-a77", "cortex-a78", "cortex-a78ae", "cortex-a510", "cortex-a710",
            "cortex-x1", "cortex-x2", "neoverse-n1", "neoverse-n2", "neoverse-v1", "neoverse-v2")
CUDA_ARCHES = ("sm_80", "sm_86", "sm_87", "sm_89", "sm_90")
ANDROID_API = range(21, 36)
_ARM64 = dict(triple="aarch64-linux-gnu", mattr=("+neon",), cc="aarch64-linux-gnu-gcc",
              link_options=("-lm",), mcpus=ARM_CPUS,
              needs=(Tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),))


@dataclass(frozen=True)
class TargetSpec:
    name: str
    description: str
    kind: str = "llvm"  # the TVM target kind, whose `Backend` builds it: llvm | cuda | opencl
    triple: str | None = None  # None: the host's; "{api}" is the Android API level
    mcpu: str | None = None  # None: detect the host's
    mcpus: tuple[str, ...] = ()  # the accepted --mcpu values (empty: any CPU LLVM knows)
    mattr: tuple[str, ...] = ()
    cc: str | None = None  # cross compiler for export_library; None: the host's cc
    cc_options: tuple[str, ...] = ()  # "{api}" is the Android API level
    link_options: tuple[str, ...] = ()
    needs: tuple[Tool, ...] = ()  # beyond the tools of its kind (`Backend.tools`)
    host: str | None = None  # GPU targets: the named CPU target of the host code
    device: str | None = None  # OpenCL device key (mali, adreno)
    arch: str | None = None  # CUDA default arch
    arches: tuple[str, ...] = ()
    api_level: int | None = None  # Android default API level
    platform: str | None = None  # the machine the code runs on: x86_64 | aarch64
    qemu: bool = False  # its CPU code runs here under qemu-user

    @property
    def backend(self) -> Backend:
        """What its kind does: pipeline, device, kind-wide toolchain, run check, bundle."""
        return backends.for_kind(self.kind)

    def toolchain(self) -> tuple[Tool, ...]:
        """Every tool the build needs: its kind's, its own and its host target's."""
        return self.backend.tools + self.needs + (TARGETS[self.host].toolchain() if self.host else ())

    def missing(self) -> list[Tool]:
        return [t for t in self.toolchain() if shutil.which(t.exe) is None]

    @property
    def cpu(self) -> TargetSpec:
        """The spec that describes the CPU code (the host target of a GPU target)."""
        return TARGETS[self.host] if self.host else self

    @property
    def runs_here(self) -> bool:
        """Whether a model built for it runs in this process (TVM's runtime, this machine)."""
        return self.backend.runs_here(self)

    def run_note(self) -> str:
        """How (or whether) its code runs on this machine, for `vcompile targets`."""
        return "yes" if self.runs_here else self.backend.run_note(self)


TARGETS: dict[str, TargetSpec] = {t.name: t for t in [
    TargetSpec("host", "this machine's CPU (LLVM; mcpu detected and validated)"),
    TargetSpec("x86_64", "portable x86-64 Linux (AVX2+FMA: x86-64-v3)",
               triple="x86_64-linux-gnu", mcpu="x86-64-v3", platform="x86_64"),
    TargetSpec("arm64", "aarch64 Linux with NEON (--mcpu, default cortex-a72)", mcpu="cortex-a72",
               platform="aarch64", qemu=True, **_ARM64),  # type: ignore[arg-type]
    TargetSpec("android-arm64", "Android aarch64 with NEON (--api-level, default 24; clang+lld)",
               triple="aarch64-linux-android{api}", mcpu="cortex-a55", mcpus=ARM_CPUS,
               mattr=("+neon",), cc="clang", api_level=24, platform="android-aarch64",
               cc_options=("--target=aarch64-linux-android{api}", "-fuse-ld=lld", "-nostdlib"),
               needs=(Tool("clang", "clang"), Tool("ld.lld", "lld"))),
    TargetSpec("cuda", "NVIDIA GPU, cubin embedded (--arch sm_80|sm_86|sm_87|sm_89|sm_90)",
               kind="cuda", host="x86_64", arch="sm_80", arches=CUDA_ARCHES),
    TargetSpec("jetson-orin", "NVIDIA Jetson Orin: CUDA sm_87 with an arm64 (cortex-a78) host",
               kind="cuda", host="arm64", arch="sm_87", arches=("sm_87",), mcpu="cortex-a78"),
    TargetSpec("opencl-mali", "Arm Mali GPU through OpenCL, arm64 Linux host",
               kind="opencl", host="arm64", device="mali", mcpu="cortex-a55"),
    TargetSpec("opencl-adreno", "Qualcomm Adreno GPU through OpenCL, Android arm64 host",
               kind="opencl", host="android-arm64", device="adreno", mcpu="cortex-a76"),
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


def check_options(name: str, mcpu: str | None = None, arch: str | None = None,
                  api_level: int | None = None) -> None:
    """Reject an --mcpu, --arch or --api-level the target does not take (no TVM import)."""
    s = spec(name)
    cpu = s.cpu
    if mcpu is not None and cpu.mcpus and mcpu not in cpu.mcpus:
        raise TargetError(f"unknown --mcpu {mcpu!r} for target {name!r}; choose one of: "
                          f"{', '.join(cpu.mcpus)}")
    if arch is not None and arch not in s.arches:
        if not s.arches:
            raise TargetError(f"--arch applies to CUDA targets (cuda, jetson-orin), not {name!r}")
        raise TargetError(f"unknown --arch {arch!r} for target {name!r}; choose one of: "
                          f"{', '.join(s.arches)}")
    if api_level is not None:
        if cpu.api_level is None:
            raise TargetError(f"--api-level applies to Android targets (android-arm64, "
                              f"opencl-adreno), not {name!r}")
        if api_level not in ANDROID_API:
            raise TargetError(f"--api-level {api_level} is out of range; Android API levels "
                              f"{ANDROID_API.start}..{ANDROID_API.stop - 1} are supported")


def cpu_dict(s: TargetSpec, mcpu: str | None = None, num_cores: int | None = None,
             api_level: int | None = None) -> dict[str, Any]:
    """The TVM llvm target dict of a CPU target (mcpu validated)."""
    from tvm.target import codegen
    api = api_level or s.api_level
    triple = s.triple.format(api=api) if s.triple else str(codegen.llvm_get_system_triple())
    cpu = mcpu or s.mcpu or host_mcpu()
    validate_mcpu(cpu, triple)
    d: dict[str, Any] = {"kind": "llvm", "mtriple": triple, "mcpu": cpu,
                         "num-cores": int(num_cores or os.cpu_count() or 1)}
    if s.mattr:
        d["mattr"] = list(s.mattr)
    return d


def target_dict(name: str, mcpu: str | None = None, num_cores: int | None = None,
                arch: str | None = None, api_level: int | None = None) -> dict[str, Any]:
    """The TVM target dict for a named target; a GPU target's has its CPU host under "host"."""
    check_options(name, mcpu, arch, api_level)
    s = spec(name)
    if s.host is None:
        return cpu_dict(s, mcpu, num_cores, api_level)
    host = cpu_dict(s.cpu, mcpu or s.mcpu, num_cores, api_level)
    return {"kind": s.kind, **s.backend.target_attrs(s, arch), "host": host}


def require_toolchain(name: str) -> None:
    s = spec(name)
    missing = s.missing()
    if missing:
        pkgs = " ".join(t.package for t in missing)
        hint = s.backend.tool_hint if set(missing) & set(s.backend.tools) else ""
        raise TargetError(f"target {name!r} needs {', '.join(t.exe for t in missing)} on PATH; "
                          f"install the Debian package {pkgs}{hint}: apt-get install {pkgs}")


def resolve(name: str, mcpu: str | None = None, num_cores: int | None = None,
            arch: str | None = None, api_level: int | None = None) -> Any:
    """A `tvm.target.Target` for a named target (toolchain present, options validated)."""
    import tvm
    check_options(name, mcpu, arch, api_level)
    require_toolchain(name)
    d = target_dict(name, mcpu, num_cores, arch, api_level)
    host = d.pop("host", None)
    return tvm.target.Target(d, host=host) if host else tvm.target.Target(d)


def fcompile(name: str, api_level: int | None = None) -> Any:
    """The `fcompile` for export_library: None for the host's cc, else a fresh cross compiler
    (TVM's cross_compiler accumulates options across calls, so never reuse one)."""
    s = spec(name).cpu
    if s.cc is None:
        return None
    from tvm.support import cc
    api = api_level or s.api_level
    opts = [o.format(api=api) for o in s.cc_options] + list(s.link_options)
    return cc.cross_compiler(s.cc, options=opts)
