"""Integer ranges: the values an integer dtype holds, narrowed by an optional clip.

    int_range("u8")            -> (0, 255)
    int_range("i8", (0, 100))  -> (0, 100)      (a fused ReLU's clip, saturated to the dtype)

One definition for the integer evals (`integer`), the lowerings that pick clips and
thresholds (`passes.integer.qparams`, `passes.integer.qdq_sink`) and the integer emitter (`emit_int`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vcompile.ir.types import DTYPES


def int_range(dtype: str, clip: Sequence[int] = ()) -> tuple[int, int]:
    """(lo, hi) of integer IR dtype `dtype`, or of `clip` = (lo, hi) saturated to it."""
    info = np.iinfo(DTYPES[dtype])
    if clip:
        return max(int(clip[0]), int(info.min)), min(int(clip[1]), int(info.max))
    return int(info.min), int(info.max)
