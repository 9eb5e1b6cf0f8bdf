"""`vcompile run model.so [--input x.npy ...] [--output y.npy]`.

Runs a compiled library. Without --input, random inputs of the right shapes and dtypes
are used (symbolic dims need --input). --input takes .npy files, one per input in the
model's input order, or one .npz holding every input under its name (np.savez(f, x=...);
positional arr_0, arr_1, ... keys from np.savez(f, a, b) are taken in order). Big-endian
arrays are converted. Prints each output's name, type and a summary; with --output,
saves the first output (or all of them to an .npz).
"""
from __future__ import annotations

import argparse
import math
import os
import zipfile
from tokenize import TokenError
from typing import Any

import numpy as np

from vcompile.errors import VcompileError
from vcompile.files import atomic_path
from vcompile.runtime.inputs import human_bytes, random_inputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("library", help="a library written by `vcompile MODEL -o FILE`")
    p.add_argument("--input", action="append", metavar="FILE.npy",
                   help="an input array, in the model's input order (repeatable); or one .npz "
                        "with every input under its name")
    p.add_argument("--output", metavar="FILE", help="save the output (.npy: first output; .npz: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    p.add_argument("--verify-key", metavar="PUB",
                   help="refuse the library unless LIBRARY.sig verifies with this Ed25519 public "
                        "key, PEM (checked before the library is loaded)")
    p.add_argument("--threads", type=int, help="worker threads for the kernels (default: all cores)")


def _load(path: str) -> Any:
    try:
        _check_npy_size(path)
        return np.load(path, allow_pickle=False)
    except EOFError as e:
        raise VcompileError(f"cannot read input {path}: the file is empty or cut short "
                            "(expected a .npy array)") from e
    except MemoryError as e:
        raise VcompileError(f"cannot read input {path}: the array it holds does not fit in "
                            "this machine's memory") from e
    except (SyntaxError, TokenError) as e:  # numpy's header parser lets these through
        raise VcompileError(f"cannot read input {path}: its .npy header is not a valid header "
                            "dict (the file is corrupt); save the array again with np.save") from e
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        if isinstance(e, OSError) and e.strerror:
            raise VcompileError(f"cannot read input {path}: {e.strerror}") from e
        detail = " ".join(str(e).split()) or type(e).__name__  # numpy's can span lines
        raise VcompileError(f"cannot read input {path}: {detail} (expected a .npy array written "
                            "by np.save)") from e


def _check_npy_size(path: str) -> None:
    """Refuse, before numpy allocates the array, an .npy file whose header (shape, dtype)
    asks for more data than the file holds: a file cut short or a corrupt header (numpy
    would first allocate what the header says, terabytes for a wrong shape)."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        if f.read(6) != fmt.MAGIC_PREFIX:
            return  # an .npz, or not numpy's: np.load says what it is
        f.seek(0)
        read_header = {(1, 0): fmt.read_array_header_1_0,
                       (2, 0): fmt.read_array_header_2_0}.get(fmt.read_magic(f))
        if read_header is None:
            return
        shape, _, dtype = read_header(f)
        held = os.fstat(f.fileno()).st_size - f.tell()
    if dtype.hasobject:
        return  # refused by allow_pickle=False
    if any(d < 0 for d in shape):
        raise ValueError(f"its header gives shape {shape}; dims are >= 0")
    need = math.prod(shape) * dtype.itemsize
    if need > held:
        raise ValueError(f"its header says {dtype} {shape} ({human_bytes(need)}), but the file "
                         f"holds {human_bytes(held)} of data: it is cut short or its header is "
                         "wrong")


def _from_npz(path: str, npz: Any, names: list[str]) -> list[np.ndarray]:
    """The model's inputs from one .npz: keyed by input name, or arr_0.. in order."""
    keys = list(npz.files)
    positional = [f"arr_{i}" for i in range(len(keys))]
    if keys and sorted(keys) == sorted(positional) and not set(keys) & set(names):
        keys = positional
        if len(keys) != len(names):
            raise VcompileError(f"{path} holds {len(keys)} unnamed array(s) (arr_0, ...); the "
                                f"model takes {len(names)} input(s): {', '.join(names)}")
        return [_npz_item(path, npz, k) for k in keys]
    missing = [n for n in names if n not in keys]
    extra = [k for k in keys if k not in names]
    if missing or extra:
        say = [f"lacks {', '.join(missing)}" if missing else "",
               f"has unknown {', '.join(extra)}" if extra else ""]
        raise VcompileError(f"{path} {' and '.join(x for x in say if x)}: an .npz input holds "
                            f"one array per model input, named {', '.join(names)}")
    return [_npz_item(path, npz, n) for n in names]


def _npz_item(path: str, npz: Any, key: str) -> np.ndarray:
    try:
        return np.asarray(npz[key])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise VcompileError(f"cannot read {key!r} from {path}: {e}") from e


def read_inputs(paths: list[str], names: list[str]) -> list[np.ndarray]:
    """The arrays named by --input: .npy files in input order, or one .npz by name."""
    loaded = [(p, _load(p)) for p in paths]
    npz = [p for p, a in loaded if not isinstance(a, np.ndarray)]
    if not npz:
        return [a for _, a in loaded]
    if len(loaded) > 1:
        raise VcompileError(f"{npz[0]} is an .npz archive: give it as the only --input (it holds "
                            "every input by name), or give one .npy file per input")
    with loaded[0][1] as f:
        return _from_npz(npz[0], f, names)


def main(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise VcompileError(f"--threads must be 1 or more, got {args.threads}")
        from vcompile.runtime.bench import set_threads
        set_threads(args.threads)  # before the library starts TVM's thread pool
    from vcompile.runtime.module import load
    m = load(args.library, verify_key=args.verify_key)
    xs = read_inputs(args.input, m.input_names) if args.input else random_inputs(m, args.seed)
    ys = m(*xs)
    for name, y in zip(m.output_names, ys, strict=False):
        stats = (f"mean={float(y.mean()):.6g} std={float(y.std()):.6g}"
                 if y.size and y.dtype.kind == "f" else "")
        print(f"{name}: {y.dtype.name}{list(y.shape)} {stats}".rstrip())
    if args.output:
        _save(args.output, m.output_names, ys)
    return 0


def _save(path: str, names: list[str], ys: list[np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if path.endswith(".npz"):
            np.savez(f, **dict(zip(names, ys, strict=False)))
        else:
            np.save(f, ys[0])
