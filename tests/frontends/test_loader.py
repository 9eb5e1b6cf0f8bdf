"""`load_model`: one entry point for .onnx paths, ModelProtos, Graphs, nn.Modules,
'timm:NAME' and 'pkg.module:factory'."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vcompile.frontends.loader import ModelSpecError, load_model
from vcompile.ir import Builder, interp
from vcompile.ir.graph import op_counts

torch = pytest.importorskip("torch")


def _onnx_relu() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())


def test_onnx_path_and_proto(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_onnx_relu(), str(path))
    for spec in (path, str(path), _onnx_relu()):
        g = load_model(spec, input_shapes={"x": (2, 4)})
        assert op_counts(g) == {"relu": 1} and g.inputs[0].type.shape == (2, 4)


def test_graph_passes_through() -> None:
    bb = Builder()
    g = bb.build(bb.emit("relu", bb.input((2,))))
    assert load_model(g) is g
    with pytest.raises(ModelSpecError, match="a Graph already has its types"):
        load_model(g, input_shapes={"x": (1,)})


def test_module_with_example_inputs_or_shapes() -> None:
    net = _net()
    x = torch.randn(1, 3, 8, 8)
    g = load_model(net, example_inputs=(x,))
    np.testing.assert_allclose(interp.run(g, x.numpy())[0], net(x).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    g2 = load_model(net, input_shapes={"x": (2, 3, 9, 9)})
    assert g2.inputs[0].type.shape == (2, 3, 9, 9) and op_counts(g2) == {"conv2d": 1, "relu": 1}


def test_factory_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("fake_models")
    mod.build = _net  # type: ignore[attr-defined]
    mod.not_a_module = lambda: 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_models", mod)
    g = load_model("fake_models:build", input_shapes={"x": (1, 3, 8, 8)})
    assert g.outputs[0].type.shape == (1, 4, 6, 6)
    with pytest.raises(ModelSpecError, match=r"needs example inputs or input shapes \(--input"):
        load_model("fake_models:build")
    with pytest.raises(ModelSpecError, match=r"'fake_models' has no callable 'nope'"):
        load_model("fake_models:nope")
    with pytest.raises(ModelSpecError, match=r"fake_models:not_a_module\(\) returned a int"):
        load_model("fake_models:not_a_module")


def test_timm_reference_uses_default_input_size() -> None:
    pytest.importorskip("timm")
    g = load_model("timm:resnet18")
    assert g.inputs[0].type.shape == (1, 3, 224, 224) and g.outputs[0].type.shape == (1, 1000)


@pytest.mark.parametrize(("spec", "msg"), [
    ("no_such_pkg_xyz:f", r"cannot import 'no_such_pkg_xyz'"),
    ("missing.pt", r"cannot load 'missing\.pt': no such file"),
    (42, r"cannot load a int: pass an \.onnx path"),
])
def test_bad_specs(spec: object, msg: str) -> None:
    with pytest.raises(ModelSpecError, match=msg):
        load_model(spec)


def test_existing_non_onnx_file(tmp_path: Path) -> None:
    p = tmp_path / "model.pt"
    p.write_bytes(b"")
    with pytest.raises(ModelSpecError, match=r"expected an \.onnx file"):
        load_model(p)
