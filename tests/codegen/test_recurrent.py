"""lstm, gru and rnn compiled through TVM (-O0 and -O2) against onnxruntime, and a small
CRNN (conv -> bidirectional 2-layer LSTM -> linear, exported by torch) at -O2."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.frontends.test_onnx_rnn import onnx_node_tests
from tests.ir.test_ops_recurrent import Case, case, close, run_ir, run_ort

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm


def frozen(c: Case, names: tuple[str, ...] = ("W", "R", "B", "P")) -> Case:
    """The case with these inputs as initializers (as exporters write weights)."""
    g = c.model.graph
    for name in names:
        if name in c.feeds:
            g.initializer.append(numpy_helper.from_array(c.feeds.pop(name), name))
    keep = [i for i in g.input if i.name in c.feeds]
    del g.input[:]
    g.input.extend(keep)
    return c


CASES: list[tuple[str, dict[str, Any]]] = [
    ("LSTM", {"direction": "bidirectional", "seq": [5, 2, 4], "init": True, "peep": True, "h": 20}),
    ("LSTM", {"direction": "reverse", "clip": 0.5, "input_forget": 1, "bias": False}),
    ("LSTM", {"activations": ["HardSigmoid", "LeakyRelu", "Softsign", "Sigmoid", "Elu", "Tanh"],
              "direction": "bidirectional", "activation_alpha": [0.3, 0.2, 0.6]}),
    ("GRU", {"direction": "bidirectional", "init": True, "seq": [1, 5, 3], "h": 9}),
    ("GRU", {"linear_before_reset": 1, "direction": "reverse", "clip": 0.7}),
    ("RNN", {"direction": "bidirectional", "activations": ["Relu", "Softplus"], "init": True}),
]


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize(("op", "kw"), CASES, ids=[f"{o}-{i}" for i, (o, _) in enumerate(CASES)])
def test_compiled_matches_onnxruntime(op: str, kw: dict[str, Any], opt_level: int) -> None:
    import vcompile
    c = frozen(case(op, **kw))
    m = vcompile.compile(c.model, opt_level=opt_level)
    close(m(*c.feeds.values()), run_ort(c), tol=2e-5)


def test_weights_as_inputs_and_layout_1() -> None:
    """R packed at run time, W^T a matmul at run time; batch-first tensors."""
    import vcompile
    c = case("GRU", layout=1, direction="bidirectional", init=True)
    m = vcompile.compile(c.model, opt_level=2)
    close(m(*c.feeds.values()), run_ir("GRU", c), tol=2e-5)


def test_symbolic_batch() -> None:
    import vcompile
    ort = pytest.importorskip("onnxruntime")
    c = frozen(case("LSTM", direction="bidirectional", init=True, n=2))
    for vi in (*c.model.graph.input, *c.model.graph.output):
        vi.type.tensor_type.shape.dim[{"X": 1, "Y": 2}.get(vi.name, 1)].dim_param = "N"
    m = vcompile.compile(c.model, opt_level=2)
    sess = ort.InferenceSession(c.model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for n in (1, 3):
        feeds = {k: rng.standard_normal((v.shape[0], n, *v.shape[2:])).astype(np.float32)
                 for k, v in c.feeds.items()}
        close(m(*feeds.values()), sess.run(None, feeds), tol=2e-5)


NODE_TESTS = ("test_lstm_with_peepholes", "test_lstm_batchwise", "test_gru_bidirectional",
              "test_gru_seq_length", "test_rnn_seq_length")


def test_onnx_node_tests_compiled() -> None:
    """A few of ONNX's node tests (all 18 are interpreted in tests/frontends), at -O2."""
    import vcompile
    cases = {c.name: c for c in onnx_node_tests()}
    for name in NODE_TESTS:
        c = cases[name]
        ((inputs, want),) = c.data_sets
        for a, b in zip(vcompile.compile(c.model, opt_level=2)(*inputs), want, strict=True):
            np.testing.assert_allclose(a, b, rtol=c.rtol, atol=max(c.atol, 1e-6), err_msg=name)


def crnn_model(path: str) -> tuple[onnx.ModelProto, np.ndarray]:
    """A CRNN recognizer in miniature: conv backbone -> [W, N, C*H] sequence ->
    bidirectional 2-layer LSTM -> linear over the character classes."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class CRNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cnn = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d((2, 1)),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d((8, 1)))
            self.rnn = nn.LSTM(64, 96, num_layers=2, bidirectional=True)
            self.fc = nn.Linear(192, 37)

        def forward(self, x: Any) -> Any:
            f = self.cnn(x)                       # [N, 64, 1, W/2]
            s = f.squeeze(2).permute(2, 0, 1)     # [T, N, 64]
            y, _ = self.rnn(s)
            return self.fc(y).log_softmax(-1)     # [T, N, classes]

    torch.manual_seed(0)
    mod = CRNN().eval()
    x = torch.randn(1, 1, 32, 128)
    torch.onnx.export(mod, (x,), path, dynamo=False, opset_version=14, input_names=["image"])
    return onnx.load(path), x.numpy()


def test_crnn_matches_onnxruntime(tmp_path: Any) -> None:
    import vcompile
    model, x = crnn_model(str(tmp_path / "crnn.onnx"))
    assert sum(n.op_type == "LSTM" for n in model.graph.node) == 2
    m = vcompile.compile(model, opt_level=2)
    (got,) = m(x)
    ort = pytest.importorskip("onnxruntime")
    (want,) = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, {"image": x})
    assert got.shape == want.shape == (64, 1, 37)
    assert np.abs(got - want).max() <= 1e-4 * max(np.abs(want).max(), 1)
