"""timm models (random weights) compiled for the host at -O0 and -O2, against onnxruntime.

    onnx_model(name) => vcompile.compile(path, opt_level=O) => outputs == onnxruntime (1e-4 rel)

Untuned TVM CPU code takes seconds per run on these models, and building takes tens
of seconds, so these are `slow`; `make test` runs the whole suite (about 3 minutes on 2 cores),
VCOMPILE_MODELS=core only resnet18 and deit_tiny.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from tests.models import SUITE, onnx_model, sample_input

pytest.importorskip("tvm")
pytest.importorskip("timm")
pytestmark = [pytest.mark.tvm, pytest.mark.slow]

CORE = ["resnet18", "deit_tiny_patch16_224"]
MODELS = CORE if os.environ.get("VCOMPILE_MODELS") == "core" else SUITE


def onnxruntime_outputs(path: str, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def assert_close_rel(got: list[np.ndarray], want: list[np.ndarray], rel: float = 1e-4) -> None:
    """max |got - want| <= rel * max |want|, per output (the scale of logits varies)."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=False):
        assert g.shape == w.shape and g.dtype == w.dtype
        scale = float(np.abs(w).max())
        err = float(np.abs(g.astype(np.float64) - w).max())
        assert err <= rel * scale, f"max abs err {err:.3g} > {rel} x {scale:.3g}"


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("name", MODELS)
def test_model_matches_onnxruntime(name: str, opt_level: int) -> None:
    import vcompile
    path = str(onnx_model(name))
    x = sample_input(name)
    m = vcompile.compile(path, target="host", opt_level=opt_level)
    assert_close_rel(m(x), onnxruntime_outputs(path, x))
