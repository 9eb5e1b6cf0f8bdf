"""Latency measurement: several contenders timed interleaved in one process.

    time_interleaved({"vcompile": f, "onnxruntime": g}, warmup=3, repeat=20)
      => {"vcompile": Timing(median_ms, p90_ms, runs), ...}

Interleaving (f, g, f, g, ...) spreads machine noise (frequency, other tenants) over
every contender instead of penalizing whichever ran during a bad second. Thread
counts are set by the caller: `set_threads` must run before TVM starts its pool.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from vcompile.errors import VcompileError


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p90_ms: float
    runs: int


def set_threads(n: int) -> None:
    """Thread count for TVM and the BLAS/OpenMP libraries of the other contenders."""
    for var in ("TVM_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def time_interleaved(fns: Mapping[str, Callable[[], object]], warmup: int = 3, repeat: int = 20,
                     max_seconds: float | None = None,
                     progress: Callable[[str, int, int], None] | None = None) -> dict[str, Timing]:
    """Median and p90 wall time of each function, run round-robin after warm-up.

    With `max_seconds`, stops early (after at least 3 rounds) once the budget is spent.
    `progress(step, done, total)` hears of each round (outside the timed calls).
    """
    for _ in range(warmup):
        for f in fns.values():
            f()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    for r in range(repeat):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            samples[k].append((time.perf_counter() - t0) * 1e3)
        if progress is not None:
            progress("timing", r + 1, repeat)
        if max_seconds is not None and r >= 2 and time.perf_counter() - start > max_seconds:
            break
    return {k: Timing(float(np.median(v)), float(np.percentile(v, 90)), len(v))
            for k, v in samples.items()}


def onnxruntime_session(model: object, threads: int) -> object:
    """An onnxruntime CPU session with every graph optimization (ORT_ENABLE_ALL)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # NOTE: idle intra-op threads otherwise spin for a while after each run, taking the
    # cores from whichever contender runs next in an interleaved measurement.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = model if isinstance(model, str | bytes) else model.SerializeToString()  # type: ignore[attr-defined]
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def max_rel_err(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Largest |a - b| / max|b| over paired outputs (vcompile vs onnxruntime; also bench --rpc)."""
    if len(a) != len(b):
        raise VcompileError(f"vcompile gives {len(a)} outputs, onnxruntime {len(b)}")
    worst = 0.0
    for x, y in zip(a, b, strict=False):
        y = np.asarray(y)
        scale = max(float(np.abs(y).max()) if y.size else 0.0, 1e-12)
        worst = max(worst, float(np.abs(x.astype(np.float64) - y).max()) / scale if y.size else 0.0)
    return worst
