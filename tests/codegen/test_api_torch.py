"""vcompile.compile on PyTorch inputs: an nn.Module with example inputs, and 'timm:NAME'."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tvm")

import vcompile  # noqa: E402
from vcompile.cli import main  # noqa: E402


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):  # type: ignore[no-untyped-def]
        y = torch.nn.functional.gelu(self.bn(self.conv(x)))
        return self.fc(y.mean(dim=(2, 3)))


def test_compile_nn_module_matches_eager() -> None:
    torch.manual_seed(0)
    m = Block().eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 16, 16)
    cm = vcompile.compile(m, example_inputs=(x,), opt_level=2)
    assert "batch_norm" not in {n.op for n in cm.graph.nodes}  # folded at -O2
    (got,) = cm(x.numpy())
    want = m(x).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_inspect_timm_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "timm:resnet18", "--stats"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 11,703,912" in out  # BN unfolded: timm's own count
    assert [ln.split()[1] for ln in out.splitlines() if ln.startswith("conv2d")] == ["20"]
