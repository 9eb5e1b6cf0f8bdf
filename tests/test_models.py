"""The timm model suite through the ONNX frontend: verify, text round trip, and numerics.

For each model and exporter (24 cases): load with the ONNX frontend, `verify`, check
`print(parse(print(g))) == print(g)` with the real constants passed by printed name,
then run `ir.interp` and onnxruntime (CPU EP) on one seeded input and require

    |interp - ort| <= 1e-4 * |ort| + 1e-4 * max|ort|     (elementwise, every output)

i.e. `assert_allclose(rtol=1e-4, atol=1e-4 * max|ort|)`. The absolute term keeps
logits that happen to lie near zero from failing on float32 summation order alone.

Each case prints one table line (run with `-rP` or `-s` to see them):
    model  exporter  IR nodes  interp s  ort s  max rel err (max|diff| / max|ort|)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.models import EXPORTERS, SUITE, cached_path, onnx_model, sample_input
from vcompile import models
from vcompile.errors import VcompileError
from vcompile.ir import interp, parse_graph, print_graph, verify
from vcompile.ir.printer import value_names

RTOL = 1e-4

CASES = [pytest.param(name, exporter, id=f"{name}-{exporter}",
                      marks=[pytest.mark.slow, pytest.mark.xdist_group(name)])
         for name in SUITE for exporter in EXPORTERS]


def _ort_run(path: Path, x: np.ndarray) -> tuple[list[np.ndarray], float]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # the suite shares a few cores across xdist workers
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    sess.run(None, feed)  # warm up
    t0 = time.perf_counter()
    outs = sess.run(None, feed)
    return [np.asarray(o) for o in outs], time.perf_counter() - t0


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_model(name: str, exporter: str) -> None:
    from vcompile.frontends import onnx as onnx_frontend

    path = onnx_model(name, exporter)
    x = sample_input(name)
    g = onnx_frontend.load(path)
    verify(g)

    text = print_graph(g)
    names = value_names(g)
    consts = {names[v]: a for v, a in g.consts.items()}
    assert print_graph(parse_graph(text, consts=consts)) == text

    t0 = time.perf_counter()
    got = interp.run(g, x)
    t_interp = time.perf_counter() - t0
    ref, t_ort = _ort_run(path, x)

    assert len(got) == len(ref)
    errs = []
    for i, (y, r) in enumerate(zip(got, ref, strict=True)):
        assert y.shape == r.shape and y.dtype == r.dtype, f"output {i}"
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        errs.append(float(np.max(np.abs(y - r))) / scale if scale else 0.0)
        print(f"{name:30s} {exporter:6s} nodes {len(g.nodes):5d}  interp {t_interp:7.2f}s  "
              f"ort {t_ort * 1e3:7.1f}ms  max rel err {errs[-1]:.2e}")
        np.testing.assert_allclose(y, r, rtol=RTOL, atol=RTOL * scale, err_msg=f"{name} output {i}")


# ---- vcompile.models itself: errors are one-line VcompileErrors; exports are reproducible

def test_unknown_model_lists_close_matches() -> None:
    with pytest.raises(VcompileError, match=r"^unknown timm model 'resnet19'; close matches: .*resnet18"):
        models.export_timm("resnet19", "unused.onnx")


def test_unknown_model_without_pattern_match() -> None:
    with pytest.raises(VcompileError, match=r"^unknown timm model 'restnet18'; close matches: .*resnet18"):
        models.input_size("restnet18")


def test_unknown_exporter() -> None:
    with pytest.raises(VcompileError, match=r"unknown exporter 'tf'; choose one of legacy, dynamo"):
        models.export_timm("resnet18", "unused.onnx", exporter="tf")


def test_missing_torch_says_to_install_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(VcompileError, match=r"needs torch and timm .*pip install -e '\.\[torch\]'"):
        models.export_timm("resnet18", "unused.onnx")


def test_export_cli_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert models.main(["export", "resnet19", "-o", str(tmp_path / "m.onnx")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("vcompile: error: unknown timm model 'resnet19'")
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())


def test_default_input_sizes() -> None:
    assert models.input_size("resnet18") == (1, 3, 224, 224)
    assert models.input_size("fastvit_t8") == (1, 3, 256, 256)
    assert sample_input("fastvit_t8").shape == (1, 3, 256, 256)
    np.testing.assert_array_equal(sample_input("resnet18"), sample_input("resnet18"))


@pytest.mark.slow
@pytest.mark.xdist_group("resnet18")
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_export_is_deterministic(exporter: str, tmp_path: Path) -> None:
    cached = onnx_model("resnet18", exporter)
    fresh = models.export_timm("resnet18", tmp_path / "r.onnx", exporter)
    assert fresh.read_bytes() == cached.read_bytes() and cached == cached_path("resnet18", exporter)
    assert [p.name for p in tmp_path.iterdir()] == ["r.onnx"]  # no temporary file left behind
