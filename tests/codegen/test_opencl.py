"""OpenCL targets: the kernels generated for opencl-mali and opencl-adreno run on the CPU
through PoCL (Debian pocl-opencl-icd + pyopencl) and match the numpy interpreter.

    small CNN (conv, relu, pool, gemm, softmax) --opencl-mali--> OpenCL C --PoCL--> == interp
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("tvm")
pytest.importorskip("pyopencl", reason="pyopencl is not installed (pip install pyopencl)")
pytestmark = pytest.mark.tvm


def small_cnn() -> onnx.ModelProto:
    """conv(3->8, 3x3) -> relu -> maxpool 2x2 -> conv(8->16) -> global avg pool -> gemm(16->10) -> softmax."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)
    inits = [init("w1", 8, 3, 3, 3), init("b1", 8), init("w2", 16, 8, 3, 3), init("b2", 16),
             init("wg", 10, 16), init("bg", 10)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wg", "bg"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "small_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("target", ["opencl-mali", "opencl-adreno"])
def test_opencl_kernels_run_on_pocl_and_match_numpy(target: str) -> None:
    from tests.codegen.pocl import pocl_device, run_on_pocl
    from vcompile.api import optimize, to_graph
    from vcompile.ir.interp import run as interp
    try:
        pocl_device()
    except Exception as e:
        pytest.skip(f"no PoCL OpenCL device: {e} (install pocl-opencl-icd)")
    g, _ = optimize(to_graph(small_cnn()), 2)
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16), dtype=np.float32)
    (got,), kernels = run_on_pocl(g, target, [x])
    (want,) = interp(g, x)
    assert kernels >= 4  # convs, pool, reduction, gemm/softmax: several distinct OpenCL kernels
    assert got.shape == (1, 10) and abs(float(got.sum()) - 1.0) < 1e-5
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
