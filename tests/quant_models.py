"""Small float models (torch -> ONNX) quantized by onnxruntime's `quantize_static`.

    quantized_cnn(tmp_path, fmt, per_channel, act_type) -> (onnx_path, float_inputs, ort_outputs)
    quantized_transformer(...), quantized_mixed(...)      -> the same; MODELS names all three
    step(onnx_path)                                       -> the output's quantization step

`fmt` is "qdq" or "qoperator" (QuantFormat.QDQ / QuantFormat.QOperator), `act_type` "i8"
or "u8" (QuantType.QInt8 / QUInt8); weights are QInt8 unless `weight_type="u8"`, and
`extra_options` goes to quantize_static (e.g. {"WeightSymmetric": True}). `float_inputs`
are seeded evaluation inputs (one array per model input) and `ort_outputs` onnxruntime's
outputs of the quantized model on them (graph optimizations on: QDQ runs as fused integer
kernels). Calibration uses 8 other seeded inputs. Everything is written under `tmp_path`;
nothing is cached elsewhere. Each model takes well under a second to export and quantize.
Shared by the frontend tests, the lower-integer tests and the lead's checks.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch import nn

FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
QTYPES = {"i8": QuantType.QInt8, "u8": QuantType.QUInt8}
Result = tuple[Path, list[np.ndarray], list[np.ndarray]]


class TinyCNN(nn.Module):
    """conv-relu, conv-relu, residual add, maxpool, conv, global avg pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.conv1(x))
        b = torch.relu(self.conv2(a)) + a
        c = torch.relu(self.conv3(self.pool(b)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(c, 1), 1))


class TinyBlock(nn.Module):
    """A pre-norm transformer block: layer norm, 2-head attention, gelu MLP, residual adds."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        h = self.heads
        qkv = self.qkv(self.ln1(x)).reshape(n, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q @ k.transpose(-2, -1)) * (d // h) ** -0.5, dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))


class TinyMixed(nn.Module):
    """Coverage for the other QOperator ops: leaky relu, sigmoid, a gating mul, average
    pooling, concat."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = nn.functional.leaky_relu(self.conv1(x), 0.1)
        b = a * torch.sigmoid(self.conv2(a))
        return torch.cat([self.pool(a), self.pool(b)], dim=1)


class _Reader(CalibrationDataReader):
    def __init__(self, name: str, batches: Sequence[np.ndarray]) -> None:
        self._it = iter([{name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def export(make_model: Callable[[], nn.Module], shape: tuple[int, ...], path: Path,
           seed: int = 0) -> Path:
    """Export a freshly seeded `make_model()` to ONNX with one input 'x' and one output 'y'."""
    torch.manual_seed(seed)
    model = make_model().eval()
    torch.onnx.export(model, (torch.zeros(shape),), str(path), input_names=["x"],
                      output_names=["y"], opset_version=17, dynamo=False)
    return path


def quantize(float_path: Path, out_path: Path, shape: tuple[int, ...], fmt: str,
             per_channel: bool, act_type: str, weight_type: str = "i8",
             make_input: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] | None = None,
             extra_options: dict[str, Any] | None = None) -> Path:
    """quantize_static over 8 seeded calibration batches."""
    make = make_input or _normal
    rng = np.random.default_rng(1234)
    reader = _Reader("x", [make(rng, shape) for _ in range(8)])
    quantize_static(str(float_path), str(out_path), reader, quant_format=FORMATS[fmt],
                    per_channel=per_channel, activation_type=QTYPES[act_type],
                    weight_type=QTYPES[weight_type], extra_options=extra_options or {})
    return out_path


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def run_ort(path: Path, inputs: Sequence[np.ndarray], fuse: bool = True) -> list[np.ndarray]:
    """onnxruntime's outputs; `fuse=False` disables its graph optimizations, so that QDQ
    models run as float ops between Q/DQ pairs instead of fused integer kernels."""
    so = ort.SessionOptions()
    if not fuse:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), inputs, strict=True)}
    return [np.asarray(y) for y in sess.run(None, feeds)]


def _build(tmp_path: Path, name: str, model: Callable[[], nn.Module], shape: tuple[int, ...],
           fmt: str, per_channel: bool, act_type: str, weight_type: str,
           extra_options: dict[str, Any] | None) -> Result:
    opts = "".join(f"_{k}{int(v)}" for k, v in sorted((extra_options or {}).items()))
    tag = f"{name}_{fmt}_{'pc' if per_channel else 'pt'}_{act_type}_w{weight_type}{opts}"
    fpath = tmp_path / f"{name}_float.onnx"
    if not fpath.exists():
        export(model, shape, fpath)
    qpath = quantize(fpath, tmp_path / f"{tag}.onnx", shape, fmt, per_channel, act_type,
                     weight_type, extra_options=extra_options)
    x = _normal(np.random.default_rng(7), shape)
    return qpath, [x], run_ort(qpath, [x])


def quantized_cnn(tmp_path: Path, fmt: str = "qoperator", per_channel: bool = True,
                  act_type: str = "u8", weight_type: str = "i8",
                  extra_options: dict[str, Any] | None = None) -> Result:
    """TinyCNN on a [1, 3, 16, 16] input."""
    return _build(tmp_path, "cnn", TinyCNN, (1, 3, 16, 16), fmt, per_channel, act_type,
                  weight_type, extra_options)


def quantized_transformer(tmp_path: Path, fmt: str = "qoperator", per_channel: bool = True,
                          act_type: str = "u8", weight_type: str = "i8",
                          extra_options: dict[str, Any] | None = None) -> Result:
    """TinyBlock on a [1, 8, 16] input (8 tokens of width 16)."""
    return _build(tmp_path, "block", TinyBlock, (1, 8, 16), fmt, per_channel, act_type,
                  weight_type, extra_options)


def quantized_mixed(tmp_path: Path, fmt: str = "qoperator", per_channel: bool = True,
                    act_type: str = "u8", weight_type: str = "i8",
                    extra_options: dict[str, Any] | None = None) -> Result:
    """TinyMixed on a [1, 3, 8, 8] input."""
    return _build(tmp_path, "mixed", TinyMixed, (1, 3, 8, 8), fmt, per_channel, act_type,
                  weight_type, extra_options)


MODELS: dict[str, Callable[..., Result]] = {
    "cnn": quantized_cnn, "transformer": quantized_transformer, "mixed": quantized_mixed}


def step(path: Path) -> float:
    """The quantization step of the model's (first) output: the scale of the
    DequantizeLinear that produces it (the largest one if per channel)."""
    import onnx
    m = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    out = m.graph.output[0].name
    producer = {o: n for n in m.graph.node for o in n.output}
    dq = producer[out]
    if dq.op_type != "DequantizeLinear":
        raise ValueError(f"output {out!r} of {path} comes from {dq.op_type}, not DequantizeLinear")
    return float(np.max(inits[dq.input[1]]))
