"""Seeded random inputs for a compiled model: what `run`, `bench`, `profile` and the
report feed a model when the user gives none."""
from __future__ import annotations

from typing import Any

import numpy as np

from vcompile.errors import VcompileError


def random_inputs(m: Any, seed: int = 0) -> list[np.ndarray]:
    """One array per input of `m` (a CompiledModel): standard normal floats, random bools,
    integers in [0, 10); a symbolic dim is an error naming --input."""
    rng = np.random.default_rng(seed)
    out = []
    for name, t in zip(m.input_names, m.input_types, strict=False):
        if not t.is_static:
            raise VcompileError(f"input {name!r} has symbolic dims ({t}); give it with --input")
        if t.dtype.startswith("f"):
            out.append(rng.standard_normal(t.shape).astype(t.np_dtype))
        elif t.dtype == "bool":
            out.append(rng.random(t.shape) < 0.5)
        else:
            out.append(rng.integers(0, 10, t.shape).astype(t.np_dtype))
    return out
