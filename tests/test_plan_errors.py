"""An explicit pipeline that names no pass is refused in one line (it used to run nothing
without a word); an empty *sequence* from the API still means "no passes"."""
from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from vcompile import CompileOptions
from vcompile.cli import main
from vcompile.errors import VcompileError
from vcompile.passes.infra.spec import PipelineError

EMPTY = "--passes is empty; give pass names, or drop --passes for the -O pipeline"


@pytest.mark.parametrize("text", ["", " ", ",", " , ,", [""], ["", " "]])
def test_empty_pipeline_text_is_refused(text: object) -> None:
    with pytest.raises(PipelineError) as info:
        CompileOptions(passes=text)  # type: ignore[arg-type]
    assert str(info.value) == EMPTY
    assert isinstance(info.value, VcompileError)


@pytest.mark.parametrize("level", [None, 0, 2])
def test_refused_at_every_level(level: int | None) -> None:
    with pytest.raises(PipelineError, match="--passes is empty"):
        CompileOptions(opt_level=level, passes="")


@pytest.mark.parametrize("seq", [[], ()])
def test_an_empty_sequence_still_means_no_passes(seq: object) -> None:
    opts = CompileOptions(passes=seq)  # type: ignore[arg-type]
    assert opts.passes == ()
    assert opts.replace(opt_level=1).passes == ()  # replace re-checks: still fine


def test_none_is_the_o_pipeline() -> None:
    assert CompileOptions(passes=None).passes is None


def _onnx(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, path)
    return path


@pytest.mark.parametrize("cmd", [["inspect"], []])
def test_cli_comma_only_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 cmd: list[str]) -> None:
    args = [*cmd, str(_onnx(tmp_path / "m.onnx")), "-p", ","]
    if not cmd:
        args += ["-o", str(tmp_path / "m.so")]
    assert main(args) == 1
    assert capsys.readouterr().err == f"vcompile: error: {EMPTY}\n"


def test_cli_empty_string_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(_onnx(tmp_path / "m.onnx")), "-p", ""]) == 1
    assert capsys.readouterr().err == f"vcompile: error: {EMPTY}\n"
