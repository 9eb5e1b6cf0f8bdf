"""Property: QDQ insertion works on any small well-typed graph (tests/strategies.py).

The result verifies, runs in the interpreter, is in the form a lowering can consume
(`form_violations` is empty), leaves non-float values alone and keeps the outputs' types.
"""
from __future__ import annotations

import warnings

from hypothesis import HealthCheck, given, settings

from tests.strategies import graphs, seeded_inputs
from vcompile.ir import interp
from vcompile.quant import quantize
from vcompile.quant.qdq import form_violations


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_qdq_insertion_on_random_graphs(g):
    calib = [seeded_inputs(g, seed=s, sizes={"N": 2}) for s in range(2)]  # samples: lists
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # exp/overflow in random graphs
        q = quantize(g, calib=calib)
        ys = interp.run(q, *seeded_inputs(g, seed=5, sizes={"N": 2}))
    assert form_violations(q) == []
    assert [v.type for v in q.outputs] == [v.type for v in g.outputs]
    assert [y.dtype for y in ys] == [v.type.np_dtype for v in g.outputs]
    assert all(n.op != "quantize_linear" or n.inputs[0].type.dtype.startswith("f") for n in q.nodes)
