"""ONNX backend node tests through the compiled path, counted against the interpreter.

    onnx node test => vcompile.compile(model, target="host") => TVM library == expected

Same cases, tolerances and dtype/shape checks as tests/frontends/test_onnx_conformance.py.
One test runs every case (one TVM build each), prints both counts and every failure,
and requires the compiled path to pass every case the interpreter passes, except the
listed KNOWN_GAPS.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.onnx_node_cases import EXPECTED_COUNT, Case, node_cases

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm

# Cases the interpreter passes that the compiled path does not yet (none today).
# Shrink this set, never grow it.
KNOWN_GAPS: set[str] = set()


def _check(got: list[np.ndarray], case: Case) -> None:
    assert len(got) == len(case.outputs), f"{len(got)} outputs, expected {len(case.outputs)}"
    for i, (y, want) in enumerate(zip(got, case.outputs, strict=True)):
        want = np.asarray(want)
        assert y.dtype == want.dtype, f"output {i}: dtype {y.dtype}, expected {want.dtype}"
        assert y.shape == want.shape, f"output {i}: shape {y.shape}, expected {want.shape}"
        np.testing.assert_allclose(y, want, rtol=case.rtol, atol=case.atol, err_msg=f"output {i}")


def run_interp(case: Case) -> None:
    from vcompile.frontends import onnx as onnx_frontend
    from vcompile.ir import interp, verify
    g = verify(onnx_frontend.load(case.model))
    _check(interp.run(g, *case.inputs), case)


def run_compiled(case: Case) -> None:
    import vcompile
    m = vcompile.compile(case.model, target="host")
    _check(m(*case.inputs), case)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def _count(cases: list[Case], fn) -> tuple[set[str], list[str]]:  # type: ignore[no-untyped-def]
    passed, failed = set(), []
    for case in cases:
        try:
            fn(case)
            passed.add(case.name)
        except Exception as e:  # noqa: BLE001  (the summary counts every failure kind)
            failed.append(f"{case.name}: {_first_line(e)}")
    return passed, failed


def test_compiled_conformance(capsys: pytest.CaptureFixture[str]) -> None:
    cases = node_cases()
    interp_ok, _ = _count(cases, run_interp)
    compiled_ok, failed = _count(cases, run_compiled)
    with capsys.disabled():
        print(f"\nONNX node conformance (compiled): {len(compiled_ok)}/{EXPECTED_COUNT} "
              f"(interpreter: {len(interp_ok)}/{EXPECTED_COUNT})")
        for line in failed:
            print("  FAIL", line)
    assert len(cases) == EXPECTED_COUNT
    regressions = sorted(interp_ok - compiled_ok - KNOWN_GAPS)
    assert not regressions, f"pass in the interpreter, fail compiled: {regressions}"
    assert len(compiled_ok) >= len(interp_ok) - len(KNOWN_GAPS)
