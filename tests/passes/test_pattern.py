"""The pattern-rewriting API: bindings, one_use, commute, declining rules, hint/loc
carry-over and the non-convergence guard."""
from __future__ import annotations

import numpy as np
import pytest

from vcompile.ir import Builder, Graph, print_graph
from vcompile.ir.graph import Value
from vcompile.passes import Match, P, RewriteBuilder, RewriteError, rewrite, rule


def _graph(shared: bool = False) -> Graph:
    bb = Builder("g")
    x = bb.input((2, 3), hint="x")
    c = bb.const(np.float32(2.0), hint="c")
    e = bb.emit("exp", x, hint="e")
    m = bb.emit("mul", e, c, hint="m", loc="scale")
    outs = [bb.emit("neg", m, hint="y")]
    if shared:
        outs.append(e)
    return bb.build(*outs)


@rule(P.op("mul", P.op("exp", P.any("x")).one_use(), P.const("c")))
def exp_times_const(m: Match, bb: RewriteBuilder) -> Value | None:
    return bb.emit("exp", bb.emit("add", m["x"], bb.const(np.log(m.array("c")), hint="logc")))


def test_rewrite_carries_hint_and_loc_and_removes_dead() -> None:
    g = _graph()
    out = rewrite(g, [exp_times_const])
    text = print_graph(out)
    assert "%m = exp(%0) : f32[2,3] loc(\"scale\")" in text
    assert "mul" not in text and rewrite(out, [exp_times_const]) is out


def test_one_use_declines_shared_value() -> None:
    g = _graph(shared=True)
    assert rewrite(g, [exp_times_const]) is g


def test_same_name_must_bind_same_value() -> None:
    @rule(P.op("add", P.any("a"), P.any("a")))
    def double(m: Match, bb: RewriteBuilder) -> Value | None:
        return bb.emit("mul", m["a"], bb.const(np.float32(2.0)))
    bb = Builder()
    x, y = bb.input((2,), hint="x"), bb.input((2,), hint="y")
    g = bb.build(bb.emit("add", x, x), bb.emit("add", x, y))
    text = print_graph(rewrite(g, [double]))
    assert text.count("mul(") == 1 and text.count("add(") == 1


def test_commute_and_decline() -> None:
    seen: list[str] = []

    @rule(P.op("mul", P.const("c"), P.any("x"), commute=True))
    def decline(m: Match, bb: RewriteBuilder) -> Value | None:
        seen.append(m["x"].hint)
        return None
    g = _graph()
    assert rewrite(g, [decline]) is g and seen == ["e"]


def test_non_convergence_names_last_rule() -> None:
    @rule(P.op("neg", P.any("x")))
    def flip_forever(m: Match, bb: RewriteBuilder) -> Value | None:
        return bb.emit("neg", m["x"])
    with pytest.raises(RewriteError, match=r"did not converge after 5 sweeps; the last rule that "
                                           r"fired was 'flip_forever'"):
        rewrite(_graph(), [flip_forever], max_sweeps=5)


def test_ill_typed_replacement_is_an_error() -> None:
    @rule(P.op("neg", P.any("x")))
    def bad(m: Match, bb: RewriteBuilder) -> Value | None:
        return bb.emit("reduce_sum", m["x"], keepdims=False)
    with pytest.raises(RewriteError, match=r"rule bad replaced a f32\[2,3\] value with a f32\[\] one"):
        rewrite(_graph(), [bad])


def test_pattern_root_must_be_an_op() -> None:
    with pytest.raises(TypeError, match="rooted at an op"):
        rule(P.any("x"))  # type: ignore[arg-type]
