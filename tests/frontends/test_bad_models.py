"""Malformed ONNX models built by hand: each is refused with one line that says what is
wrong and what to do (a FrontendError from the API; exit status 1 from the CLI), never a
traceback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vcompile.cli import main
from vcompile.errors import VcompileError
from vcompile.frontends import FrontendError
from vcompile.frontends.loader import ModelSpecError, load_model
from vcompile.frontends.onnx import InputShapeError, InvalidModel, NotOnnx, UnsupportedType, load

F = TensorProto.FLOAT


def _relu(shape: list, name: str = "g") -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", F, shape)
    y = helper.make_tensor_value_info("y", F, shape)
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], name, [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _save(m: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(m.SerializeToString())
    return path


def _raises(cls: type[Exception], match: str, *args: object, **kw: object) -> Exception:
    with pytest.raises(cls, match=match) as info:
        load(*args, **kw)  # type: ignore[arg-type]
    return _one_line(info.value)


def _one_line(err: BaseException) -> BaseException:
    assert isinstance(err, FrontendError) and isinstance(err, VcompileError)
    assert "\n" not in str(err), "messages are one line"
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    return err


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The CLI's stderr for `args`; asserts exit status 1 and a one-line error."""
    rc = main(list(args))
    out, err = capsys.readouterr()
    assert rc == 1, (rc, out, err)
    assert err.startswith("vcompile: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# ---- a negative input dim ------------------------------------------------------------------

def test_negative_dim_in_the_model_is_symbolic(tmp_path: Path) -> None:
    """Exporters write an unknown dim as -1 (Paddle); any negative dim_value is a symbol
    named after the input, which input_shapes can fix."""
    g = load(_relu([-5, 3]))
    assert g.inputs[0].type.shape == ("x_0", 3)
    p = _save(_relu([-1, 3]), tmp_path / "neg.onnx")
    assert load(p).inputs[0].type.shape == ("x_0", 3)


def test_a_negative_dim_in_the_model_can_be_given_a_size() -> None:
    g = load(_relu([-5, 3]), input_shapes={"x": (2, 3)})
    assert g.inputs[0].type.shape == (2, 3)


def test_negative_dim_given_as_input_shape(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _raises(InputShapeError, r"input_shapes gives 'x' shape \(-5, 3\): dim 0 is -5; sizes are "
            r">= 0", _relu(["N", 3]), input_shapes={"x": (-5, 3)})
    p = _save(_relu(["N", 3]), tmp_path / "sym.onnx")
    assert "dim '-5' is neither a size nor a name" in _cli(capsys, "inspect", str(p),
                                                            "--input", "x=-5x3")


def test_a_named_dim_from_input_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--input x=Bx3` (a name, which the CLI allows) renames a symbolic dim; on a fixed
    dim it is refused in one line (it was int('B'): a traceback)."""
    g = load(_relu(["N", 3]), input_shapes={"x": ("B", 3)})
    assert g.inputs[0].type.shape == ("B", 3)
    _raises(InputShapeError, r"the model fixes dim 0 to 1 \(1, 3\); give a size, not a name",
            _relu([1, 3]), input_shapes={"x": ("B", 3)})
    p = _save(_relu([1, 3]), tmp_path / "fixed.onnx")
    assert "give a size, not a name" in _cli(capsys, "inspect", str(p), "--input", "x=Bx3")


# ---- names that are not UTF-8 ----------------------------------------------------------------

def _bad_utf8(field_value: bytes) -> bytes:
    """The serialized model with the placeholder name replaced by invalid UTF-8 (same length,
    so the protobuf stays well-formed)."""
    raw = _relu([1, 3], name="PLACEHOLDER").SerializeToString()
    assert len(field_value) == len("PLACEHOLDER") and raw.count(b"PLACEHOLDER") == 1
    return raw.replace(b"PLACEHOLDER", field_value)


def test_graph_name_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "name.onnx"
    p.write_bytes(_bad_utf8(b"G\xff\xfeNAMEXXXX"))
    _raises(InvalidModel, r"model\.graph\.name is not valid UTF-8 \(b'G\\xff\\xfeNAMEXXXX'\); "
            r"ONNX names are UTF-8 strings: fix the name", p)
    assert "model.graph.name is not valid UTF-8" in _cli(capsys, str(p), "-o",
                                                         str(tmp_path / "m.so"))
    assert "model.graph.name is not valid UTF-8" in _cli(capsys, "inspect", str(p))


def test_node_name_not_utf8() -> None:
    m = _relu([1, 3])
    m.graph.node[0].name = "NODENAME"
    raw = m.SerializeToString().replace(b"NODENAME", b"N\xc3\x28\xa0ODEX")  # same length
    _raises(InvalidModel, r"model\.graph\.node\[0\]\.name is not valid UTF-8",
            onnx.load_from_string(raw))


# ---- an unknown data_type --------------------------------------------------------------------

def test_unknown_input_data_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = _relu([1, 3])
    m.graph.input[0].type.tensor_type.elem_type = 99
    _raises(UnsupportedType, r"input 'x' has data_type 99, which is no ONNX tensor type; fix "
            r"the model \(vcompile supports: f16, .*\)", m)
    assert "data_type 99, which is no ONNX tensor type" in _cli(
        capsys, "inspect", str(_save(m, tmp_path / "dt.onnx")))


def test_unknown_initializer_data_type(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    x = helper.make_tensor_value_info("x", F, [1, 3])
    y = helper.make_tensor_value_info("y", F, [1, 3])
    w = numpy_helper.from_array(np.ones(3, np.float32), "w")
    w.data_type = 99
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    _raises(FrontendError, r"(data_type 99, which is no ONNX tensor type|Unrecognized "
            r"data_type \(tensor name: w\): 99)", m)
    assert "99" in _cli(capsys, "inspect", str(_save(m, tmp_path / "w.onnx")))


# ---- an empty file, a file that parses to nothing ------------------------------------------------

def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    _raises(NotOnnx, r"'.*empty\.onnx' is empty \(0 bytes\), not an ONNX model; give a model "
            r"written by onnx\.save or torch\.onnx\.export", p)
    assert "is empty (0 bytes), not an ONNX model" in _cli(capsys, "inspect", str(p))
    assert "is empty (0 bytes), not an ONNX model" in _cli(capsys, str(p), "-o",
                                                           str(tmp_path / "m.so"))


def test_a_protobuf_without_graph(tmp_path: Path) -> None:
    p = tmp_path / "nograph.onnx"
    p.write_bytes(onnx.ModelProto(ir_version=8, producer_name="x").SerializeToString())
    _raises(NotOnnx, r"nograph\.onnx' is not an ONNX model: it parses, but holds no graph and "
            r"no opset", p)


# ---- a directory -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["m_dir", "m_dir.onnx"])
def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    d = tmp_path / name
    d.mkdir()
    want = f"vcompile: error: {d} is a directory; give an .onnx file"
    assert _cli(capsys, str(d), "-o", str(tmp_path / "m.so")).startswith(want)
    assert _cli(capsys, "inspect", str(d)).startswith(want)
    with pytest.raises(ModelSpecError, match="is a directory; give an .onnx file"):
        load_model(str(d))
    with pytest.raises(NotOnnx, match=r"is a directory; give an \.onnx file") as info:
        load(d)
    _one_line(info.value)


def test_vir_directory(tmp_path: Path) -> None:
    d = tmp_path / "g.vir"
    d.mkdir()
    with pytest.raises(ModelSpecError, match=r"g\.vir is a directory; give a \.vir file"):
        load_model(str(d))
