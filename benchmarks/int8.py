"""int8 against fp32 in the same compiler: latency (interleaved in one run) and library size.

    .venv/bin/python benchmarks/int8.py [--models resnet18,deit_tiny_patch16_224] [--threads 2]
                                        [--target host|cuda] [--opt-level 2]

Per model (legacy ONNX export, random weights): two builds at the same -O level and
target, fp32 (`vcompile.compile(path)`) and int8 (`quantize="int8"`, calibrated on two
seeded inputs other than the timed one, percentile 99.99), timed interleaved in one
process (same threads, warm-up first; medians), exported to .so to compare sizes. Also
per model: the cosine of int8 logits to fp32 logits, and the float ops left inside the
integer region of the int8 graph (must be 0). A build that fails is recorded with its
error and the other models go on (the int8 build needs `lower-integer` and the integer
kernels). The issue's goal on the CPU: at least 1.5x on deit_tiny and resnet18; on CUDA
I-ViT reports 3.72x to 4.11x. Writes benchmarks/int8.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
HERE = Path(__file__).resolve().parent
from benchmarks.suite_loop import each_model, timing_args  # noqa: E402

DEFAULT_MODELS = ("resnet18", "deit_tiny_patch16_224")


def _build(path: str, args: argparse.Namespace, tmp: str, **kw: Any) -> tuple[Any, dict[str, Any]]:
    import vcompile
    from vcompile.ir.dtypes import float_ops_in_integer_region
    t0 = time.perf_counter()
    m = vcompile.compile(path, target=args.target, opt_level=args.opt_level, **kw)
    lib = os.path.join(tmp, f"{'int8' if kw else 'fp32'}.so")
    m.export(lib)
    return m, {"compile_s": round(time.perf_counter() - t0, 1),
               "lib_mb": round(os.path.getsize(lib) / 1e6, 2), "kernels": m.meta.get("kernels"),
               "float_ops_in_region": len(float_ops_in_integer_region(m.graph))}


def bench(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from tests.models import onnx_model, sample_input
    from vcompile.runtime.bench import time_interleaved
    path = str(onnx_model(name, "legacy"))
    x = sample_input(name)
    calib = [sample_input(name, seed=s) for s in (1, 2)]
    row: dict[str, Any] = {"model": name}
    fns, outs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, kw in (("fp32", {}), ("int8", {"quantize": "int8", "calib": calib,
                                                "calib_method": "percentile"})):
            try:
                m, row[key] = _build(path, args, tmp, **kw)
            except Exception as e:  # noqa: BLE001 - recorded: the table says what failed
                row[key] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
                print(f"  {key} failed: {row[key]['error']}", flush=True)
                continue
            outs[key] = m(x)[0]
            fns[key] = (lambda m=m: m(x))
    if fns:
        res = time_interleaved(fns, args.warmup, args.repeat, args.max_seconds)
        for k, t in res.items():
            row[k].update(median_ms=round(t.median_ms, 3), p90_ms=round(t.p90_ms, 3), runs=t.runs)
    if len(outs) == 2:
        a, b = (outs[k].astype(np.float64).ravel() for k in ("fp32", "int8"))
        row["cosine"] = round(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))), 5)
    return row


def _cell(r: dict[str, Any], key: str, field: str, fmt: str) -> str:
    v = r.get(key, {}).get(field)
    return format(v, fmt) if v is not None else "-"


def write(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M")
    (HERE / "int8.json").write_text(json.dumps({"threads": args.threads, "target": args.target,
                                                "opt_level": args.opt_level, "date": stamp,
                                                "load_average": os.getloadavg(), "results": rows},
                                               indent=1) + "\n")
    lines = [f"# int8 against fp32 ({stamp}, target {args.target}, -O{args.opt_level}, {args.threads} "
             "thread(s), batch 1, legacy ONNX export; median ms, interleaved)", "",
             "| model | fp32 ms | int8 ms | fp32 / int8 | fp32 MB | int8 MB | size fp32 / int8 "
             "| cosine int8 vs fp32 | float ops in int region | note |",
             "| --- |" + " ---: |" * 8 + " --- |"]
    for r in rows:
        f, i = r.get("fp32", {}), r.get("int8", {})
        speed = f"{f['median_ms'] / i['median_ms']:.2f}x" if "median_ms" in f and "median_ms" in i else "-"
        size = f"{f['lib_mb'] / i['lib_mb']:.2f}x" if "lib_mb" in f and "lib_mb" in i else "-"
        note = "; ".join(f"{k}: {r[k]['error']}" for k in ("fp32", "int8") if "error" in r.get(k, {}))
        lines.append(f"| {r['model']} | {_cell(r, 'fp32', 'median_ms', '.1f')} | "
                     f"{_cell(r, 'int8', 'median_ms', '.1f')} | {speed} | "
                     f"{_cell(r, 'fp32', 'lib_mb', '.1f')} | "
                     f"{_cell(r, 'int8', 'lib_mb', '.1f')} | {size} | {r.get('cosine', '-')} | "
                     f"{_cell(r, 'int8', 'float_ops_in_region', 'd')} | {note.replace('|', '/')} |")
    both = [r for r in rows if "median_ms" in r.get("fp32", {}) and "median_ms" in r.get("int8", {})]
    if both:
        logs = [math.log(r["fp32"]["median_ms"] / r["int8"]["median_ms"]) for r in both]
        gm = math.exp(sum(logs) / len(logs))
        lines += ["", f"Geometric-mean speedup of int8 over fp32: {gm:.2f}x on {len(both)} model(s) "
                  "(goal on the CPU: at least 1.5x on deit_tiny and resnet18)."]
    (HERE / "int8.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    timing_args(p, ",".join(DEFAULT_MODELS))
    p.add_argument("--target", default="host")
    p.add_argument("--opt-level", type=int, default=2)
    args = p.parse_args(argv)
    return each_model(args, bench, lambda r: (
        f"ms fp32 {r['fp32'].get('median_ms', '-')} int8 {r['int8'].get('median_ms', '-')}; MB fp32 "
        f"{r['fp32'].get('lib_mb', '-')} int8 {r['int8'].get('lib_mb', '-')}"), write)


if __name__ == "__main__":
    sys.exit(main())
