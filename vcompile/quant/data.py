"""Calibration inputs: read from `--calib FILE`, checked against the graph, or synthetic.

    --calib data.npz     keys = the graph's input names; each array is one input of the
                         graph's shape, or a stack of them along a leading axis (N samples),
                         or N*B rows of a batch-B input split into N batches
    --calib DIR          *.npy files, one sample batch per file: any names for a
                         single-input model, <input>_*.npy per input otherwise

Without --calib, `synthetic_samples` draws a fixed-seed standard normal and the caller
warns that accuracy will suffer (`SYNTHETIC_WARNING`).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vcompile.errors import VcompileWarning
from vcompile.ir.graph import Graph, Value, io_names
from vcompile.quant.qdq import QuantizeError

Sample = list[np.ndarray]
SYNTHETIC_WARNING = ("int8 without calibration data: scales come from random normal inputs, "
                     "so accuracy will suffer; pass real inputs with --calib FILE.npz (keys: {names}) "
                     "or --calib DIR of .npy files (calib= in the Python API)")


class CalibrationWarning(VcompileWarning):
    """Quantization went ahead on inputs that do not represent the model's data."""


def input_names(g: Graph) -> list[str]:
    """The inputs' names as the compiled model reports them."""
    return io_names(g)[0]


def _type_text(v: Value) -> str:
    return f"{v.type.dtype}[{','.join(map(str, v.type.shape))}]"


def split_samples(name: str, v: Value, arr: np.ndarray) -> list[np.ndarray]:
    """One array of calibration data for input `v` -> samples of exactly v's type."""
    want = v.type
    if arr.dtype != want.np_dtype:
        raise QuantizeError(f"calibration input {name!r} has dtype {arr.dtype.name}, expected "
                            f"{np.dtype(want.np_dtype).name} (cast with .astype)")
    if not want.is_static:  # symbolic dims: each array is one sample that binds them
        if want.matches(arr, {}):
            return [arr]
        raise QuantizeError(f"calibration input {name!r} has shape {list(arr.shape)}, expected "
                            f"{_type_text(v)}")
    shape = tuple(int(d) for d in want.shape)
    if arr.shape == shape:
        return [arr]
    if arr.ndim == len(shape) + 1 and arr.shape[1:] == shape and arr.shape[0] > 0:
        return list(arr)
    if (arr.ndim == len(shape) and shape and arr.shape[1:] == shape[1:] and shape[0] > 0
            and arr.shape[0] % shape[0] == 0 and arr.shape[0] > 0):
        return list(arr.reshape((-1,) + shape))
    raise QuantizeError(f"calibration input {name!r} has shape {list(arr.shape)}, expected "
                        f"{_type_text(v)} or a stack of them [N,{','.join(map(str, shape))}]")


def from_arrays(g: Graph, data: Mapping[str, Any]) -> list[Sample]:
    """Samples from {input name: array}: names and shapes checked, counts matched."""
    names = input_names(g)
    missing = [n for n in names if n not in data]
    extra = [k for k in data if k not in names]
    if missing or extra:
        raise QuantizeError(f"calibration data has inputs {sorted(data)}, the model takes "
                            f"{names}" + (f" (missing {missing})" if missing else ""))
    per_input = [split_samples(n, v, np.asarray(data[n])) for n, v in zip(names, g.inputs, strict=True)]
    counts = {len(s) for s in per_input}
    if len(counts) != 1:
        raise QuantizeError(f"calibration inputs have different sample counts: "
                            f"{dict(zip(names, map(len, per_input), strict=True))}")
    return [list(s) for s in zip(*per_input, strict=True)]


def load(path: str | os.PathLike[str], g: Graph) -> list[Sample]:
    """Samples from an .npz file or a directory of .npy files (module docstring)."""
    p = Path(path)
    if p.is_dir():
        return _load_dir(p, g)
    if not p.is_file():
        raise QuantizeError(f"calibration data {p} does not exist; give an .npz file or a "
                            "directory of .npy files")
    try:
        z = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise QuantizeError(f"cannot read calibration data {p}: {e}; expected an .npz whose "
                            f"keys are the inputs {input_names(g)}") from e
    if isinstance(z, np.ndarray):  # one .npy: the only input's samples
        return samples_from(z, g) or []
    with z:
        data = {k: z[k] for k in z.files}
    return from_arrays(g, data)


def _load_dir(d: Path, g: Graph) -> list[Sample]:
    files = sorted(d.glob("*.npy"))
    names = input_names(g)
    if not files:
        raise QuantizeError(f"calibration directory {d} holds no .npy files")
    if len(names) == 1:
        return [s for f in files for s in from_arrays(g, {names[0]: _read(f)})]
    groups = {n: [f for f in files if f.name.startswith(f"{n}_")] for n in names}
    if any(not fs for fs in groups.values()) or len({len(fs) for fs in groups.values()}) != 1:
        raise QuantizeError(f"calibration directory {d}: a multi-input model needs files "
                            f"<input>_*.npy, as many for each of {names}; found "
                            f"{ {n: len(fs) for n, fs in groups.items()} }")
    out: list[Sample] = []
    for batch in zip(*groups.values(), strict=True):
        out += from_arrays(g, {n: _read(f) for n, f in zip(names, batch, strict=True)})
    return out


def _read(f: Path) -> np.ndarray:
    try:
        return np.load(f, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise QuantizeError(f"cannot read calibration file {f}: {e}") from e


def synthetic_samples(g: Graph, count: int = 2, seed: int = 0, warn: bool = True) -> list[Sample]:
    """Fixed-seed standard-normal samples for every input (integers: 0..9), with a warning."""
    for name, v in zip(input_names(g), g.inputs, strict=True):
        if not v.type.is_static:
            raise QuantizeError(f"input {name!r} has symbolic dims ({_type_text(v)}); fix them "
                                "with --input, or pass calibration data, to quantize")
    if warn:
        warnings.warn(SYNTHETIC_WARNING.format(names=", ".join(input_names(g))),
                      CalibrationWarning, stacklevel=3)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        sample = []
        for v in g.inputs:
            shape = tuple(int(d) for d in v.type.shape)
            dt = v.type.np_dtype
            kind = np.dtype(dt).kind
            sample.append(rng.standard_normal(shape).astype(dt) if kind == "f"
                          else rng.integers(0, 10, shape).astype(dt))
        out.append(sample)
    return out


def samples_from(calib: Any, g: Graph) -> list[Sample] | None:
    """`calib=` of the API: None, a path, {name: array} or a sequence of samples."""
    if calib is None:
        return None
    if isinstance(calib, str | os.PathLike):
        return load(calib, g)
    if isinstance(calib, Mapping):
        return from_arrays(g, calib)
    if isinstance(calib, np.ndarray):
        if len(g.inputs) != 1:
            raise QuantizeError(f"calib= is one array but the model takes {input_names(g)}; "
                                "give {name: array}")
        return from_arrays(g, {input_names(g)[0]: calib})
    if isinstance(calib, Sequence):
        return [s for sample in calib for s in from_arrays(g, dict(zip(
            input_names(g), sample if isinstance(sample, list | tuple) else [sample], strict=False)))]
    raise QuantizeError(f"calib= must be a path, an array, {{name: array}} or a list of samples, "
                        f"got {type(calib).__name__}")
