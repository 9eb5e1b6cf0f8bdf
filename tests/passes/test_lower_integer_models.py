"""lower-integer on real models: a float graph at -O2 (without fuse) put in QDQ form by
a test-local min/max insertion (tests/passes/qdq_util.py), lowered: no float op may
remain in the integer region, and the integer model's output must stay close to the
float model's (cosine) and to the QDQ simulation's (output steps)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.passes.qdq_util import cosine, float_ops, insert_qdq, output_steps
from vcompile import passes
from vcompile.frontends import torch as torch_frontend
from vcompile.ir import Graph, interp

NO_FUSE = [p for p in passes.pipeline(2) if p != "fuse"]


class TinyViT(nn.Module):
    """Patch conv, one pre-norm transformer block (MHA, GELU MLP), mean pooling, head."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 32, 4, 4)
        self.ln1, self.ln2 = nn.LayerNorm(32), nn.LayerNorm(32)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.ln2(x))
        return self.head(x.mean(1))


class TinyCNN(nn.Module):
    """Conv-BN-ReLU stem, max pool, a residual block, hard-swish, global average, head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.block = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                   nn.Conv2d(16, 16, 3, 1, 1, groups=4), nn.BatchNorm2d(16))
        self.act = nn.Hardswish()
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.act(x + self.block(x))
        return self.head(x.mean((2, 3)))


def _float_graph(model: nn.Module, shape: tuple[int, ...]) -> tuple[Graph, np.ndarray]:
    torch.manual_seed(0)
    for m in model.modules():  # BN statistics that are not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    return passes.run(torch_frontend.load(model.eval(), (x,)), NO_FUSE), x.numpy()


def _check(g: Graph, x: np.ndarray, min_cos: float, max_steps: float) -> Graph:
    qg = insert_qdq(g, [x])
    low = passes.run(qg, "lower-integer", verify_each=True)
    assert float_ops(low) == []
    assert passes.run(low, "lower-integer") is low
    want, qdq, got = (interp.run(h, x)[0] for h in (g, qg, low))
    assert cosine(got, want) >= min_cos
    assert output_steps(qg, got, qdq) <= max_steps
    return low


def test_tiny_vit_is_integer_only() -> None:
    torch.manual_seed(0)
    g, x = _float_graph(TinyViT(), (1, 3, 16, 16))
    # Shiftmax, ShiftGELU and two integer LayerNorms on the way: a few output steps
    low = _check(g, x, min_cos=0.995, max_steps=5.0)
    ops = {n.op for n in low.nodes}
    assert {"qconv2d", "qlinear", "qmatmul", "shiftmax", "igelu", "ilayernorm", "qadd"} <= ops


def test_tiny_cnn_is_integer_only() -> None:
    torch.manual_seed(0)
    g, x = _float_graph(TinyCNN(), (1, 3, 32, 32))
    low = _check(g, x, min_cos=0.999, max_steps=2.0)
    assert {"qconv2d", "max_pool2d", "qadd", "qmul", "reduce_sum", "qlinear"} <= {n.op for n in low.nodes}


@pytest.mark.slow
@pytest.mark.parametrize("name,min_cos,max_steps", [("deit_tiny_patch16_224", 0.99, 24.0),
                                                    ("resnet18", 0.999, 3.0)])
def test_timm_model_is_integer_only(name: str, min_cos: float, max_steps: float) -> None:
    from vcompile.models import create_timm
    model, shape = create_timm(name)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    g = passes.run(torch_frontend.load(model, (x,)), NO_FUSE)
    _check(g, x.numpy(), min_cos, max_steps)


class OrtNet(nn.Module):
    """Ops that onnxruntime's quantize_static quantizes all of (QDQ, u8 activations)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.MaxPool2d(2))
        self.b = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 1, 1))
        self.pool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        x = torch.relu(x + self.b(x))
        return self.head(self.pool(x).flatten(1))


def test_onnxruntime_quantized_model_lowers_to_its_outputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from vcompile.api import to_graph

    class Reader(CalibrationDataReader):
        def __init__(self, xs: list[np.ndarray]) -> None:
            self.it = iter([{"x": x} for x in xs])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    torch.manual_seed(0)
    f, q = tmp_path / "m.onnx", tmp_path / "q.onnx"
    torch.onnx.export(OrtNet().eval(), (torch.randn(1, 3, 32, 32),), str(f), dynamo=False,
                      input_names=["x"])
    xs = [np.random.default_rng(i).standard_normal((1, 3, 32, 32)).astype(np.float32) for i in range(6)]
    quantize_static(str(f), str(q), Reader(xs[:4]), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    g = to_graph(str(q))
    low = passes.run(g, "lower-integer", verify_each=True)
    assert float_ops(low) == [] and sum(n.op == "qconv2d" for n in low.nodes) == 3
    sess = ort.InferenceSession(str(q))
    for x in xs[4:]:  # inputs the calibration did not see
        assert output_steps(g, interp.run(low, x)[0], sess.run(None, {"x": x})[0]) <= 1.0
