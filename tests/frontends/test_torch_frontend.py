"""The PyTorch frontend, one op family at a time, against eager PyTorch.

Each case exports a small module, verifies the IR, runs `ir.interp` and requires

    |interp - torch| <= 1e-5 * |torch| + 1e-5 * max|torch|     (elementwise, every output)

Errors: untraceable modules (data-dependent control flow), unsupported ATen ops
(all listed at once, with module paths) and unsupported uses of supported ops.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vcompile.frontends import FrontendError, UnsupportedOp
from vcompile.frontends import torch as torch_frontend
from vcompile.frontends.torch import ConversionError, ExportError
from vcompile.ir import interp, print_graph, verify
from vcompile.ir.graph import op_counts

RTOL = 1e-5


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class Fn(nn.Module):
    """A module around a function, so each case is one line."""

    def __init__(self, fn, *params: torch.Tensor) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.fn = fn
        self.p = nn.ParameterList([nn.Parameter(p, requires_grad=False) for p in params])

    def forward(self, *xs: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.fn(*xs, *self.p)


def check(module: nn.Module, *xs: torch.Tensor, rtol: float = RTOL, **kw):  # type: ignore[no-untyped-def]
    g = torch_frontend.load(module, xs, **kw)
    verify(g)
    got = interp.run(g, *(x.numpy() for x in xs))
    with torch.no_grad():
        ref = module(*xs)
    refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    assert len(got) == len(refs)
    for y, r in zip(got, refs, strict=True):
        r = r.numpy()
        assert y.shape == r.shape and y.dtype == r.dtype
        scale = float(np.max(np.abs(r))) if r.size and r.dtype != np.bool_ else 0.0
        np.testing.assert_allclose(y, r, rtol=rtol, atol=rtol * scale)
    return g


X4 = _randn(2, 8, 10, 10)
X3 = _randn(2, 6, 16)
Q = _randn(2, 3, 5, 8)
SDPA = F.scaled_dot_product_attention

CASES = {
    # elementwise
    "relu": (Fn(F.relu), X4), "gelu": (Fn(F.gelu), X4),
    "gelu_tanh": (Fn(lambda x: F.gelu(x, approximate="tanh")), X4),
    "silu": (Fn(F.silu), X4), "hardswish": (Fn(F.hardswish), X4),
    "hardsigmoid": (Fn(F.hardsigmoid), X4), "sigmoid_tanh": (Fn(lambda x: x.sigmoid() * x.tanh()), X4),
    "relu6": (Fn(F.relu6), X4), "leaky_relu": (Fn(lambda x: F.leaky_relu(x, 0.1)), X4),
    "clamp": (Fn(lambda x: x.clamp(min=-0.5)), X4),
    "unary": (Fn(lambda x: x.abs().sqrt() + x.exp().log() - x.erf() + x.neg().cos()), X4),
    "scalars": (Fn(lambda x: (x + 1) * 2 - 3 / (x.abs() + 1) + (1 - x) ** 2 + x.abs() ** 0.5), X4),
    "compare_where": (Fn(lambda x, y: torch.where(x > y, x, y * 2) + torch.maximum(x, y)), X4,
                      _randn(2, 8, 10, 10, seed=1)),
    "int_index_math": (Fn(lambda x: x * (torch.arange(10) % 3).float()), X4),
    # reductions
    "mean_sum": (Fn(lambda x: x.mean((2, 3), keepdim=True) + x.sum(1, keepdim=True)), X4),
    "amax_var": (Fn(lambda x: x.amax(-1) + x.var(-1)), X4),
    "softmax": (Fn(lambda x: x.softmax(-1) + x.log_softmax(1)), X3),
    # data movement
    "view_permute": (Fn(lambda x: x.view(2, 8, 100).permute(0, 2, 1).transpose(1, 2).flatten(1)), X4),
    "cat_split": (Fn(lambda x: torch.cat([*x.split([3, 5], 1)[::-1], *x.chunk(2, 1)], 1)), X4),
    "unbind_stack": (Fn(lambda x: torch.stack(x.unbind(1)[::2], 1)), X4),
    "slice_select": (Fn(lambda x: x[:, 1:7:2, -1] + x[:, 0, 2:4].sum()), X4),
    "squeeze": (Fn(lambda x: x[:, :1].squeeze(1).unsqueeze(-1).squeeze()), X4),
    "expand_repeat": (Fn(lambda x: x[:, :, :1].expand(-1, -1, 5, -1) + x[:, :, :5].repeat(1, 1, 1, 1)), X4),
    "pad": (Fn(lambda x: F.pad(x, (1, 2, 0, 3), value=0.5)), X4),
    "roll_flip": (Fn(lambda x: torch.roll(x, (3, -2), (2, 3)) + x.flip(-1)), X4),
    "index_const": (Fn(lambda x, t: x + t[:, torch.tensor([[0, 1], [1, 0]])].sum(), _randn(4, 2)), X4),
    # linear algebra
    "linear_2d": (nn.Linear(16, 5), _randn(4, 16)),
    "linear_3d": (nn.Linear(16, 5), X3), "linear_nobias": (nn.Linear(16, 5, bias=False), X3),
    "matmul_bmm": (Fn(lambda x: x @ x.transpose(1, 2) + torch.bmm(x, x.mT)), X3),
    "addmm": (Fn(lambda x, b, w: torch.addmm(b, x, w), _randn(5), _randn(16, 5)), _randn(4, 16)),
    # convolution
    "conv": (nn.Conv2d(8, 6, 3, stride=2, padding=1), X4),
    "conv_dil_groups_nobias": (nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, bias=False), X4),
    "conv_same": (nn.Conv2d(8, 4, (3, 4), padding="same"), X4),
    "conv1d": (nn.Conv1d(6, 4, 3, padding=1), X3),
    "conv_transpose": (nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1), X4),
    # normalization
    "batch_norm": (nn.BatchNorm2d(8), X4),
    "layer_norm": (nn.LayerNorm(16), X3),
    "layer_norm_plain": (nn.LayerNorm([6, 16], elementwise_affine=False), X3),
    "group_norm": (nn.GroupNorm(2, 8), X4),
    # attention
    "sdpa": (Fn(SDPA), Q, _randn(2, 3, 7, 8, seed=1), _randn(2, 3, 7, 8, seed=2)),
    "sdpa_causal_scale": (Fn(lambda q: SDPA(q, q, q, is_causal=True, scale=0.3)), Q),
    "sdpa_float_mask": (Fn(lambda q, m: SDPA(q, q, q, attn_mask=m), _randn(5, 5)), Q),
    "sdpa_bool_mask": (Fn(lambda q, m: SDPA(q, q, q, attn_mask=m > -1)), Q, _randn(5, 5)),
    # pooling and resizing
    "max_pool": (nn.MaxPool2d(3, 2, 1, ceil_mode=True), X4),
    "avg_pool": (nn.AvgPool2d(3, 1, 1, count_include_pad=False), X4),
    "avg_pool_incl": (nn.AvgPool2d(2), X4),
    "adaptive_avg_pool": (Fn(lambda x: F.adaptive_avg_pool2d(x, 1) + F.adaptive_avg_pool2d(x, 5).mean()), X4),
    "nearest": (Fn(lambda x: F.interpolate(x, scale_factor=2)), X4),
    "bilinear": (Fn(lambda x: F.interpolate(x, size=(15, 7), mode="bilinear")), X4),
    "bilinear_corners": (Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                                    align_corners=True)), X4),
    "bicubic": (Fn(lambda x: F.interpolate(x, size=(12, 9), mode="bicubic")), X4),
}


def _init(m: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for b in m.buffers():  # BatchNorm running stats away from 0 and 1
        if b.is_floating_point():
            b.copy_(torch.rand(b.shape) + 0.5)
    return m.eval()


@pytest.mark.parametrize("case", CASES)
def test_op_matches_eager(case: str) -> None:
    module, *xs = CASES[case]
    check(_init(module), *xs)


def test_linear_is_gemm_in_2d_and_matmul_with_constant_transposed_weight_in_3d() -> None:
    lin = nn.Linear(16, 5)
    assert op_counts(torch_frontend.load(lin, (_randn(4, 16),))) == {"gemm": 1}
    g = torch_frontend.load(lin, (X3,))
    assert op_counts(g) == {"add": 1, "matmul": 1}
    w = next(a for v, a in g.consts.items() if a.shape == (16, 5))
    np.testing.assert_array_equal(w, lin.weight.detach().numpy().T)


def test_sdpa_lowers_to_matmul_softmax_matmul() -> None:
    g = check(*(CASES["sdpa"][0],), *CASES["sdpa"][1:])
    assert op_counts(g) == {"matmul": 2, "mul": 1, "softmax": 1, "transpose": 1}


def test_canonical_conv_has_bias_and_params_are_constants() -> None:
    g = torch_frontend.load(nn.Conv2d(8, 4, 3, bias=False), (X4,))
    (conv,) = g.nodes
    assert conv.op == "conv2d" and len(conv.inputs) == 3 and not g.consts[conv.inputs[2]].any()
    assert [v.hint for v in g.inputs] == ["input"]  # the forward argument's name


class Attn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(Attn(), Attn())
        self.cls = nn.Parameter(_randn(1, 1, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)
        return self.blocks(x)[:, 0]


def test_locs_are_module_paths() -> None:
    g = torch_frontend.load(Net(), (X3,))
    locs = {n.loc for n in g.nodes}
    assert {"blocks.0.qkv", "blocks.1.proj", "blocks.0"} <= locs
    assert "%linear" in print_graph(g)  # hints are short: the ATen op's name
    assert all(len(v.hint) <= 16 for n in g.nodes for v in n.outputs)


def test_dynamic_batch_is_symbol_n() -> None:
    net = Net().eval()
    g = check(net, _randn(1, 6, 16), dynamic_batch=True)
    assert g.inputs[0].type.shape == ("N", 6, 16) and g.outputs[0].type.shape == ("N", 16)
    x = _randn(3, 6, 16)
    (y,) = interp.run(g, x.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(y, net(x).numpy(), rtol=1e-5, atol=1e-5)


def test_dynamic_batch_conv_net() -> None:
    net = nn.Sequential(nn.Conv2d(8, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3))
    g = check(_init(net), X4, dynamic_batch=True)
    assert g.inputs[0].type.shape[0] == "N"
    assert interp.run(g, _randn(5, 8, 10, 10).numpy())[0].shape == (5, 3)


# ---- errors ----------------------------------------------------------------------------------

class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # the failing frame the error must name
            return x * 2
        return x


def test_data_dependent_control_flow_names_frame_and_suggests_onnx() -> None:
    with pytest.raises(ExportError, match=r"^torch\.export cannot trace DataDependent \(data-dependent "
                       r"control flow\) at .*test_torch_frontend\.py:\d+ in forward: .*export it to "
                       r"ONNX instead") as info:
        torch_frontend.load(DataDependent(), (_randn(4),))
    assert "\n" not in str(info.value) and isinstance(info.value, FrontendError)


class Spectral(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.filt = Fn(lambda x: torch.fft.rfft2(x).abs())
        self.svd = Fn(lambda x: torch.linalg.svd(x)[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.filt(x).sum() + self.svd(x).sum() + torch.fft.fft(x).abs().sum()


def test_unsupported_ops_are_listed_at_once_with_module_paths() -> None:
    # The root module's own fft has no module path: the FX node name stands in.
    with pytest.raises(UnsupportedOp, match=r"^unsupported ATen op\(s\): aten\._fft_r2c\.default "
                       r"\(nodes: 'filt', '_fft_r2c_1'\); aten\._linalg_svd\.default \(nodes: 'svd'\)\. "
                       r"Supported ATen ops: .*aten\.conv2d") as info:
        torch_frontend.load(Spectral(), (_randn(4, 4),))
    assert "\n" not in str(info.value)


def test_unsupported_use_of_supported_op() -> None:
    fn = Fn(lambda x, i: x[i.long(), i.long()])
    with pytest.raises(ConversionError, match=r"^ATen node aten\.index\.Tensor at 'index': only one "
                       r"index tensor is supported"):
        torch_frontend.load(fn, (_randn(4, 4), torch.tensor([0.0, 1.0])))
