"""The TVM runtime libraries a deployed model needs, for the target's platform.

    runtime_libs("x86_64")  => {"libtvm_runtime.so": <installed tvm>/lib/..., "libtvm_ffi.so": ...}
    runtime_libs("aarch64") => the same two files from the official aarch64 wheels, cached

The libraries must come from the same TVM and tvm-ffi versions that generated the
code, so the versions are the installed ones (pyproject.toml pins them). Other
platforms' wheels are fetched once with `pip download --platform ... --only-binary`
into `<cache>/tvm-runtime/<platform>-tvm<ver>-ffi<ver>/`; only the two libraries are
kept, written under a temporary name and renamed into place.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from vcompile.cache import cache_dir
from vcompile.errors import VcompileError

LIBS = {"libtvm_runtime.so": ("apache-tvm", "tvm/lib/libtvm_runtime.so"),
        "libtvm_ffi.so": ("apache-tvm-ffi", "tvm_ffi/lib/libtvm_ffi.so")}
# pip platform tags of the official wheels, newest first
PLATFORM_TAGS = {"aarch64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"],
                 "x86_64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]}


class RuntimeLibError(VcompileError, RuntimeError):
    """The TVM runtime libraries for a platform cannot be found or fetched."""


def versions() -> dict[str, str]:
    return {pkg: metadata.version(pkg) for pkg in ("apache-tvm", "apache-tvm-ffi")}


def include_dirs() -> list[Path]:
    """tvm-ffi's C++ headers and dlpack (platform independent)."""
    import tvm_ffi
    inc = Path(tvm_ffi.__file__).parent / "include"
    return [inc]


def _installed() -> dict[str, Path]:
    import tvm
    import tvm_ffi
    return {"libtvm_runtime.so": Path(tvm.__file__).parent / "lib" / "libtvm_runtime.so",
            "libtvm_ffi.so": Path(tvm_ffi.__file__).parent / "lib" / "libtvm_ffi.so"}


def runtime_libs(plat: str, names: Iterable[str] = tuple(LIBS)) -> dict[str, Path]:
    """Paths of the runtime libraries `names` (of libtvm_runtime.so and libtvm_ffi.so) for
    `plat` (x86_64 or aarch64)."""
    wanted = list(names)
    unknown = [n for n in wanted if n not in LIBS]
    if unknown:
        raise RuntimeLibError(f"no TVM runtime library {', '.join(unknown)}; known: {', '.join(LIBS)}")
    return {n: p for n, p in _runtime_libs(plat).items() if n in wanted}


def _runtime_libs(plat: str) -> dict[str, Path]:
    if plat == platform.machine():
        return _installed()
    if plat not in PLATFORM_TAGS:
        raise RuntimeLibError(f"no prebuilt TVM runtime exists for {plat}; the official wheels "
                              f"cover {', '.join(PLATFORM_TAGS)}")
    v = versions()
    dest = cache_dir() / "tvm-runtime" / f"{plat}-tvm{v['apache-tvm']}-ffi{v['apache-tvm-ffi']}"
    out = {name: dest / name for name in LIBS}
    if all(p.exists() for p in out.values()):
        return out
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        for name, (pkg, member) in LIBS.items():
            wheel = download_wheel(pkg, v[pkg], plat, Path(tmp))
            with zipfile.ZipFile(wheel) as z, z.open(member) as src, \
                    open(Path(tmp) / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(Path(tmp) / name, out[name])
    return out


def download_wheel(pkg: str, version: str, plat: str, where: Path) -> Path:
    """pip-download `pkg`==`version`'s wheel for `plat` into `where`; returns its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--dest", str(where)]
    for tag in PLATFORM_TAGS[plat]:
        cmd += ["--platform", tag]
    r = subprocess.run(cmd + [f"{pkg}=={version}"], capture_output=True, text=True)
    wheels = sorted(where.glob(f"{pkg.replace('-', '_')}-{version}-*.whl"))
    if r.returncode != 0 or not wheels:
        last = (r.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise RuntimeLibError(f"cannot download the {plat} wheel of {pkg}=={version} from PyPI "
                              f"({last}); it provides the TVM runtime of the bundle")
    return wheels[0]
