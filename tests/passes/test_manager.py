"""The pass registry, manager, pipelines, diagnostics and their error messages."""
from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest

from vcompile import passes
from vcompile.cli import main as cli_main
from vcompile.ir import Graph, parse_graph, print_graph
from vcompile.passes.infra.registry import PASSES, UnknownPassError, register, unregister

CONV_BN = """\
graph @block(%x: f32[1,3,8,8]) {
  const %w: f32[4,3,3,3]
  const %b: f32[4]
  const %gamma: f32[4]
  const %beta: f32[4]
  const %mean: f32[4]
  const %var: f32[4] = [1.0, 2.0, 0.5, 1.5]
  %y = conv2d(%x, %w, %b) {dilations=[1,1], groups=1, pads=[0,0,0,0], strides=[1,1]} : f32[1,4,6,6]
  %z = batch_norm(%y, %gamma, %beta, %mean, %var) {epsilon=1e-05} : f32[1,4,6,6]
  return %z
}
"""


@pytest.fixture
def g() -> Graph:
    return parse_graph(CONV_BN, consts=0)


@pytest.fixture
def temp_pass() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for n in names:
        unregister(n)


def test_run_by_names_and_pipeline(g: Graph) -> None:
    out = passes.run(g, "fold-batchnorm,dce")
    assert [n.op for n in out.nodes] == ["conv2d"]
    assert passes.run(g, passes.O2).nodes[0].op == "conv2d"
    assert passes.run(out, "canonicalize,fold-batchnorm") is out


def test_pipelines_are_written_out_and_registered() -> None:
    for level in (passes.O0, passes.O1, passes.O2, passes.O3):
        assert isinstance(level, tuple) and all(p in PASSES for p in level)
    assert passes.pipeline("-O2") == passes.O2
    with pytest.raises(Exception, match="unknown optimization level 'O7'"):
        passes.pipeline("O7")


def test_unknown_pass_lists_registered(g: Graph) -> None:
    with pytest.raises(UnknownPassError, match=r"unknown pass 'fold-bn'; registered passes: .*canonicalize"):
        passes.run(g, "canonicalize,fold-bn")


def test_register_rejects_bad_names_and_duplicates() -> None:
    with pytest.raises(ValueError, match="kebab-case"):
        register("fold_bn")
    with pytest.raises(ValueError, match="registered twice"):
        register("dce")(lambda g: g)


def test_pass_error_names_pass_and_history(g: Graph, temp_pass: list[str]) -> None:
    @register("explode-for-test")
    def explode(g: Graph) -> Graph:
        raise ZeroDivisionError("boom")
    temp_pass.append("explode-for-test")
    with pytest.raises(passes.PassError,
                       match=r"pass 'explode-for-test' failed; ran before it: canonicalize, dce: "
                             r"ZeroDivisionError: boom") as info:
        passes.run(g, "canonicalize,dce,explode-for-test")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_verify_each_catches_broken_graph(g: Graph, temp_pass: list[str]) -> None:
    @register("break-for-test")
    def broken(g: Graph) -> Graph:
        return g.replace(nodes=g.nodes[::-1])
    temp_pass.append("break-for-test")
    with pytest.raises(passes.PassError, match=r"pass 'break-for-test' failed; ran before it: "
                                               r"nothing: VerifyError: .*used before it is defined"):
        passes.run(g, "break-for-test", verify_each=True)


def test_stats_and_print_after(g: Graph, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stats: list[passes.PassStat] = []
    stream = io.StringIO()
    passes.run(g, "canonicalize,fold-batchnorm", stats=stats, print_after=frozenset({"fold-batchnorm"}),
               print_to=stream)
    assert [s.name for s in stats] == ["canonicalize", "fold-batchnorm"]
    assert stats[1].counts == {"fold_bn_into_conv": 1} and stats[1].nodes_after == 1
    assert "fold_bn_into_conv=1" in passes.format_stats(stats)
    assert stream.getvalue().startswith("// ----- IR after fold-batchnorm (pass 2) -----\ngraph @block")
    passes.run(g, "canonicalize,fold-batchnorm", print_after="all", print_to=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01-canonicalize.vir", "02-fold-batchnorm.vir"]


def test_bisect_finds_wrong_pass(g: Graph, temp_pass: list[str]) -> None:
    @register("wrong-for-test")
    def wrong(g: Graph) -> Graph:  # doubles the conv bias: a plausible folding bug
        b = next(v for v in g.nodes[0].inputs[2:])
        consts = dict(g.consts)
        consts[b] = np.asarray(g.consts[b] * 2)
        return g.replace(consts=consts)
    temp_pass.append("wrong-for-test")
    good = passes.bisect_numerics(g, "canonicalize,fold-batchnorm")
    assert good.first_bad is None and good.line.startswith("bisect-numerics: all 2 passes within")
    res = passes.bisect_numerics(g, "canonicalize,fold-batchnorm,wrong-for-test,dce")
    assert res.first_bad == "wrong-for-test"
    assert res.errors[-1] > 1e-3
    assert "\n" not in res.line
    assert res.line.startswith("bisect-numerics: pass 'wrong-for-test' (#3 of 4) departs from the "
                               "original: max rel error ")
    assert res.line.endswith("ran before it: canonicalize, fold-batchnorm")


def test_cli_pass_options(g: Graph, tmp_path, capsys, temp_pass: list[str]) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "block.vir"
    src.write_text(print_graph(g))
    assert cli_main(["inspect", str(src), "-O2", "--pass-stats", "--verify-each"]) == 0
    out, err = capsys.readouterr()
    assert "batch_norm" not in out and "fold-batchnorm" in err and "total" in err
    assert cli_main(["inspect", str(src), "-p", "fold-batchnorm", "--print-after", "fold-batchnorm"]) == 0
    assert "IR after fold-batchnorm" in capsys.readouterr().err
    assert cli_main(["inspect", str(src), "-O1", "--disable-pass", "fold-batchnorm"]) == 0
    assert "batch_norm" in capsys.readouterr().out
    assert cli_main(["inspect", str(src), "-p", "dce,nope"]) == 1
    assert capsys.readouterr().err.startswith("vcompile: error: unknown pass 'nope'; registered passes: ")

    @register("wrong-cli-test")
    def wrong(g: Graph) -> Graph:
        return g.replace(consts={v: np.asarray(a * 3) for v, a in g.consts.items()})
    temp_pass.append("wrong-cli-test")
    assert cli_main(["inspect", str(src), "-p", "canonicalize,wrong-cli-test", "--bisect-numerics"]) == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("bisect-numerics: pass 'wrong-cli-test' (#2 of 2)") and "\n" not in err
