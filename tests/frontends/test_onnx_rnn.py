"""ONNX LSTM/GRU/RNN import: the imported graph, run by the interpreter, against
onnxruntime (and onnx's evaluator for layout 1), at opset 14 and at older opsets."""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from onnx import numpy_helper

from tests.ir.test_ops_recurrent import Case, case, close, run_ir, run_ort
from vcompile.frontends import onnx as onnx_frontend
from vcompile.frontends.onnx import OPSET_RANGE
from vcompile.ir import interp


def _import(c: Case) -> Any:
    return onnx_frontend.load(c.model)


def _run(c: Case) -> list[np.ndarray]:
    return interp.run(_import(c), *c.feeds.values())


CASES: list[tuple[str, dict[str, Any]]] = [
    ("LSTM", {"direction": "bidirectional", "seq": [5, 2, 4], "init": True, "peep": True}),
    ("LSTM", {"bias": False, "input_forget": 1, "clip": 0.5}),
    ("GRU", {"direction": "reverse", "linear_before_reset": 1, "init": True}),
    ("GRU", {"activations": ["HardSigmoid", "Softsign"], "activation_alpha": [0.3],
             "activation_beta": [0.4]}),
    ("RNN", {"direction": "bidirectional", "seq": [1, 3, 5], "activations": ["Relu", "Tanh"]}),
]


@pytest.mark.parametrize(("op", "kw"), CASES, ids=[f"{o}-{i}" for i, (o, _) in enumerate(CASES)])
def test_imports_and_matches_onnxruntime(op: str, kw: dict[str, Any]) -> None:
    c = case(op, **kw)
    close(_run(c), run_ort(c))


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_layout_1_matches_the_onnx_evaluator(op: str) -> None:
    from onnx.reference import ReferenceEvaluator
    c = case(op, layout=1, init=True, direction="bidirectional")
    close(_run(c), ReferenceEvaluator(c.model).run(None, c.feeds))


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("opset", sorted({max(7, OPSET_RANGE[0]), 13}))
def test_older_opsets(op: str, opset: int) -> None:
    c = case(op, opset=opset, direction="bidirectional", init=True, seq=[5, 1, 3])
    close(_run(c), run_ort(c))


def test_weights_fold_and_inert_inputs_are_dropped() -> None:
    """Constant weights stay constants; a full-length sequence_lens and zero initial
    states are what their absence means, so the op does not take them."""
    c = case("LSTM", seq=[5, 5, 5], init=True, direction="bidirectional")
    g = c.model.graph
    for name in ("W", "R", "B", "sequence_lens", "initial_h", "initial_c"):
        arr = c.feeds.pop(name)
        if name.startswith("initial"):
            arr = np.zeros_like(arr)
        g.initializer.append(numpy_helper.from_array(arr, name))
    keep = [i for i in g.input if i.name == "X"]
    del g.input[:]
    g.input.extend(keep)
    ir = _import(c)
    (node,) = [n for n in ir.nodes if n.op == "lstm"]
    assert node.attrs["present"] == "B"
    assert close(interp.run(ir, c.feeds["X"]), run_ort(c)) is None


def test_hidden_size_defaults_to_r() -> None:
    c = case("GRU")
    want = run_ir("GRU", c)  # onnxruntime requires the attr
    attrs = c.model.graph.node[0].attribute
    keep = [a for a in attrs if a.name != "hidden_size"]
    del attrs[:]
    attrs.extend(keep)
    close(_run(c), want)


def test_unknown_activation_is_a_one_line_error() -> None:
    c = case("RNN", activations=["Gelu"])
    with pytest.raises(onnx_frontend.FrontendError, match=r"RNN\): .*unknown activation 'Gelu'") as e:
        _import(c)
    assert "\n" not in str(e.value)


@functools.cache
def onnx_node_tests() -> list[Any]:
    """ONNX's own LSTM/GRU/RNN node tests (opset 22). Importing an op's module generates
    its cases; `collect_testcases` would run every op's generators (10 s)."""
    import onnx.backend.test.case.node as node_cases
    from onnx.backend.test.case.node import gru, lstm, rnn  # noqa: F401  (generate the cases)
    registry = node_cases._NodeTestCases  # noqa: SLF001  (where `expect` appends)
    ops = {"LSTM", "GRU", "RNN"}
    found = {c.name: c for c in registry if {n.op_type for n in c.model.graph.node} <= ops}
    return [found[k] for k in sorted(found)]


def test_onnx_node_tests() -> None:
    """All 18, imported and interpreted, at ONNX's tolerances (compiled: tests/codegen)."""
    cases = onnx_node_tests()
    assert len(cases) == 18
    for c in cases:
        ((inputs, want),) = c.data_sets
        got = interp.run(onnx_frontend.load(c.model), *inputs)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=c.rtol, atol=max(c.atol, 1e-6), err_msg=c.name)
