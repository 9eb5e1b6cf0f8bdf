"""CONTRIBUTING.md's recipes, run as written: its code blocks register a pass, an op, the
op's kernel and its ONNX converter through the public API; a model using them compiles and
matches the interpreter and onnxruntime. Everything registered is removed afterwards."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.strategies import assert_close

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "CONTRIBUTING.md").read_text(), re.S)


def _recipes() -> dict[str, list[str]]:
    """The source files each recipe names (the first comment line of its blocks)."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    out: dict[str, list[str]] = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        files = re.findall(r"```python\n# (vcompile/\S+)", part)
        out[part.splitlines()[0]] = sorted(set(files))
    return out


def test_each_recipe_touches_at_most_three_source_files() -> None:
    recipes = _recipes()
    assert [t for t in recipes if t.startswith(("Add a pass", "Add an elementwise op"))] == [
        "Add a pass (1 file, 2 with an -O level)", "Add an elementwise op (3 files: the op, its kernel, "
        "its ONNX spelling)"]
    for title, files in recipes.items():
        assert len(files) <= 3, (title, files)
        for f in files:  # an existing module, or a new one in an existing package
            assert (ROOT / f).is_file() or (ROOT / f).parent.joinpath("__init__.py").is_file(), f


@pytest.fixture
def recipes() -> Iterator[dict]:
    from vcompile.codegen.emit import relax as emit
    from vcompile.frontends import onnx_ops
    from vcompile.ir.ops import OPS
    from vcompile.passes import PASSES
    ns: dict = {"__name__": "contributing"}
    try:
        for block in BLOCKS:
            exec(compile(block, "CONTRIBUTING.md", "exec"), ns)  # noqa: S102
        yield ns
    finally:
        PASSES.pop("drop-double-neg", None)
        OPS.pop("softsign", None)
        emit.EMIT.pop("softsign", None)
        onnx_ops.CONVERTERS.pop("Softsign", None)


@pytest.mark.tvm
def test_the_recipes_compile_a_model(recipes: dict) -> None:
    import vcompile
    from vcompile import passes
    from vcompile.ir import interp
    from vcompile.ir.builder import Builder
    bb = Builder("recipes")
    x = bb.input((2, 16), hint="x")
    y = bb.emit("softsign", bb.emit("neg", bb.emit("neg", bb.emit("relu", x))), hint="y")
    g = bb.build(y)
    out = passes.run(g, "canonicalize,drop-double-neg{max-sweeps=2}")
    assert [n.op for n in out.nodes] == ["relu", "softsign"]
    xs = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    want = interp.run(g, xs)
    assert_close(interp.run(out, xs), want, rtol=0, atol=0)
    m = vcompile.compile(g, target="host", passes="canonicalize,drop-double-neg,dce,fuse")
    assert_close(m(xs), want, rtol=1e-6, atol=1e-6)


@pytest.mark.tvm
def test_the_recipes_compile_an_onnx_model(recipes: dict, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    import vcompile
    nodes = [helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["b"]),
             helper.make_node("Softsign", ["b"], ["y"])]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])
    graph = helper.make_graph(nodes, "softsign", [x_info], [y_info])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "softsign.onnx"
    onnx.save(model, str(path))
    xs = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": xs})
    m = vcompile.compile(str(path), target="host", opt_level=2,
                         passes="canonicalize,drop-double-neg,dce,fuse")
    assert [n.op for n in m.graph.nodes if n.region is None] + \
        [k.op for n in m.graph.nodes if n.region is not None for k in n.region.nodes] == ["softsign"]
    assert_close(m(xs), want, rtol=1e-6, atol=1e-6)
