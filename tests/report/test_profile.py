"""`vcompile profile`: per-kernel times that add up to the end-to-end latency, kernels
matched to fusion groups with their FLOPs, JSON out, and its errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.codegen.test_cli import one_line_error, vc
from vcompile.report.profile import match_calls

TABLE = [{"node": 0, "kernel": "conv2d_relu", "class": "conv", "ops": ["conv2d", "relu"],
          "flops": 1000, "output": "f32[1]"},
         {"node": 2, "kernel": "conv2d_relu", "class": "conv", "ops": ["conv2d", "relu"],
          "flops": 1000, "output": "f32[1]"},
         {"node": 3, "kernel": "split", "class": "layout", "ops": ["split"], "flops": 0,
          "output": "f32[1]"}]


def test_match_calls_follows_shared_functions_and_keeps_tvm_names() -> None:
    # TVM shares one function between identical groups, under the first group's name
    calls = [("fused_conv2d_relu_0_w", 1e-3), ("vm.builtin.alloc_tensor", 1e-5),
             ("fused_conv2d_relu_0_w", 2e-3), ("strided_slice1", 5e-4)]
    kernels, runtime = match_calls(calls, TABLE)
    assert [k.node for k in kernels] == [0, 2, None]
    assert [k.cls for k in kernels] == ["conv", "conv", "layout"]
    assert kernels[1].flops == 1000 and kernels[1].gflops_per_s == pytest.approx(1000 / 2e-3 / 1e9)
    assert kernels[2].kernel == "strided_slice1" and kernels[2].flops is None
    assert runtime == pytest.approx(1e-5)


def test_profile_missing_library_is_one_line() -> None:
    one_line_error(vc("profile", "no/such/model.so"), "no/such/model.so: no such file")


def test_profile_bad_rounds_is_one_line() -> None:
    one_line_error(vc("profile", "timm:resnet18", "--rounds", "0"), "--rounds must be 1 or more")


@pytest.fixture(scope="module")
def resnet18() -> object:
    pytest.importorskip("tvm")
    import vcompile
    from tests.models import onnx_model
    return vcompile.compile(str(onnx_model("resnet18")), target="host", opt_level=2)


def _within(a: float, b: float, tol: float = 0.15) -> bool:
    return abs(a - b) <= tol * b


@pytest.mark.slow
def test_kernel_times_add_up_to_latency(resnet18: object) -> None:
    from vcompile.ir.stats import graph_stats
    from vcompile.report.profile import profile_model
    m = resnet18
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    # NOTE: the instrumented kernel times and the plain end-to-end latency come from the
    # same profile, interleaved; a separate benchmark before or after (this test's former
    # second check) read 2.5x apart in CI under the other test worker's load, so it is gone:
    # speed comparisons belong to benchmarks/.
    for attempt in range(3):  # retries: the machine is shared (the other test worker's load)
        p = profile_model(m, [x], rounds=40)
        if _within(p.per_run_s, p.e2e_s):
            break
        assert attempt < 2, f"kernels {p.per_run_s * 1e3:.2f} ms vs e2e {p.e2e_s * 1e3:.2f} ms"
    d = p.to_json()
    assert d["gflops_per_s_kernels"] == pytest.approx(p.flops / p.per_run_s / 1e9)
    assert d["kernel_ms_per_run"] == pytest.approx(p.per_run_s * 1e3)
    # every kernel is a fusion group of the IR: 20 convs (with their epilogues), 1 pool,
    # 1 mean, 1 linear; FLOPs add up to the graph's
    assert all(k.node is not None for k in p.kernels)
    assert len(p.kernels) == m.meta["kernels"] == 23
    by_class = {r["class"]: r["kernels"] for r in p.aggregate("cls")}
    assert by_class == {"conv": 20, "pool": 1, "reduce": 1, "matmul": 1}
    assert p.flops == graph_stats(m.graph).flops
    assert sum(r["share"] for r in p.aggregate("kernel")) == pytest.approx(1.0)


@pytest.mark.slow
def test_profile_cli_on_a_library_writes_json(resnet18: object, tmp_path: Path) -> None:
    lib = resnet18.export(tmp_path / "r18.so")  # type: ignore[attr-defined]
    out = tmp_path / "p.json"
    r = vc("profile", str(lib), "--rounds", "3", "--threads", "1", "--json", str(out), "--top", "5")
    assert r.returncode == 0, r.stderr
    assert "by op class" in r.stdout and "fused_conv2d" in r.stdout and "GFLOP/s" in r.stdout
    d = json.loads(out.read_text())
    assert len(d["kernels"]) == 23 and d["info"]["fusion"] == "vcompile"
    # the library alone (no IR) still names every kernel's group and FLOPs
    assert all(k["node"] is not None and k["flops"] > 0 for k in d["kernels"])
    assert d["flops"] == pytest.approx(3.63e9, rel=0.01)
    assert sum(k["ms"] for k in d["kernels"]) == pytest.approx(d["kernel_ms"])
    assert [r["class"] for r in d["by_class"]][0] == "conv"
