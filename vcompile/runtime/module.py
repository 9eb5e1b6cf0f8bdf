"""A compiled model: numpy arrays in, numpy arrays out, through the Relax VM.

`CompiledModel(*arrays) -> list[np.ndarray]` has the signature of `ir.interp.run`,
so tests compare the two directly. Inputs are checked against the artifact's
metadata (count, dtype, shape; symbolic dims bind consistently) before TVM sees them.
`load(path)` reads and checks the metadata first (no TVM import for a bad file), then
loads the library; it never imports onnx or torch.
"""
from __future__ import annotations

import os
import platform
import shutil
import struct
import threading
from typing import Any

import numpy as np

from vcompile.codegen.deploy import artifact
from vcompile.errors import VcompileError
from vcompile.files import atomic_path
from vcompile.ir.types import TensorType
from vcompile.runtime.tvm_import import import_tvm


class RunError(VcompileError, ValueError):
    """Inputs that do not fit the compiled model, or a failure inside the VM."""


def _types(descs: list[dict[str, Any]]) -> list[TensorType]:
    return [TensorType(d["dtype"], tuple(d["shape"])) for d in descs]


class CompiledModel:
    """A loaded vcompile library (or a freshly built executable) ready to run.

    Calling a model is safe from many threads at once. A Relax VM is not: its register
    file and frames are per-call state, and two threads in one VM crash (issue 25). On
    CPU every thread that calls the model gets its own `relax.VirtualMachine` over the
    same loaded module (kept in a `threading.local`, made on the thread's first call in
    about 0.1 ms): the code and the weights (the executable's constants, already on the
    CPU) are shared, not copied; each VM holds only its own activations. Calls then run
    in parallel. On CUDA a VM copies the constants to its device, so one VM per thread
    would hold the weights once per thread on the GPU: calls are serialized by a lock
    instead (not measured; no GPU was at hand). Measured (benchmarks/stress.md, efficientvit_m0,
    8 threads x 200 calls, 2 cores, TVM_NUM_THREADS=1): one shared model 462 calls/s,
    one model per thread 421 (with 8 copies of the weights), a lock 236.
    """

    def __init__(self, module: Any, meta: dict[str, Any], graph: Any = None,
                 executable: Any = None, path: str | None = None) -> None:
        tvm = import_tvm()
        from tvm import relax
        self.meta = meta
        self.graph = graph  # the IR that was compiled; None when loaded from a file
        self._executable = executable
        self._path = path
        self._in_types = _types(meta["inputs"])
        cuda = meta.get("device") == "cuda"
        self._device = tvm.cuda() if cuda else tvm.cpu()
        self._module = module
        # A fresh Executable generates its code only when first needed (issue 25: `vcompile
        # m.onnx -o m.so` never runs the model, and used to generate it twice): the first
        # call JIT-links it once (or loads the library `export` wrote, if it came first);
        # every VM then shares that module.
        fresh = isinstance(module, tvm.runtime.Executable)
        self._runnable: Any = None if fresh else module
        self._link_lock = threading.Lock()
        self._make_vm = relax.VirtualMachine
        self._local = threading.local()
        self._lock: threading.Lock | None = threading.Lock() if cuda else None
        self._shared_main = self._entry() if cuda else None
        if not cuda and not fresh:
            self._entry()  # a broken module fails here, in the thread that loads it
        self._tensor = tvm.runtime.tensor

    def _entry(self) -> Any:
        """This thread's VM entry point (`main`), made on the thread's first call."""
        main = getattr(self._local, "main", None)
        if main is None:
            if self._runnable is None:
                with self._link_lock:
                    if self._runnable is None:
                        self._runnable = self._link()
            vm = self._make_vm(self._runnable, self._device)
            self._local.vm = vm
            main = self._local.main = vm["main"]
        return main

    # ---- description ------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return [d["name"] for d in self.meta["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [d["name"] for d in self.meta["outputs"]]

    @property
    def input_shapes(self) -> list[tuple]:
        return [tuple(d["shape"]) for d in self.meta["inputs"]]

    @property
    def output_shapes(self) -> list[tuple]:
        return [tuple(d["shape"]) for d in self.meta["outputs"]]

    @property
    def input_dtypes(self) -> list[str]:
        return [d["dtype"] for d in self.meta["inputs"]]

    @property
    def output_dtypes(self) -> list[str]:
        return [d["dtype"] for d in self.meta["outputs"]]

    @property
    def input_types(self) -> list[TensorType]:
        return list(self._in_types)

    def __repr__(self) -> str:
        sig = ", ".join(f"{d['name']}: {TensorType(d['dtype'], tuple(d['shape']))}"
                        for d in self.meta["inputs"])
        return f"CompiledModel({sig}) for {self.meta.get('target')}"

    # ---- running ------------------------------------------------------------------------
    def check_inputs(self, arrays: tuple[Any, ...]) -> list[np.ndarray]:
        if len(arrays) != len(self._in_types):
            raise RunError(f"model takes {len(self._in_types)} input(s) "
                           f"({', '.join(self.input_names)}), got {len(arrays)}")
        env: dict[str, int] = {}
        out = []
        for name, t, a in zip(self.input_names, self._in_types, arrays, strict=False):
            arr = np.asarray(a)
            if not arr.dtype.isnative:  # big-endian data (an .npy written on such a machine)
                arr = arr.astype(arr.dtype.newbyteorder("="))
            if not t.matches(arr, env):
                raise RunError(f"input {name!r} must be {t}, got "
                               f"{TensorType.of(arr) if arr.dtype.kind in 'biuf' else arr.dtype}")
            # NOTE: np.ascontiguousarray would turn a 0-d array into a 1-d one.
            out.append(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr))
        return out

    def __call__(self, *arrays: Any) -> list[np.ndarray]:
        args = [self._tensor(a, self._device) for a in self.check_inputs(arrays)]
        try:
            if self._lock is None:
                res = self._entry()(*args)
            else:
                with self._lock:
                    res = self._shared_main(*args)
        except Exception as e:  # a VM failure: keep its last line
            lines = str(e).strip().splitlines()
            raise RunError(f"running the model failed: {lines[-1] if lines else type(e).__name__}") from e
        outs = [res[i] for i in range(len(res))]
        return [np.asarray(t.numpy()) for t in outs]

    run = __call__

    def vm_module(self) -> Any:
        """What the Relax VM runs (an executable or a loaded library), for profiling."""
        return self._module

    # ---- saving -----------------------------------------------------------------------
    def _link(self) -> Any:
        """The fresh executable's code, generated once: the library an earlier `export`
        wrote if it is still there (loaded, nothing generated), else TVM's in-process JIT."""
        if self._path is not None and os.path.isfile(self._path):
            tvm = import_tvm()
            with artifact.quiet_stderr():
                return tvm.runtime.load_module(self._path)
        return self._module.jit()

    def export(self, path: str | os.PathLike[str]) -> str:
        """Write the model as one library file (atomically): a copy of the library it
        was loaded from or last exported to when that file is still there (no code
        generated again), else exported. A model called before its first export generated
        its code for the call (JIT) and generates it again here."""
        if self._path is None or not os.path.isfile(self._path):
            from vcompile.codegen.build import export
            assert self._executable is not None
            written = export(self._executable, self.meta, path)
            self._path = os.path.abspath(written)
            return written
        dest = os.fspath(path)
        with atomic_path(dest, error=RunError) as tmp:
            shutil.copyfile(self._path, tmp)
        return dest


# ELF e_machine -> the name `platform.machine()` gives on Linux.
_ELF_MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm",
                 62: "x86_64", 183: "aarch64", 243: "riscv64"}
_MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv7l": "arm",
                    "armv8l": "arm", "i686": "i386", "i586": "i386", "ppc64le": "ppc64",
                    "mips64": "mips", "riscv": "riscv64"}


def _machine() -> str:
    m = platform.machine().lower()
    return _MACHINE_ALIASES.get(m, m)


def elf_machine(path: str) -> str | None:
    """The processor an ELF file is built for ('x86_64', 'aarch64', ...), None if unknown."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    code = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)[0]
    return _ELF_MACHINES.get(code, f"ELF machine {code}")


def check_platform(path: str, meta: dict[str, Any]) -> None:
    """Refuse, before dlopen, a library built for another processor than this machine's
    (dlopen would say only 'No such file or directory' or 'wrong ELF class')."""
    built = elf_machine(path)
    here = _machine()
    if built is not None and here and built != here:
        raise artifact.ArtifactError(
            f"{path} was built for target {meta.get('target', '?')!r} (platform {built}) and "
            f"cannot load on this {here} machine; run it on a {built} machine (a bundle: "
            f"`--bundle DIR`) or rebuild it with --target host")


def _check_meta(path: str, meta: dict[str, Any]) -> None:
    """The input/output descriptions a CompiledModel reads, checked so that a malformed
    trailer is one ArtifactError instead of a KeyError deep in the runtime."""
    for key in ("inputs", "outputs"):
        descs = meta.get(key)
        if not isinstance(descs, list):
            raise artifact.ArtifactError(f"{path} is corrupt: its metadata has no {key} list")
        for i, d in enumerate(descs):
            ok = (isinstance(d, dict) and isinstance(d.get("name"), str)
                  and isinstance(d.get("shape"), list)
                  and all((isinstance(n, int) and not isinstance(n, bool) and n >= 0)
                          or isinstance(n, str) for n in d["shape"]))
            if ok:
                try:
                    TensorType(d["dtype"], tuple(d["shape"])).np_dtype  # noqa: B018
                except Exception:  # noqa: BLE001 - any bad dtype is the same corruption
                    ok = False
            if not ok:
                raise artifact.ArtifactError(f"{path} is corrupt: {key}[{i}] in its metadata "
                                             f"is not a valid tensor description: {d!r:.120}")


def load(path: str | os.PathLike[str], verify_key: str | os.PathLike[str] | None = None) -> CompiledModel:
    """Load a library written by `vcompile ... -o` or `CompiledModel.export`. With
    `verify_key` (an Ed25519 public key, PEM), PATH.sig must verify before anything else
    reads the file or the loader maps it (`codegen.deploy.signing`)."""
    path = os.fspath(path)
    if verify_key is not None:
        from vcompile.codegen.deploy import signing
        signing.verify_file(path, verify_key)
    meta = artifact.read(path)
    _check_meta(path, meta)
    check_platform(path, meta)
    tvm = import_tvm()
    if meta.get("device") == "cuda" and not tvm.cuda().exist:
        raise artifact.ArtifactError(
            f"{path} was built for a CUDA GPU (target {meta.get('target', '?')!r}) and this machine "
            "has no CUDA device TVM can use; run it on a machine with an NVIDIA GPU or rebuild "
            "it with --target host")
    try:
        with artifact.quiet_stderr():
            mod = tvm.runtime.load_module(path)
            return CompiledModel(mod, meta, path=path)  # makes a VM: a bad module fails here
    except VcompileError:
        raise
    except Exception as e:
        lines = str(e).strip().splitlines()
        raise artifact.ArtifactError(f"cannot load {path}: {lines[-1] if lines else type(e).__name__}") from e
