"""`vcompile run model.so [--input x.npy ...] [--output y.npy]`.

Runs a compiled library. Without --input, random inputs of the right shapes and dtypes
are used (symbolic dims need --input). Prints each output's name, type and a summary;
with --output, saves the first output (or all of them to an .npz).
"""
from __future__ import annotations

import argparse

import numpy as np

from vcompile.errors import VcompileError
from vcompile.files import atomic_path
from vcompile.runtime.inputs import random_inputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("library", help="a library written by `vcompile MODEL -o FILE`")
    p.add_argument("--input", action="append", metavar="FILE.npy",
                   help="an input array, in the model's input order (repeatable)")
    p.add_argument("--output", metavar="FILE", help="save the output (.npy: first output; .npz: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    p.add_argument("--threads", type=int, help="worker threads for the kernels (default: all cores)")


def _read_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise VcompileError(f"cannot read input {path}: {e}") from e


def main(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise VcompileError(f"--threads must be 1 or more, got {args.threads}")
        from vcompile.runtime.bench import set_threads
        set_threads(args.threads)  # before the library starts TVM's thread pool
    from vcompile.runtime.module import load
    m = load(args.library)
    xs = [_read_npy(p) for p in args.input] if args.input else random_inputs(m, args.seed)
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
