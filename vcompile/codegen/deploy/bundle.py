"""A deployment bundle: everything a device needs to run a model without Python.

    write_bundle("m.so", "out/") => out/{model.so, libtvm_runtime.so, libtvm_ffi.so,
                                         runner.cc, CMakeLists.txt, include/..., runner, manifest.json}

The runner's source and CMakeLists are rendered from the jinja2 templates in
`codegen/deploy/templates/`; the runner is built with the target's C++ compiler when it is
installed (g++ for the host, aarch64-linux-gnu-g++ for arm64) and can be rebuilt on the
device with CMake. manifest.json lists inputs and outputs (names, shapes, numpy
dtypes), the target, the vcompile/TVM versions, the passes run and the sha256 of every
other file; the runner refuses to run when any file differs, and loads only a library the
manifest lists, inside the bundle. With `--verify-key PUB` (or a key built in with CMake) it
first checks manifest.json.sig (`sign=`), before the runtime libraries' constructors run.
Which TVM runtime libraries ship, and whether a target
can be bundled at all, is its kind's `Backend.bundle_libs`.

`dest` is a new directory, an empty one, or an earlier vcompile bundle (its manifest.json
has our format marker); anything else (a file, a directory of other files) is refused
before anything is written. The bundle is assembled in a temporary directory beside
`dest`: a new `dest` is that directory renamed into place; an earlier bundle has its files
replaced one by one (manifest.json last) and the files its manifest listed that the new
one does not are removed. Nothing else in `dest` is touched: the user's inputs, outputs,
notes and CMake build folder stay, and a file of theirs in the way of a bundle file is an
error, not overwritten. Why not build beside and swap the whole directory: the user's
files would have to be moved across, and the directory (its permissions, a mount point, a
shell's working directory) would change under them.
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
from vcompile.files import sweep_stale, temp_prefix
from vcompile.ir.types import DTYPES
from vcompile.version import __version__

LIBRARY = "model.so"
MANIFEST = "manifest.json"
FORMAT = "vcompile-bundle-1"
SIGNATURE = MANIFEST + ".sig"
# Names a bundle writes besides its runtime libraries (libtvm*.so): `-o` may not be one.
_RESERVED = {"runner", "runner.cc", "CMakeLists.txt", MANIFEST, SIGNATURE, "include", "build"}
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
    """A template rendered; the runner gets ed25519.h.j2's text pasted in verbatim (`{{ ed25519 }}`)."""
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("vcompile.codegen.deploy", "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    assert env.loader is not None
    ed25519 = env.loader.get_source(env, "ed25519.h.j2")[0]
    return env.get_template(name).render(ed25519=ed25519, **ctx)


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


def safe_name(name: object) -> bool:
    """Whether a manifest's file name stays inside the bundle: relative, no '..', no '.'."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        return False
    parts = name.split("/")
    return not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _manifest_problem(m: object) -> str | None:
    """Why a parsed manifest.json is not one vcompile wrote (None: it is)."""
    if not isinstance(m, dict):
        return "it is not a JSON object"
    if m.get("format") != FORMAT:
        return f"its format is {m.get('format')!r}, not {FORMAT!r}"
    files = m.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return "it has no 'files' table of sha256 sums"
    bad = [n for n in files if not safe_name(n) or n in (MANIFEST, SIGNATURE)]
    if bad:
        return f"it lists {bad[0]!r}, a path outside the bundle"
    if m.get("library") not in files:
        return f"its library {m.get('library')!r} is not one of the files it lists"
    return None


def _same_file(a: Path, b: Path | None) -> bool:
    try:
        return b is not None and os.path.samefile(a, b)
    except OSError:
        return False


def check_destination(dest: str | os.PathLike[str], library: str | os.PathLike[str] | None = None
                      ) -> dict[str, Any] | None:
    """What `--bundle dest` would replace: None for a new or empty directory (`library`, the
    compiled library written into it, does not count), the manifest of an earlier vcompile
    bundle; raises BundleError for a file or a directory of something else."""
    path = Path(dest)
    lib = Path(library) if library is not None else None
    if path.is_symlink() and not path.exists():
        raise BundleError(f"--bundle {path} is a dangling symbolic link; give a directory")
    if path.exists() and not path.is_dir():
        raise BundleError(f"--bundle {path} is a file, not a directory; give a new or empty "
                          "directory, or an earlier bundle")
    if not path.exists():
        return None
    try:
        entries = [e for e in path.iterdir() if not _same_file(e, lib)]
    except OSError as e:
        raise BundleError(f"cannot read --bundle directory {path}: {e.strerror or e}") from e
    if not entries:
        return None
    if not (path / MANIFEST).is_file():
        raise BundleError(f"{path} exists and is not a vcompile bundle (no {MANIFEST}); give an "
                          "empty or new directory")
    try:
        m = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{path} exists and is not a vcompile bundle: its {MANIFEST} cannot "
                          f"be read ({e}); give an empty or new directory") from e
    why = _manifest_problem(m)
    if why is not None:
        raise BundleError(f"{path} exists and is not a vcompile bundle: vcompile did not write "
                          f"its {MANIFEST} ({why}); give an empty or new directory")
    return m


def check_output(output: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """`-o` inside the bundle directory may not be one of the files the bundle writes."""
    out, root = Path(output).absolute(), Path(dest).absolute()
    try:
        rel = out.relative_to(root)
    except ValueError:
        return
    first = rel.parts[0] if rel.parts else ""
    if (str(rel) != LIBRARY and (first in _RESERVED or first.startswith("libtvm"))) or not rel.parts:
        raise BundleError(f"-o {output} is a file the bundle {dest} writes; give another name "
                          f"(or -o {root / LIBRARY})")


def write_bundle(library: str | os.PathLike[str], dest: str | os.PathLike[str],
                 sign: Any = None) -> str:
    """Write the bundle of a compiled library into `dest`; returns a one-line summary.
    `sign`: an Ed25519 private key (`signing.load_private_key`) that signs manifest.json
    into manifest.json.sig."""
    from vcompile.codegen.deploy.runtime_libs import include_dirs, runtime_libs, versions
    meta = artifact.read(library)
    plat = bundle_platform(meta["target"])
    dest = Path(dest).absolute()
    earlier = check_destination(dest, library)
    libs = runtime_libs(plat, targets.spec(meta["target"]).backend.bundle_libs)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(dest.parent, "bundle")
        root = Path(tempfile.mkdtemp(prefix=temp_prefix("bundle"), dir=dest.parent))
    except OSError as e:
        raise BundleError(f"cannot write the bundle {dest}: {e.strerror or e}") from e
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
        files = _write_manifest(root, meta, plat, versions())
        if sign is not None:
            from vcompile.codegen.deploy import signing
            signing.sign_file(root / MANIFEST, sign)
        os.chmod(root, 0o755)
        if not dest.exists():
            os.replace(root, dest)
        else:
            _install(root, dest, files, earlier, Path(library), signed=sign is not None)
    except OSError as e:
        raise BundleError(f"cannot write the bundle {dest}: {e.strerror or e}") from e
    finally:
        shutil.rmtree(root, ignore_errors=True)
    count = len(files) + 1 + (sign is not None)
    return f"{count} files for {plat}; runner " + \
        ("built" if why_not is None else f"not built: {why_not}")


def _inside(root: Path, path: Path) -> bool:
    """Whether `path`'s directory, followed through any links, is inside `root`."""
    real = os.path.realpath(root)
    return os.path.realpath(path.parent) in (real,) or \
        os.path.realpath(path.parent).startswith(real + os.sep)


def _install(root: Path, dest: Path, files: list[str], earlier: dict[str, Any] | None,
             library: Path, signed: bool) -> None:
    """Move the new bundle's files from `root` into the existing directory `dest`: check
    first that none would overwrite a file the earlier bundle did not list (the compiled
    library itself excepted), then move them, manifest.json last, then remove the earlier
    bundle's files that the new one does not have."""
    old = set(earlier["files"]) if earlier else set()
    for name in files:
        target = dest / name
        if not _inside(dest, target):
            raise BundleError(f"{target.parent} leads outside the bundle {dest} (a symbolic "
                              "link); remove it")
        if (target.exists() or target.is_symlink()) and name not in old and \
                not _same_file(target, library):
            raise BundleError(f"{target} is in the way: it is not a file of the earlier bundle "
                              "(its manifest does not list it); move it away")
        if target.is_dir() and not target.is_symlink():
            raise BundleError(f"{target} is a directory, the bundle writes a file there; move it away")
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(root / name, dest / name)
    if signed:
        os.replace(root / SIGNATURE, dest / SIGNATURE)
    elif earlier is not None:
        (dest / SIGNATURE).unlink(missing_ok=True)  # the earlier manifest's: would not verify
    os.replace(root / MANIFEST, dest / MANIFEST)
    for name in sorted(old - set(files)):
        target = dest / name
        if _inside(dest, target) and (target.is_file() or target.is_symlink()):
            target.unlink()
            parent = target.parent
            while parent != dest and _inside(dest, parent) and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


def _write_manifest(root: Path, meta: dict[str, Any], plat: str, vers: dict[str, str]) -> list[str]:
    """Write root/manifest.json; returns the names of the files it lists."""
    def io(descs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"name": d["name"], "shape": d["shape"], "dtype": _numpy_name(d["dtype"])} for d in descs]
    files = {str(p.relative_to(root)): artifact.sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}
    manifest = {"format": FORMAT, "graph": meta["graph"], "library": LIBRARY,
                "inputs": io(meta["inputs"]), "outputs": io(meta["outputs"]),
                "target": meta["target"], "tvm_target": meta["tvm_target"], "platform": plat,
                "target_options": meta.get("target_options") or {},
                "versions": {"vcompile": __version__, **vers},
                "opt_level": meta.get("opt_level"), "passes": meta.get("passes", []),
                "runner": "runner" if (root / "runner").exists() else None, "files": files}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return list(files)


def verify_bundle(path: str | os.PathLike[str], verify_key: str | os.PathLike[str] | None = None
                  ) -> dict[str, Any]:
    """The manifest of a bundle whose files all match their sha256; raises BundleError.
    With `verify_key` (an Ed25519 public key, PEM), manifest.json.sig must verify first."""
    root = Path(path)
    if verify_key is not None:
        from vcompile.codegen.deploy import signing
        signing.verify_file(root / MANIFEST, verify_key)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{root} is not a vcompile bundle: cannot read manifest.json ({e})") from e
    why = _manifest_problem(manifest)
    if why is not None:
        raise BundleError(f"{root} is not a vcompile bundle: its manifest.json is wrong ({why})")
    for name, want in manifest["files"].items():
        f = root / name
        if not f.is_file() or not _inside(root, f):
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
