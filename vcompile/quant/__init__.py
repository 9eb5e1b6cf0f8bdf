"""Post-training quantization: float graph => THE QDQ FORM => integer-only graph.

    rewrites (the -O list without fuse) => calibrate => insert QDQ
        => lower-integer, canonicalize, dce => fuse (unless -O0/-O1) => codegen
    (the split is `passes.infra.pipeline.int8_split`; `vcompile.planner` records both halves)

    g_qdq = quantize(g, calib="calib.npz", method="percentile")   # QDQ form (interpretable)
    g_int, ran = run_int8(g_float, before, after, calib=...)      # the whole flow, passes run
                 (before, after: the plan's halves, `vcompile.plan(...).passes` and `.lowering`)

`quantize` needs a float graph after the -O rewrites and before fusion; `calib` is an
.npz path, a directory of .npy files, {input name: array}, a list of samples or None
(synthetic inputs with a `CalibrationWarning`). A model that is already quantized (an ONNX
QDQ model: it holds quantize_linear after the rewrites) keeps its own scales: no
calibration, its QDQ form goes straight to lower-integer. See qdq.py for where the pairs go and
calibrate.py for the range methods.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vcompile.ir.graph import Graph
from vcompile.passes.infra.pipeline import LOWER_INTEGER as LOWER
from vcompile.passes.infra.spec import PassSpec
from vcompile.quant.calibrate import DEFAULT_PERCENTILE, METHODS, activation_scales, check_method
from vcompile.quant.calibrate import collect_ranges as collect_ranges
from vcompile.quant.data import CalibrationWarning, samples_from, synthetic_samples
from vcompile.quant.qdq import SOFTMAX_SCALE, QuantizeError, insert_qdq, plan

MODES = ("int8",)
DEFAULT_MAX_SAMPLES = 8  # the interpreter takes seconds per sample on a ViT


def check_quantize(mode: str | None) -> str | None:
    """None (float) or 'int8'; anything else fails in one line."""
    if mode is None or mode in MODES:
        return mode
    raise QuantizeError(f"unknown quantize mode {mode!r}; use quantize='int8' (--int8) or leave it "
                        "out for float")


def quantize(g: Graph, calib: Any = None, method: str = "minmax",
             percentile: float = DEFAULT_PERCENTILE, max_samples: int = DEFAULT_MAX_SAMPLES) -> Graph:
    """The QDQ form of the float graph `g`, calibrated on `calib` (see module docstring);
    a graph already in QDQ form (an ONNX QDQ model) as it is: its own scales stand."""
    from vcompile.ir.verify import verify
    check_method(method, percentile)
    if is_quantized(g):
        return g
    if max_samples < 1:
        raise QuantizeError(f"max_samples must be 1 or more, got {max_samples}")
    marked = plan(g)
    samples = samples_from(calib, g)
    if samples is None:
        samples = synthetic_samples(g, warn=True)
    if not samples:
        raise QuantizeError("the calibration data holds no samples")
    watch = [v for v, dt in marked.items() if dt == "i8"]
    ranges = collect_ranges(g, watch, samples[:max_samples], method, percentile)
    scales = activation_scales(ranges, method, percentile)
    scales.update({v: SOFTMAX_SCALE for v, dt in marked.items() if dt == "u8"})
    out = insert_qdq(g, scales, marked)
    verify(out)
    return out


def is_quantized(g: Graph) -> bool:
    """Whether `g` already holds quantize_linear (a model quantized before it got here)."""
    return any(n.op == "quantize_linear" for n in g.nodes)


def run_int8(g: Graph, before: Sequence[PassSpec], after: Sequence[PassSpec], calib: Any = None,
             method: str = "minmax", percentile: float = DEFAULT_PERCENTILE,
             max_samples: int = DEFAULT_MAX_SAMPLES, progress: Callable[[str], None] | None = None,
             run: Callable[[Graph, Sequence[PassSpec]], Graph] | None = None,
             ) -> tuple[Graph, tuple[str, ...]]:
    """The int8 flow with its two halves given (`passes.infra.pipeline.int8_split`); `run` runs
    a pipeline (default `passes.run`, the CLI passes its diagnostics' manager)."""
    from vcompile import passes as P
    say = progress or (lambda s: None)
    run = run or P.run
    g = run(g, before) if before else g
    say("lowering the model's own quantization" if is_quantized(g) else "calibrating")
    q = quantize(g, calib, method, percentile, max_samples)
    say("lowering to integers")
    return run(q, after), tuple(s.name for s in before) + ("quantize",) + tuple(s.name for s in after)


__all__ = ["DEFAULT_PERCENTILE", "LOWER", "METHODS", "MODES", "CalibrationWarning", "QuantizeError",
           "check_quantize", "is_quantized", "quantize", "run_int8"]
