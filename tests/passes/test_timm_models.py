"""Real models in training form (branches and BatchNorms kept, random BN statistics):
after -O2 no batch_norm is left, the conv count equals that of timm's own
`reparameterize_model()`, and outputs match the unoptimized graph within 1e-4.
Prints a table of node counts before/after (run with -s to see it)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.passes.timm_export import MODELS, export, onnx_op_count, sample
from vcompile import passes
from vcompile.ir import interp
from vcompile.ir.stats import all_nodes

pytest.importorskip("timm")
ROWS: dict[str, str] = {}


def _convs(g) -> int:  # type: ignore[no-untyped-def]
    return sum(n.op.startswith("conv") for n in all_nodes(g))


def _bns(g) -> int:  # type: ignore[no-untyped-def]
    return sum(n.op == "batch_norm" for n in all_nodes(g))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_o2_folds_and_reparameterizes_like_timm(name: str) -> None:
    from vcompile.frontends import onnx as onnx_frontend
    timm_name = MODELS[name]
    g = onnx_frontend.load(export(timm_name, "train"))
    timm_convs = onnx_op_count(export(timm_name, "reparam"), "Conv")
    out = passes.run(g, passes.O2, verify_each=True)
    x = sample(timm_name)
    want, got = interp.run(g, x)[0], interp.run(out, x)[0]
    err = float(np.abs(got - want).max() / np.abs(want).max())
    ROWS[name] = (f"{name:<16} {len(g.nodes):>6} {len(all_nodes(out)):>6} {_bns(g):>5} {_bns(out):>5} "
                  f"{_convs(g):>6} {_convs(out):>6} {timm_convs:>6} {err:>9.1e}")
    print("\nmodel            nodes  -O2     BN   -O2  convs   -O2  timm   rel err\n" + ROWS[name])
    assert _bns(out) == 0
    assert _convs(out) == timm_convs
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
