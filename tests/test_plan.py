"""The compile plan: options in, pipeline and codegen options out, the same for every entry
point; pass options as keyword-only parameters, spelled MLIR-style, round-tripping."""
from __future__ import annotations

import argparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcompile import passes
from vcompile.cli import build_parser
from vcompile.cli.options import compile_options
from vcompile.errors import VcompileError
from vcompile.ir.builder import Builder
from vcompile.ir.graph import Graph
from vcompile.passes.infra.registry import register, unregister
from vcompile.passes.infra.spec import PassSpec, PipelineError, format_pipeline, parse_pipeline
from vcompile.planner import CompileOptions, plan


def test_levels_are_the_written_out_tables() -> None:
    for level in range(4):
        p = plan(CompileOptions(opt_level=level))
        assert tuple(s.name for s in p.passes) == passes.pipeline(level)
        assert p.codegen.schedules == (level != 0)
        assert p.codegen.fusion == ("none" if level < 2 else "tvm")
        assert (p.codegen.tuning_db is not None) == (level == 3)
        assert p.lowering == ()


def test_explicit_passes_replace_the_level_but_not_codegen() -> None:
    p = plan(CompileOptions(opt_level=0, passes="dce,attention-to-conv{layout=ane}"))
    assert p.pipeline_text() == "dce,attention-to-conv{layout=ane}"
    assert not p.codegen.schedules and p.codegen.fusion == "none"


def test_attn_layout_is_a_pass_option_not_ambient_state() -> None:
    on = plan(CompileOptions(opt_level=2, attn_layout="ane")).passes
    a2c = [s for s in on if s.name == "attention-to-conv"]
    assert a2c == [PassSpec("attention-to-conv", (("layout", "ane"),))]
    assert "depthwise-nhwc" not in [s.name for s in on]
    explicit = plan(CompileOptions(passes="attention-to-conv,dce", attn_layout="bchw")).passes
    assert [str(s) for s in explicit] == ["attention-to-conv{layout=bchw}", "dce"]
    off = plan(CompileOptions(passes="attention-to-conv,dce", attn_layout="bnc")).passes
    assert [str(s) for s in off] == ["dce"]


def test_int8_splits_the_pipeline_in_the_plan() -> None:
    p = plan(CompileOptions(opt_level=2, quantize="int8"))
    names = [s.name for s in p.passes]
    assert "fuse" not in names and "depthwise-nhwc" not in names
    assert [s.name for s in p.lowering] == ["lower-integer", "canonicalize", "dce", "fuse"]
    no_fuse = plan(CompileOptions(opt_level=2, quantize="int8", disabled_passes=("fuse",)))
    assert "fuse" not in [s.name for s in no_fuse.lowering]
    assert plan(CompileOptions(opt_level=1, quantize="int8")).lowering[-1].name == "dce"


@pytest.mark.parametrize("kwargs, message", [
    ({"attn_layout": "nchw"}, "unknown --attn-layout 'nchw'"),
    ({"opt_level": 7}, "unknown optimization level 7"),
    ({"passes": "no-such-pass"}, "unknown pass 'no-such-pass'"),
    ({"passes": "attention-to-conv{layout=x}"}, "option layout=x is not one of bnc, bchw, ane"),
    ({"passes": "attention-to-conv{size=3}"}, "has no option 'size'; it takes layout"),
    ({"passes": "dce{"}, "'{' without '}'"),
    ({"passes": "dce}"}, "'}' without '{'"),
    ({"passes": "dce{x}"}, "expected key=value"),
    ({"disabled_passes": ("nope",)}, "unknown pass 'nope'"),
    ({"quantize": "int4"}, "unknown quantize mode 'int4'"),
    ({"calib": "x.npz"}, "calib= is given without quantize='int8'"),
    ({"target": "cuda", "quantize": "int8"}, "int8 is not available for the GPU target 'cuda'"),
    ({"tune_trials": -1}, "tune_trials must be 0 or more, got -1"),
    ({"target": "nowhere"}, "unknown target 'nowhere'"),
])
def test_bad_options_fail_in_one_line_when_made(kwargs: dict, message: str) -> None:
    with pytest.raises(VcompileError) as e:
        CompileOptions(**kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


_TEXTS = st.lists(st.sampled_from(
    ["canonicalize", "dce", "fuse", "attention-to-conv{layout=bchw}", "attention-to-conv{layout=ane}",
     "attention-to-conv", "fold-batchnorm", "recognize"]), max_size=8)


@settings(max_examples=50, deadline=None)
@given(_TEXTS, st.sampled_from([None, "bnc", "bchw", "ane"]), st.sampled_from([None, 0, 1, 2, 3]),
       st.booleans())
def test_printed_plans_parse_back_to_the_same_plan(items: list[str], layout: str | None,
                                                   level: int | None, int8: bool) -> None:
    opts = CompileOptions(opt_level=level, passes=",".join(items) if items else None,
                          attn_layout=layout, quantize="int8" if int8 else None)
    p = plan(opts)
    text = p.pipeline_text()
    if text:  # the printed pipeline is the plan's, option for option
        assert plan(opts.replace(passes=text, attn_layout=None, quantize=None)).passes == p.passes
    else:
        assert p.passes == ()
    assert parse_pipeline(format_pipeline(p.lowering)) == p.lowering


def test_pass_options_reach_the_pass_as_keyword_arguments() -> None:
    seen: list[tuple[int, bool, str]] = []

    @register("toy-options")
    def toy(g: Graph, *, times: int = 1, loud: bool = False, name: str = "x") -> Graph:
        seen.append((times, loud, name))
        return g
    try:
        bb = Builder("t")
        g = bb.build(bb.emit("relu", bb.input((2,), hint="x")))
        passes.run(g, "toy-options,toy-options{times=3,loud=true,name=abc}")
        assert seen == [(1, False, "x"), (3, True, "abc")]
        assert str(parse_pipeline("toy-options{loud=1,times=2}")[0]) == "toy-options{loud=true,times=2}"
        with pytest.raises(PipelineError, match=r"option times='many' is not a int"):
            parse_pipeline("toy-options{times=many}")
    finally:
        unregister("toy-options")


def test_a_pass_option_must_be_keyword_only_with_a_default() -> None:
    with pytest.raises(ValueError, match="keyword-only with defaults"):
        @register("toy-positional")
        def toy(g: Graph, times: int = 1) -> Graph:
            return g
    assert "toy-positional" not in passes.PASSES


@pytest.mark.parametrize("argv, level", [
    (["compile", "m.onnx"], 2), (["compile", "m.onnx", "-O", "3"], 3), (["bench", "m.onnx", "-O", "1"], 1),
    (["profile", "m.onnx"], 2), (["report", "m.onnx", "-o", "r.html", "-O", "0"], 0),
    (["tune", "m.onnx"], 3),
])
def test_every_subcommand_reads_its_flags_into_compile_options(argv: list[str], level: int) -> None:
    args = build_parser().parse_args(argv)
    overrides = {"opt_level": 3} if argv[0] == "tune" else {}
    opts = compile_options(args, **overrides)
    assert opts.opt_level == level and opts.target == "host"
    assert plan(opts).codegen.opt_level == level


def test_inspect_flags_make_the_same_plan_as_the_api() -> None:
    args = build_parser().parse_args(["inspect", "m.onnx", "-O", "2", "--attn-layout", "ane",
                                      "--disable-pass", "fuse,cse", "--int8"])
    from vcompile.cli.passopts import compile_options as inspect_options
    p = plan(inspect_options(args))
    q = plan(CompileOptions(opt_level=2, attn_layout="ane", disabled_passes=("fuse", "cse"),
                            quantize="int8"))
    assert p.passes == q.passes and p.lowering == q.lowering and p.codegen == q.codegen
    assert plan(inspect_options(argparse.Namespace(opt_level=None, passes=None))).passes == ()


def test_the_plan_prints_what_runs() -> None:
    text = plan(CompileOptions(opt_level=2, quantize="int8", attn_layout="bchw")).format()
    assert text.splitlines()[0].startswith("passes:   canonicalize,dce,")
    assert "attention-to-conv{layout=bchw}" in text
    assert "quantize: int8, minmax ranges, calibration synthetic" in text
    assert "lowering: lower-integer,canonicalize,dce,fuse" in text
    assert "codegen:  target host, schedules rule-based" in text


@pytest.mark.tvm
def test_the_artifact_records_the_plan(tmp_path) -> None:
    import numpy as np

    import vcompile
    bb = Builder("tiny")
    g = bb.build(bb.emit("relu", bb.emit("neg", bb.input((2, 3), hint="x"))))
    opts = CompileOptions(opt_level=1, passes="canonicalize,dce")
    m = vcompile.compile(g, options=opts)
    assert m.meta["plan"] == plan(opts).describe()
    assert m.meta["plan"]["passes"] == "canonicalize,dce" and m.meta["fusion"] == "none"
    loaded = vcompile.load(m.export(tmp_path / "tiny.so"))
    assert loaded.meta["plan"] == m.meta["plan"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    np.testing.assert_array_equal(loaded(x)[0], np.maximum(-x, 0))


def test_vcompile_plan_is_the_function_after_any_import() -> None:
    import vcompile
    import vcompile.api  # noqa: F401  (imports the planner module)
    assert callable(vcompile.plan) and vcompile.plan is plan
    assert vcompile.CompileOptions is CompileOptions
