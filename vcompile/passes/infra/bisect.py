"""`--bisect-numerics`: find the first pass whose output departs from the original.

Runs the reference interpreter on seeded inputs before any pass and after each one,
and compares every output with the original's: the error is max|got - want| /
max(max|want|, 1e-6) per output (relative to the output's scale, so that values near
zero do not dominate). Reports one line naming the first pass beyond `tol`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from vcompile.ir import interp
from vcompile.ir.graph import Graph
from vcompile.passes.infra.manager import PassManager
from vcompile.passes.infra.spec import PassSpec, parse_pipeline

DEFAULT_TOL = 1e-4


def seeded_inputs(g: Graph, seed: int = 0, sym_size: int = 1) -> list[np.ndarray]:
    """One array per graph input: standard normal floats, small ints, random bools;
    symbolic dims are `sym_size`."""
    rng = np.random.default_rng(seed)
    out = []
    for v in g.inputs:
        shape = tuple(d if isinstance(d, int) else sym_size for d in v.shape)
        dt = v.type.np_dtype
        if dt.kind == "f":
            out.append(rng.standard_normal(shape).astype(dt))
        elif dt.kind == "b":
            out.append(rng.integers(0, 2, shape).astype(bool))
        else:
            out.append(rng.integers(0, 8, shape).astype(dt))
    return out


def rel_error(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> float:
    err = 0.0
    for a, b in zip(got, want, strict=True):
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a64.shape != b64.shape:
            return float("inf")
        if a64.size == 0:
            continue
        diff = np.abs(a64 - b64)
        same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
        diff = np.where(same, 0.0, diff)
        scale = max(float(np.nanmax(np.abs(b64))) if np.isfinite(b64).any() else 0.0, 1e-6)
        err = max(err, float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))) / scale)
    return err


@dataclass(frozen=True)
class BisectResult:
    passes: tuple[str, ...]  # all asked for
    errors: tuple[float, ...]  # after each pass run, against the original
    tol: float
    graph: Graph  # the graph after all passes (or after the first bad one)

    @property
    def first_bad(self) -> str | None:
        for name, e in zip(self.passes, self.errors, strict=False):
            if not e <= self.tol:
                return name
        return None

    @property
    def line(self) -> str:
        bad = self.first_bad
        if bad is None:
            worst = max(self.errors, default=0.0)
            return (f"bisect-numerics: all {len(self.passes)} passes within tolerance {self.tol:g} "
                    f"(max rel error {worst:.3g})")
        i = self.passes.index(bad)
        return (f"bisect-numerics: pass {bad!r} (#{i + 1} of {len(self.passes)}) departs from the "
                f"original: max rel error {self.errors[i]:.3g} > tol {self.tol:g}; ran before it: "
                f"{', '.join(self.passes[:i]) or 'nothing'}")


def bisect_numerics(g: Graph, passes: str | Iterable[str | PassSpec], *, tol: float = DEFAULT_TOL,
                    seed: int = 0,
                    inputs: Sequence[np.ndarray] | None = None, verify_each: bool = True,
                    stop_at_first: bool = True) -> BisectResult:
    """Run `passes` one at a time, checking the interpreter's outputs after each."""
    specs = parse_pipeline(passes)
    names = tuple(s.name for s in specs)
    xs = list(inputs) if inputs is not None else seeded_inputs(g, seed)
    want = interp.run(g, *xs)
    pm = PassManager(verify_each=verify_each)
    errors: list[float] = []
    for i, spec in enumerate(specs):
        out = pm.run_one(g, spec, i, list(names[:i]))
        if out is g:
            errors.append(errors[-1] if errors else 0.0)
        else:
            errors.append(rel_error(interp.run(out, *xs), want))
        g = out
        if stop_at_first and not errors[-1] <= tol:
            break
    return BisectResult(names, tuple(errors), tol, g)
