"""Every pass keeps the interpreter's outputs (1e-5 relative, f32), keeps `verify`
passing, and is idempotent: running it again returns the same object."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tests.strategies import assert_close, graphs, seeded_inputs
from tests.strategies_conv import conv_bn_graphs
from vcompile import passes
from vcompile.ir import interp

PASSES = ["canonicalize", "dce", "cse", "fold-constants", "fold-batchnorm", "reparameterize",
          "fold-scale", "fold-transposes", "recognize", "simplify-layout", "fuse"]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(g, spec: str) -> None:  # type: ignore[no-untyped-def]
    once = passes.run(g, spec, verify_each=True)
    assert passes.run(once, spec) is once, f"{spec} is not idempotent"
    x = seeded_inputs(g, seed=0)
    want = interp.run(g, *x)
    got = interp.run(once, *x)
    for a, b in zip(got, want, strict=True):
        if a.dtype.kind == "f":
            scale = max(float(np.nanmax(np.abs(b))) if b.size and np.isfinite(b).all() else 1.0, 1.0)
            assert_close(a, b, rtol=1e-5, atol=1e-5 * scale)
        else:
            assert_close(a, b)


@pytest.mark.parametrize("spec", PASSES + ["O2"])
@SETTINGS
@given(g=conv_bn_graphs())
def test_conv_graphs_sound_and_idempotent(spec: str, g) -> None:  # type: ignore[no-untyped-def]
    _check(g, ",".join(passes.O2) if spec == "O2" else spec)


@pytest.mark.parametrize("spec", ["canonicalize", "cse", "fold-constants", "fold-scale", "recognize",
                                  "simplify-layout", "fuse"])
@SETTINGS
@given(g=graphs())
def test_general_graphs_sound_and_idempotent(spec: str, g) -> None:  # type: ignore[no-untyped-def]
    _check(g, spec)


@SETTINGS
@given(g=conv_bn_graphs())
def test_o2_leaves_no_batch_norm(g) -> None:  # type: ignore[no-untyped-def]
    out = passes.run(g, passes.O2)
    from vcompile.ir.stats import all_nodes
    assert not any(n.op == "batch_norm" for n in all_nodes(out))
