"""Fidelity of int8 against float (issue 10, "What it must show").

- digits: a small ViT and a small hybrid conv-attention model, trained here on
  scikit-learn's digits with fixed seeds, lose at most 1 point of test accuracy at int8;
  checked on the QDQ form (interpreter), on the lowered integer graph (interpreter) and
  through vcompile.compile(..., quantize="int8", calib=train samples).
- timm suite (random weights, slow): cosine similarity of int8 logits to float logits
  >= 0.99 on deit_tiny, swin_tiny, levit_128s, efficientvit_m0, resnet18, on the QDQ form
  and on the lowered graph (interpreter); the compiled integer model equals the
  interpreter on the lowered graph bit for bit.

The *_lowered and *_compiled tests need the lower-integer pass (and the integer kernels
for *_compiled); the QDQ ones stand on this package alone.
"""
from __future__ import annotations

import numpy as np
import pytest

from vcompile import passes as P
from vcompile.ir import interp
from vcompile.ir.dtypes import float_ops_in_integer_region
from vcompile.passes.infra.pipeline import O2
from vcompile.quant import LOWER, quantize

REWRITES = [p for p in O2 if p != "fuse"]
MAX_DROP = 1.0  # points of test accuracy


@pytest.fixture(scope="module")
def digits():
    from tests.quant.digits import digits_split
    return digits_split()


@pytest.fixture(scope="module", params=["vit", "hybrid"])
def trained(request, digits):
    """(kind, torch model, float graph after the rewrites, QDQ graph, float test accuracy)."""
    import torch

    from tests.quant.digits import accuracy, train_model
    from vcompile.api import to_graph
    torch.set_num_threads(1)
    train, test = digits
    model = train_model(request.param, train)
    g = P.run(to_graph(model, example_inputs=(torch.from_numpy(test[0]),)), REWRITES)
    acc = accuracy(interp.run(g, test[0])[0], test[1])
    assert acc >= 90.0, f"{request.param} trained to only {acc:.1f}% (the test needs a real model)"
    q = quantize(g, calib={g.inputs[0].hint: train[0][: len(test[0])]})
    return request.param, model, g, q, acc


def test_digits_qdq_keeps_accuracy(trained, digits):
    from tests.quant.digits import accuracy
    kind, _, _, q, acc = trained
    _, (x, y) = digits
    acc_q = accuracy(interp.run(q, x)[0], y)
    assert acc_q >= acc - MAX_DROP, f"{kind}: float {acc:.2f}%, QDQ int8 {acc_q:.2f}%"


def test_digits_lowered_keeps_accuracy(trained, digits):
    """Full flow: needs lower-integer."""
    from tests.quant.digits import accuracy
    kind, _, _, q, acc = trained
    _, (x, y) = digits
    low = P.run(q, list(LOWER))
    assert float_ops_in_integer_region(low) == []
    acc_i = accuracy(interp.run(low, x)[0], y)
    assert acc_i >= acc - MAX_DROP, f"{kind}: float {acc:.2f}%, integer-only {acc_i:.2f}%"


@pytest.mark.tvm
def test_digits_compiled_keeps_accuracy(trained, digits):
    """Full flow: vcompile.compile(quantize="int8") needs lower-integer and integer kernels."""
    import torch

    import vcompile
    from tests.quant.digits import accuracy
    kind, model, g, _, acc = trained
    (xt, _), (x, y) = digits
    m = vcompile.compile(model, example_inputs=(torch.from_numpy(x),), quantize="int8",
                         calib={g.inputs[0].hint: xt[: 2 * len(x)]})
    acc_c = accuracy(m(x)[0], y)
    assert acc_c >= acc - MAX_DROP, f"{kind}: float {acc:.2f}%, compiled int8 {acc_c:.2f}%"


TIMM = ["deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "levit_128s", "efficientvit_m0",
        "resnet18"]
_CACHE: dict[str, tuple] = {}


def _timm(name: str) -> tuple:
    """(float graph, QDQ graph, input, float logits), calibrated on 2 synthetic samples."""
    if name not in _CACHE:
        from tests.models import onnx_model, sample_input
        from vcompile.frontends import onnx as onnx_frontend
        from vcompile.quant.data import synthetic_samples
        g = P.run(onnx_frontend.load(onnx_model(name)), REWRITES)
        q = quantize(g, calib=synthetic_samples(g, count=2, seed=1, warn=False), method="percentile")
        x = sample_input(name, seed=7)
        _CACHE[name] = (g, q, x, interp.run(g, x)[0])
    return _CACHE[name]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.slow
@pytest.mark.parametrize("name", TIMM)
def test_timm_qdq_cosine(name):
    g, q, x, y = _timm(name)
    c = cosine(interp.run(q, x)[0], y)
    assert c >= 0.99, f"{name}: cosine of QDQ int8 logits to float {c:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("name", TIMM)
def test_timm_qdq_form_is_consumable(name):
    """Every quantized op reads dequantized values and is read through quantize_linear,
    and the region holds nothing lower-integer is not asked to convert."""
    from vcompile.quant.qdq import LAYOUT_OPS, QUANT_OPS, form_violations
    _, q, _, _ = _timm(name)
    assert form_violations(q) == []
    foreign = {n.op for n in float_ops_in_integer_region(q)} - QUANT_OPS - LAYOUT_OPS
    assert not foreign, f"{name}: ops inside the region that nothing lowers: {sorted(foreign)}"


@pytest.mark.slow
@pytest.mark.parametrize("name", TIMM)
def test_timm_lowered_cosine(name):
    """Full flow: needs lower-integer."""
    g, q, x, y = _timm(name)
    low = P.run(q, list(LOWER))
    assert float_ops_in_integer_region(low) == []
    c = cosine(interp.run(low, x)[0], y)
    assert c >= 0.99, f"{name}: cosine of integer-only logits to float {c:.4f}"


@pytest.mark.slow
@pytest.mark.tvm
@pytest.mark.parametrize("name", TIMM)
def test_timm_compiled_int8_is_bit_exact(name):
    """The suite's integer graphs, fused and compiled for the host, give the interpreter's
    bits (outputs are dequantized integers, so equal integers give equal floats)."""
    import vcompile
    g, q, x, y = _timm(name)
    low = P.run(q, [*LOWER, "fuse"])
    m = vcompile.compile(low, passes=[])
    got, want = m(x)[0], interp.run(low, x)[0]
    assert np.array_equal(got, want), f"{name}: max diff {np.abs(got - want).max()}"
    assert cosine(got, y) >= 0.99
