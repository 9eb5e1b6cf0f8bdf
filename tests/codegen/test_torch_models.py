"""timm models compiled straight from the nn.Module (torch frontend -> -O2 -> TVM), against
eager PyTorch.

    create_timm(name) => vcompile.compile(module, example_inputs=(x,)) => outputs == eager (1e-4)

`make test` runs the torch frontend's whole suite (about 90 s on 2 cores);
VCOMPILE_MODELS=core only deit_tiny (attention) and fastvit_t8 (training-form branches).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from tests.codegen.test_models import assert_close_rel

torch = pytest.importorskip("torch")
pytest.importorskip("tvm")
pytest.importorskip("timm")
pytestmark = [pytest.mark.tvm, pytest.mark.slow]

SUITE = ["resnet18", "convnext_atto", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224",
         "efficientvit_b0", "efficientvit_m0", "fastvit_t8", "levit_128s", "mobilevitv2_050",
         "repvit_m0_9", "poolformer_s12", "pvt_v2_b0", "nextvit_small", "cait_xxs24_224",
         "crossvit_tiny_240", "lowformer_b0"]
CORE = ["deit_tiny_patch16_224", "fastvit_t8"]
MODELS = CORE if os.environ.get("VCOMPILE_MODELS") == "core" else SUITE


@pytest.mark.parametrize("name", MODELS)
def test_compiled_from_module_matches_eager(name: str) -> None:
    import vcompile
    from vcompile.models import create_timm
    model, shape = create_timm(name)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = model(x).numpy()
    cm = vcompile.compile(model, example_inputs=(x,), opt_level=2)
    from vcompile.ir.stats import all_nodes
    assert "batch_norm" not in {n.op for n in all_nodes(cm.graph)}
    got = cm(x.numpy())
    assert_close_rel(got, [want])
    err = float(np.abs(got[0] - want).max() / np.abs(want).max())
    print(f"\n{name}: {len(cm.graph.nodes)} IR nodes after -O2, max rel err {err:.1e}")
