"""Golden IR tests: each tests/golden/<pass>/*.vir holds a `# RUN: a,b` header, the
input IR, and after `# ---- expected` the exact printed IR after those passes.
`pytest --update-golden` rewrites the expected sections (review the diff).
Every case also checks the interpreter gives the same outputs before and after."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.passes.qdq_util import output_steps
from tests.strategies import assert_close, seeded_inputs
from vcompile import passes
from vcompile.ir import interp, parse_graph, print_graph

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
MARK = "# ---- expected"
CASES = sorted(GOLDEN.glob("*/*.vir"))
# Passes that change numerics on purpose, with the output quantization steps they may move
# (tests/passes/test_lower_integer.py states the per-rule bounds).
STEPS = {"lower-integer": 4.0}


def _split(text: str) -> tuple[str, str, str]:
    head = text.splitlines()[0]
    assert head.startswith("# RUN:"), "a golden file starts with '# RUN: pass,pass'"
    body, _, expected = text.partition(MARK + "\n")
    return head[len("# RUN:"):].strip(), body, expected


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_golden(path: Path, request: pytest.FixtureRequest) -> None:
    spec, body, expected = _split(path.read_text())
    g = parse_graph(body, consts=0)
    out = passes.run(g, spec, verify_each=True)
    got = print_graph(out)
    if request.config.getoption("--update-golden"):
        path.write_text(body.rstrip("\n") + "\n" + MARK + "\n" + got)
    else:
        assert got == expected, f"{path.name}: IR after {spec} differs; rerun with --update-golden to review"
    x = seeded_inputs(g, seed=1)
    want = interp.run(g, *x)
    if spec in STEPS:  # numerics change by design: within a few output quantization steps
        for got, w in zip(interp.run(out, *x), want, strict=True):
            assert output_steps(g, got, w) <= STEPS[spec]
        assert passes.run(out, spec) is out, "running the passes again must change nothing"
        return
    # fp32 rounding scales with the values: the N(0, 1) weights parse draws make whole
    # transformer blocks (attention-to-conv) reach |y| ~ 1e3
    scale = max([1.0, *(float(np.abs(w).max()) for w in want if w.size and w.dtype.kind == "f")])
    assert_close(interp.run(out, *x), want, rtol=1e-5, atol=1e-5 * scale)
    assert passes.run(out, spec) is out, "running the passes again must change nothing"
