"""What fusion buys: kernels per inference and latency, vcompile's groups against TVM's
FuseOps and against no fusion, on the timm suite.

    .venv/bin/python benchmarks/fusion.py [--models deit_tiny_patch16_224,levit_128s] [--threads 2]

Per model (legacy ONNX export, random weights), four builds of the same model:
  -O0           no rewrites, no fusion: every op its own kernels
  -O1           BN folding etc., fusion off
  -O2 TVM fuse  the -O2 graph without our `fuse` pass, fused by TVM's FuseOps
  -O2           recognize + fuse: one kernel per group
Kernels are what `main` launches per inference (call_tir after reshapes become views).
-O1, -O2 with TVM's fusion and -O2 are timed interleaved in one process, same threads;
all are checked against onnxruntime. Then the per-kernel profile (`runtime.profile`)
of -O1 and -O2 splits each into anchor kernels (conv, dense/linear, matmul, attention)
and the rest: -O1's end-to-end time over its anchor time is the most any fusion could
gain over -O1 if every other op and launch became free and the anchors kept -O1's speed.
Writes benchmarks/fusion.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
HERE = Path(__file__).resolve().parent
from benchmarks.suite_loop import each_model, timing_args  # noqa: E402

TRANSFORMERS = ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "levit_128s", "pvt_v2_b0")
ANCHOR_WORDS = ("conv", "dense", "matmul", "linear", "attention")


def anchor_split(m: Any, x: Any) -> dict[str, float]:
    """Median ms of one inference's anchor kernels and of its other kernels."""
    from vcompile.runtime.profile import time_calls
    t = time_calls(m, [x], rounds=10)
    kernels = [(s, sec) for s, sec in t.calls if not s.startswith("vm.builtin.")]
    anchors = sum(sec for s, sec in kernels if any(w in s for w in ANCHOR_WORDS))
    return {"anchor_ms": round(anchors * 1e3, 3),
            "other_kernels_ms": round((sum(sec for _, sec in kernels) - anchors) * 1e3, 3)}


def bench(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    import vcompile
    from tests.models import onnx_model, sample_input
    from vcompile import passes
    from vcompile.runtime.bench import onnxruntime_session, time_interleaved
    path = str(onnx_model(name, "legacy"))
    x = sample_input(name)
    sess = onnxruntime_session(path, args.threads)
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]  # type: ignore[attr-defined]
    builds = {"O0": dict(opt_level=0), "O1": dict(opt_level=1),
              "O2_tvm": dict(opt_level=2, passes=[p for p in passes.O2 if p != "fuse"]),
              "O2": dict(opt_level=2)}
    row: dict[str, Any] = {"model": name}
    fns, models = {}, {}
    for key, kw in builds.items():
        t0 = time.perf_counter()
        m = vcompile.compile(path, target="host", **kw)  # type: ignore[arg-type]
        ops = [n.op for n in m.graph.nodes]
        attn = sum(1 for n in m.graph.nodes for o in ([n] if n.region is None else n.region.nodes)
                   if o.op == "attention")
        err = float(np.abs(m(x)[0] - ref).max() / max(float(np.abs(ref).max()), 1e-12))
        row[key] = {"kernels": m.meta["kernels"], "fusion": m.meta["fusion"], "nodes": len(ops),
                    "attention_ops": attn, "compile_s": round(time.perf_counter() - t0, 1),
                    "max_rel_err_vs_ort": err}
        if key != "O0":  # -O0 is unscheduled TIR: minutes per model, not a contender
            fns[key] = (lambda m=m: m(x))
            models[key] = m
    res = time_interleaved(fns, args.warmup, args.repeat, args.max_seconds)
    for k, t in res.items():
        row[k].update(median_ms=round(t.median_ms, 3), p90_ms=round(t.p90_ms, 3), runs=t.runs)
    for key in ("O1", "O2"):
        row[key].update(anchor_split(models[key], x))
    return row


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in xs) / len(xs)) if xs else float("nan")


def write(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    (HERE / "fusion.json").write_text(json.dumps({"threads": args.threads, "date": time.strftime(
        "%Y-%m-%d %H:%M"), "load_average": os.getloadavg(), "results": rows}, indent=1) + "\n")
    lines = [f"# Fusion ({time.strftime('%Y-%m-%d %H:%M')}, {args.threads} thread(s), batch 1, "
             "legacy ONNX export; median ms, interleaved)", "",
             "| model | kernels -O0 | kernels -O1 | kernels -O2 TVM FuseOps | kernels -O2 vcompile "
             "| attention ops | -O1 ms | -O2 TVM fuse ms | -O2 ms | -O1 / -O2 | TVM fuse / -O2 "
             "| rel err -O2 | -O1 anchors ms | -O2 anchors ms | ceiling -O1 / -O1 anchors |",
             "| --- |" + " ---: |" * 14]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['O0']['kernels']} | {r['O1']['kernels']} | {r['O2_tvm']['kernels']} | "
            f"{r['O2']['kernels']} | {r['O2']['attention_ops']} | {r['O1']['median_ms']:.1f} | "
            f"{r['O2_tvm']['median_ms']:.1f} | {r['O2']['median_ms']:.1f} | "
            f"{r['O1']['median_ms'] / r['O2']['median_ms']:.2f}x | "
            f"{r['O2_tvm']['median_ms'] / r['O2']['median_ms']:.2f}x | {r['O2']['max_rel_err_vs_ort']:.1e} | "
            f"{r['O1']['anchor_ms']:.1f} | {r['O2']['anchor_ms']:.1f} | "
            f"{r['O1']['median_ms'] / r['O1']['anchor_ms']:.2f}x |")
    if rows:
        tr = [r for r in rows if r["model"] in TRANSFORMERS]
        gain = geomean([r["O1"]["median_ms"] / r["O2"]["median_ms"] for r in rows])
        gain_t = geomean([r["O1"]["median_ms"] / r["O2"]["median_ms"] for r in tr])
        vs_tvm = geomean([r["O2_tvm"]["median_ms"] / r["O2"]["median_ms"] for r in rows])
        ceil_t = geomean([r["O1"]["median_ms"] / r["O1"]["anchor_ms"] for r in tr])
        lines += ["", f"Geometric-mean speedup of -O2 over -O1 (fusion off): {gain:.2f}x on all models, "
                  f"{gain_t:.2f}x on the transformers ({', '.join(r['model'] for r in tr)}); "
                  f"over -O2 with TVM's FuseOps: {vs_tvm:.2f}x. The ceiling of any fusion over -O1 "
                  f"(-O1's time over its anchor kernels' time) on the transformers: {ceil_t:.2f}x."]
    (HERE / "fusion.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    from tests.models import SUITE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    timing_args(p, ",".join(SUITE))
    args = p.parse_args(argv)
    return each_model(args, bench, lambda r: (
        f"kernels O0 {r['O0']['kernels']} O1 {r['O1']['kernels']} tvm {r['O2_tvm']['kernels']} "
        f"O2 {r['O2']['kernels']}; ms O1 {r['O1']['median_ms']:.1f} tvm {r['O2_tvm']['median_ms']:.1f} "
        f"O2 {r['O2']['median_ms']:.1f}"), write)


if __name__ == "__main__":
    sys.exit(main())
