"""Calibration: the ranges of the activations PTQ quantizes, observed by the interpreter.

    ranges = collect_ranges(g, values, samples)          # one interpreter run per sample
    scales = activation_scales(ranges, "percentile", 99.99)

Runs `g` (the float graph after the -O rewrites, before fuse) on each sample with
`ir.interp`'s op evals and folds every watched value into running statistics as soon
as it is computed, so nothing but the statistics outlives its last use (swin_tiny's
activations together would take about a gigabyte).

Methods (symmetric, so a range is one number r and the i8 scale r / 127):
  minmax      r = max over samples of max |x|
  percentile  r = max over samples of the P-th percentile of |x| (P = 99.99 by default):
              a handful of outliers per tensor (GELU and LayerNorm outputs of ViTs have
              them) no longer stretch the scale of everything else.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vcompile.ir import interp
from vcompile.ir.graph import Graph, Value
from vcompile.quant.qdq import QuantizeError

METHODS = ("minmax", "percentile")
DEFAULT_PERCENTILE = 99.99


@dataclass
class Range:
    """What calibration saw of one value: its min and max, and the percentile of |x|."""
    lo: float = np.inf
    hi: float = -np.inf
    pct: float = 0.0

    def update(self, x: np.ndarray, percentile: float | None) -> None:
        if x.size == 0:
            return
        xf = x.astype(np.float32, copy=False)
        self.lo = min(self.lo, float(xf.min()))
        self.hi = max(self.hi, float(xf.max()))
        if percentile is not None:
            self.pct = max(self.pct, float(np.percentile(np.abs(xf), percentile)))

    @property
    def absmax(self) -> float:
        return max(abs(self.lo), abs(self.hi)) if self.lo <= self.hi else 0.0


def check_method(method: str, percentile: float) -> None:
    """Bad calibration options fail before any work, each in one line."""
    if method not in METHODS:
        raise QuantizeError(f"unknown calibration method {method!r}; use minmax or percentile")
    if not 0.0 < percentile <= 100.0:
        raise QuantizeError(f"percentile must be in (0, 100], got {percentile}; 99.99 is usual")


def collect_ranges(g: Graph, values: Iterable[Value], samples: Sequence[Sequence[np.ndarray]],
                   method: str = "minmax", percentile: float = DEFAULT_PERCENTILE) -> dict[Value, Range]:
    """Run `g` on every sample (one array per graph input) and return the range of each
    watched value."""
    check_method(method, percentile)
    watch = {v: Range() for v in values}
    pct = percentile if method == "percentile" else None

    def fold(v: Value, x: np.ndarray) -> None:
        if v in watch:
            watch[v].update(x, pct)
    for sample in samples:
        interp.run(g, *sample, observe=fold)
    return watch


def activation_scales(ranges: Mapping[Value, Range], method: str = "minmax",
                      percentile: float = DEFAULT_PERCENTILE) -> dict[Value, float]:
    """Symmetric i8 scales (r / 127) from calibrated ranges."""
    check_method(method, percentile)
    out = {}
    for v, r in ranges.items():
        # NOTE: a percentile above the absolute max cannot happen, but a value that is 0
        # everywhere except in outliers would get 0 here; fall back to its max.
        span = r.pct if method == "percentile" and r.pct > 0 else r.absmax
        out[v] = span / 127.0 if span > 0 else 1.0
    return out
