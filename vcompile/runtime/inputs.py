"""Seeded random inputs for a compiled model: what `run`, `bench`, `profile` and the
report feed a model when the user gives none."""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from vcompile.errors import VcompileError


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000 or unit == "EB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"  # pragma: no cover


def memory_bytes() -> int | None:
    """This machine's physical memory, None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def random_inputs(m: Any, seed: int = 0) -> list[np.ndarray]:
    """One array per input of `m` (a CompiledModel): standard normal floats, random bools,
    integers in [0, 10); a symbolic dim is an error naming --input, and so is a model
    whose inputs would not fit in this machine's memory (checked before allocating)."""
    types = list(zip(m.input_names, m.input_types, strict=False))
    for name, t in types:
        if not t.is_static:
            raise VcompileError(f"input {name!r} has symbolic dims ({t}); give it with --input")
    sizes = [(name, t, math.prod(t.shape) * t.np_dtype.itemsize) for name, t in types]
    total, ram = sum(b for _, _, b in sizes), memory_bytes()
    if ram is not None and total > ram:
        name, t, b = max(sizes, key=lambda s: s[2])
        raise VcompileError(f"the model's inputs need {human_bytes(total)} ({name!r} is {t}: "
                            f"{human_bytes(b)}), more than this machine's "
                            f"{human_bytes(ram)} of memory; not allocating them")
    rng = np.random.default_rng(seed)
    out = []
    for _, t in types:
        if t.dtype.startswith("f"):
            out.append(rng.standard_normal(t.shape).astype(t.np_dtype))
        elif t.dtype == "bool":
            out.append(rng.random(t.shape) < 0.5)
        else:
            out.append(rng.integers(0, 10, t.shape).astype(t.np_dtype))
    return out
