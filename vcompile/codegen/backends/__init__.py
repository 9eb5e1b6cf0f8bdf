"""One `Backend` per TVM target kind: everything about a target that depends on its kind
(llvm, cuda, opencl) rather than on the target itself.

    for_kind("llvm")  => Backend(kind="llvm", device="cpu", compile=..., bundle_libs=(...), ...)
    build: backend.emit_tiles(target, options) -> to_relax -> backend.compile(mod, target, ...)

A named target (`codegen.targets.TargetSpec`: triple, mcpu list, cross compiler) names
its kind; `TargetSpec.backend` is this registry's entry for it. Each module of this
package but this one defines `BACKEND`; the registry finds them by listing the package,
so a new kind of target is one new module here (plus the `TargetSpec` entries that use it,
plus tests). Importing a backend imports no TVM: its functions import it when called.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vcompile.codegen.options import CodegenOptions
    from vcompile.codegen.targets import TargetSpec


@dataclass(frozen=True)
class Tool:
    exe: str
    package: str  # the Debian package that installs it


def _no_tiles(target: Any, options: CodegenOptions) -> Any:
    return None


@dataclass(frozen=True)
class Backend:
    """What differs per target kind. `compile(mod, target, *, tiles, fusion, tuning_db,
    kernels)` runs the kind's TVM Relax pipeline over the emitted module and returns the
    VM executable (`kernels` receives the number of kernels `main` launches)."""
    kind: str  # the TVM target kind
    device: str  # the device the runtime puts the model on; recorded in the metadata
    compile: Callable[..., Any]
    # the CPU tiles the emitter packs kernels for (None: TVM's plain TIR)
    emit_tiles: Callable[[Any, CodegenOptions], Any] = _no_tiles
    runs_here: Callable[[TargetSpec], bool] = lambda spec: False
    # how (or whether) a target's code runs on this machine when `runs_here` is False
    run_note: Callable[[TargetSpec], str] = lambda spec: "no"
    # a device target's TVM attributes beside "kind" and "host" (given the spec and --arch)
    target_attrs: Callable[[TargetSpec, str | None], dict[str, Any]] = lambda spec, arch: {}
    tools: tuple[Tool, ...] = ()  # the toolchain every target of this kind needs
    tool_hint: str = ""  # added to the missing-toolchain error when one of `tools` is missing
    # the TVM runtime libraries a bundle ships with the model; () for a kind that cannot
    # be bundled (its runner would need a TVM runtime the wheels do not provide)
    bundle_libs: tuple[str, ...] = ()


@functools.cache
def _registry() -> dict[str, Backend]:
    found: dict[str, Backend] = {}
    for m in pkgutil.iter_modules(__path__):
        b = importlib.import_module(f"{__name__}.{m.name}").BACKEND
        if b.kind in found:
            raise ValueError(f"two backends for target kind {b.kind!r}")
        found[b.kind] = b
    return found


def kinds() -> list[str]:
    return sorted(_registry())


def for_kind(kind: str) -> Backend:
    """The backend of a TVM target kind ("llvm", "cuda", "opencl")."""
    reg = _registry()
    if kind not in reg:
        raise KeyError(f"no backend for target kind {kind!r}; kinds: {', '.join(sorted(reg))}")
    return reg[kind]
