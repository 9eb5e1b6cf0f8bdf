"""ONNX backend node tests through the frontend and the reference interpreter.

    onnx node test => frontends.onnx.load => ir.interp.run == expected outputs

Tolerances are ONNX's own (the case's rtol/atol); dtypes and shapes must match exactly.
Inputs that configure an op (Reshape's shape, Slice's starts, ...) are frozen into the
model by `tests.onnx_node_cases` (vcompile graphs are static).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.onnx_node_cases import EXPECTED_COUNT, Case, node_cases
from vcompile.frontends import onnx as onnx_frontend
from vcompile.ir import interp, verify

CASES = {c.name: c for c in node_cases()}

# NOTE: the IR holds tensors only. These two selected cases pass an ONNX sequence and an
# optional through Identity; their length/presence is not in the model, so they cannot
# become a static tensor graph. They must fail with the frontend's UnsupportedType.
NOT_TENSORS = {"test_identity_sequence", "test_identity_opt"}


def run_case(case: Case) -> None:
    g = verify(onnx_frontend.load(case.model))
    got = interp.run(g, *case.inputs)
    assert len(got) == len(case.outputs), f"{len(got)} outputs, expected {len(case.outputs)}"
    for i, (y, want) in enumerate(zip(got, case.outputs, strict=True)):
        want = np.asarray(want)
        assert y.dtype == want.dtype, f"output {i}: dtype {y.dtype}, expected {want.dtype}"
        assert y.shape == want.shape, f"output {i}: shape {y.shape}, expected {want.shape}"
        np.testing.assert_allclose(y.astype(np.float64) if y.dtype.kind == "V" else y,
                                   want, rtol=case.rtol, atol=case.atol,
                                   err_msg=f"output {i} of {case.name}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_node(name: str) -> None:
    if name in NOT_TENSORS:
        with pytest.raises(onnx_frontend.UnsupportedType, match="only tensors are supported"):
            run_case(CASES[name])
        return
    run_case(CASES[name])


def test_summary(capsys: pytest.CaptureFixture[str]) -> None:
    failed = []
    for name, case in sorted(CASES.items()):
        try:
            run_case(case)
        except Exception as e:  # noqa: BLE001  (the summary counts every failure kind)
            failed.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    passed = len(CASES) - len(failed)
    with capsys.disabled():
        print(f"\nONNX node conformance (interpreter): {passed}/{EXPECTED_COUNT} passed")
        for line in failed:
            print("  FAIL", line[:300])
    assert len(CASES) == EXPECTED_COUNT
    assert {line.split(":")[0] for line in failed} == NOT_TENSORS
    assert passed == EXPECTED_COUNT - len(NOT_TENSORS)
