"""A compiled model: numpy arrays in, numpy arrays out, through the Relax VM.

`CompiledModel(*arrays) -> list[np.ndarray]` has the signature of `ir.interp.run`,
so tests compare the two directly. Inputs are checked against the artifact's
metadata (count, dtype, shape; symbolic dims bind consistently) before TVM sees them.
`load(path)` reads and checks the metadata first (no TVM import for a bad file), then
loads the library; it never imports onnx or torch.
"""
from __future__ import annotations

import os
import shutil
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
    """A loaded vcompile library (or a freshly built executable) ready to run."""

    def __init__(self, module: Any, meta: dict[str, Any], graph: Any = None,
                 executable: Any = None, path: str | None = None) -> None:
        tvm = import_tvm()
        from tvm import relax
        self.meta = meta
        self.graph = graph  # the IR that was compiled; None when loaded from a file
        self._executable = executable
        self._path = path
        self._in_types = _types(meta["inputs"])
        self._device = tvm.cuda() if meta.get("device") == "cuda" else tvm.cpu()
        self._vm = relax.VirtualMachine(module, self._device)
        self._main = self._vm["main"]
        self._module = module
        self._tensor = tvm.runtime.tensor

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
            if not t.matches(arr, env):
                raise RunError(f"input {name!r} must be {t}, got "
                               f"{TensorType.of(arr) if arr.dtype.kind in 'biuf' else arr.dtype}")
            # NOTE: np.ascontiguousarray would turn a 0-d array into a 1-d one.
            out.append(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr))
        return out

    def __call__(self, *arrays: Any) -> list[np.ndarray]:
        args = [self._tensor(a, self._device) for a in self.check_inputs(arrays)]
        try:
            res = self._main(*args)
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
    def export(self, path: str | os.PathLike[str]) -> str:
        """Write the model as one library file (atomically)."""
        if self._executable is not None:
            from vcompile.codegen.build import export
            return export(self._executable, self.meta, path)
        assert self._path is not None
        dest = os.fspath(path)
        with atomic_path(dest, error=RunError) as tmp:
            shutil.copyfile(self._path, tmp)
        return dest


def load(path: str | os.PathLike[str]) -> CompiledModel:
    """Load a library written by `vcompile ... -o` or `CompiledModel.export`."""
    path = os.fspath(path)
    meta = artifact.read(path)
    tvm = import_tvm()
    try:
        with artifact.quiet_stderr():
            mod = tvm.runtime.load_module(path)
    except Exception as e:
        lines = str(e).strip().splitlines()
        raise artifact.ArtifactError(f"cannot load {path}: {lines[-1] if lines else type(e).__name__}") from e
    return CompiledModel(mod, meta, path=path)
