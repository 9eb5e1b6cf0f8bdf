"""A deployment bundle: everything a device needs to run a model without Python.

    write_bundle("m.so", "out/") => out/{model.so, libtvm_runtime.so, libtvm_ffi.so,
                                         runner.cc, CMakeLists.txt, include/..., runner, manifest.json}

The runner's source and CMakeLists are rendered from the jinja2 templates in
`codegen/deploy/templates/`; the runner is built with the target's C++ compiler when it is
installed (g++ for the host, aarch64-linux-gnu-g++ for arm64) and can be rebuilt on the
device with CMake. manifest.json lists inputs and outputs (names, shapes, numpy
dtypes), the target, the vcompile/TVM versions, the passes run and the sha256 of every
other file; the runner refuses to run when any file differs. The bundle is assembled
in a temporary directory beside `dest` and renamed into place. Which TVM runtime libraries
ship, and whether a target can be bundled at all, is its kind's `Backend.bundle_libs`.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vcompile.codegen import targets
from vcompile.codegen.deploy import artifact
from vcompile.errors import VcompileError
from vcompile.ir.types import DTYPES
from vcompile.version import __version__

LIBRARY = "model.so"
_DL_CODE = {"i": 0, "u": 1, "f": 2, "b": 6}  # DLPack type codes by numpy kind
CXX = {"x86_64": "g++", "aarch64": "aarch64-linux-gnu-g++"}
CXX_PACKAGE = {"x86_64": "g++", "aarch64": "g++-aarch64-linux-gnu"}


class BundleError(VcompileError, RuntimeError):
    """A bundle that cannot be written, or one whose files do not match its manifest."""


def _numpy_name(dtype: str) -> str:
    return DTYPES[dtype].name


def bundle_platform(target_name: str) -> str:
    """The machine the target's code runs on, as the runtime wheels name it."""
    s = targets.spec(target_name)
    if not s.backend.bundle_libs:
        raise BundleError(f"--bundle supports CPU targets (host, x86_64, arm64), not {target_name!r}: "
                          "its runner would need TVM's GPU runtime; copy the library and run it "
                          "with TVM on the device")
    plat = s.platform or platform.machine()
    if plat == "android-aarch64":
        raise BundleError("--bundle cannot target Android: no prebuilt TVM runtime for Android "
                          "exists (build libtvm_runtime with the NDK); the library itself builds")
    return plat


def _render(name: str, **ctx: Any) -> str:
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("vcompile.codegen.deploy", "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template(name).render(**ctx)


def _dtypes() -> list[dict[str, Any]]:
    out = []
    for d in DTYPES.values():
        if d.kind in _DL_CODE:
            out.append({"name": d.name, "npy": d.str, "code": _DL_CODE[d.kind], "bits": d.itemsize * 8})
    return out


def _build_runner(root: Path, plat: str, includes: list[Path]) -> str | None:
    """Compile the runner in `root`; returns None when built, else why not."""
    cxx = "g++" if plat == platform.machine() else CXX[plat]  # native on an aarch64 host too
    if shutil.which(cxx) is None:
        package = "g++" if cxx == "g++" else CXX_PACKAGE[plat]
        return f"{cxx} not found (install {package}); build it on the device with CMake"
    cmd = [cxx, "-std=c++17", "-O2", "-o", str(root / "runner"), str(root / "runner.cc"),
           *[f"-I{i}" for i in includes], f"-L{root}", "-Wl,--no-as-needed", "-ltvm_runtime",
           "-ltvm_ffi", "-Wl,-rpath,$ORIGIN"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BundleError(f"building the runner with {cxx} failed: "
                          f"{' '.join(r.stderr.strip().splitlines()[-3:])}")
    return None


def write_bundle(library: str | os.PathLike[str], dest: str | os.PathLike[str]) -> str:
    """Write the bundle of a compiled library into `dest`; returns a one-line summary."""
    from vcompile.codegen.deploy.runtime_libs import include_dirs, runtime_libs, versions
    meta = artifact.read(library)
    plat = bundle_platform(meta["target"])
    dest = Path(dest).absolute()
    if dest.exists() and not (dest / "manifest.json").exists() and any(dest.iterdir()):
        raise BundleError(f"{dest} exists and is not a vcompile bundle; give an empty or new directory")
    libs = runtime_libs(plat, targets.spec(meta["target"]).backend.bundle_libs)
    dest.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=".vcompile-bundle-", dir=dest.parent))
    try:
        shutil.copyfile(library, root / LIBRARY)
        for name, src in libs.items():
            shutil.copyfile(src, root / name)
        for inc in include_dirs():
            shutil.copytree(inc, root / "include", dirs_exist_ok=True)
        ctx = {"graph": meta["graph"], "target": meta["target"], "vcompile_version": __version__,
               "dtypes": _dtypes(), "cxx": CXX[plat]}
        (root / "runner.cc").write_text(_render("runner.cc.j2", **ctx))
        (root / "CMakeLists.txt").write_text(_render("CMakeLists.txt.j2", **ctx))
        why_not = _build_runner(root, plat, [root / "include"])
        _write_manifest(root, meta, plat, versions())
        os.chmod(root, 0o755)
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}") if dest.exists() else None
        if old is not None:
            os.replace(dest, old)
        os.replace(root, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return f"{len(list(dest.rglob('*')))} files for {plat}; runner " + \
        ("built" if why_not is None else f"not built: {why_not}")


def _write_manifest(root: Path, meta: dict[str, Any], plat: str, vers: dict[str, str]) -> None:
    def io(descs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"name": d["name"], "shape": d["shape"], "dtype": _numpy_name(d["dtype"])} for d in descs]
    files = {str(p.relative_to(root)): artifact.sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}
    manifest = {"format": "vcompile-bundle-1", "graph": meta["graph"], "library": LIBRARY,
                "inputs": io(meta["inputs"]), "outputs": io(meta["outputs"]),
                "target": meta["target"], "tvm_target": meta["tvm_target"], "platform": plat,
                "target_options": meta.get("target_options") or {},
                "versions": {"vcompile": __version__, **vers},
                "opt_level": meta.get("opt_level"), "passes": meta.get("passes", []),
                "runner": "runner" if (root / "runner").exists() else None, "files": files}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def verify_bundle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a bundle whose files all match their sha256; raises BundleError."""
    root = Path(path)
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{root} is not a vcompile bundle: cannot read manifest.json ({e})") from e
    for name, want in manifest["files"].items():
        f = root / name
        if not f.is_file():
            raise BundleError(f"bundle {root} is missing {name}; copy the bundle again")
        if artifact.sha256(f) != want:
            raise BundleError(f"checksum mismatch for {name} in bundle {root}: the file was altered; "
                              "copy the bundle again")
    return manifest


def save_inputs(arrays: list[np.ndarray], directory: str | os.PathLike[str]) -> list[str]:
    """Write arrays as input0.npy, input1.npy, ... for the runner; returns the paths."""
    paths = []
    for i, a in enumerate(arrays):
        p = os.path.join(directory, f"input{i}.npy")
        np.save(p, a)
        paths.append(p)
    return paths
