"""The model suite through vcompile, onnxruntime (ORT_ENABLE_ALL) and PyTorch eager.

    .venv/bin/python benchmarks/run.py [--models resnet18,levit_128s] [--threads 2]

Per model: export (cached), compile with vcompile for the host, then time the three
runtimes interleaved in one process with the same thread count, after warm-up, and
check that vcompile's output matches onnxruntime's. Writes benchmarks/results.md and
benchmarks/results.json (median and p90 ms, ratios to onnxruntime, geometric means).
Untuned TVM CPU code is slow: a run over the whole suite takes a long while.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="comma-separated timm names (default: the whole suite)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--max-seconds", type=float, default=60.0, help="timing budget per model")
    p.add_argument("-O", dest="opt_level", type=int, default=2)
    p.add_argument("--exporter", default="legacy", choices=["legacy", "dynamo"])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output path stem")
    return p.parse_args(argv)


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    import vcompile
    from tests.models import onnx_model, sample_input
    from vcompile.models import create_timm
    from vcompile.runtime.bench import onnxruntime_session, time_interleaved
    path = str(onnx_model(name, args.exporter))
    x = sample_input(name)
    t0 = time.perf_counter()
    m = vcompile.compile(path, target="host", opt_level=args.opt_level)
    compile_s = time.perf_counter() - t0
    sess = onnxruntime_session(path, args.threads)
    feed = {sess.get_inputs()[0].name: x}  # type: ignore[attr-defined]
    model, _ = create_timm(name)
    xt = torch.from_numpy(x)

    def eager() -> Any:
        with torch.inference_mode():
            return model(xt)
    ref = sess.run(None, feed)[0]  # type: ignore[attr-defined]
    err = float(np.abs(m(x)[0] - ref).max() / max(float(np.abs(ref).max()), 1e-12))
    res = time_interleaved({"vcompile": lambda: m(x), "onnxruntime": lambda: sess.run(None, feed),  # type: ignore[attr-defined]
                            "torch_eager": eager}, args.warmup, args.repeat, args.max_seconds)
    return {"model": name, "compile_s": round(compile_s, 1), "max_rel_err_vs_ort": err,
            **{k: {"median_ms": round(v.median_ms, 3), "p90_ms": round(v.p90_ms, 3), "runs": v.runs}
               for k, v in res.items()}}


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def write(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    env = {"threads": args.threads, "opt_level": args.opt_level, "exporter": args.exporter,
           "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d %H:%M"),
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    Path(args.out + ".json").write_text(json.dumps({"env": env, "results": rows}, indent=1) + "\n")
    lines = [f"# vcompile benchmark ({env['date']})", "",
             f"Batch 1, {args.threads} thread(s), -O{args.opt_level}, {args.exporter} ONNX export, "
             "median ms over interleaved runs; ratio = runtime / onnxruntime (lower is better). "
             f"Load average at the end: {env['load_average']}.", "",
             "| model | vcompile | onnxruntime | PyTorch eager | vcompile / ORT | eager / ORT "
             "| compile s | rel err |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ort = r["onnxruntime"]["median_ms"]
        lines.append(f"| {r['model']} | {r['vcompile']['median_ms']:.1f} | {ort:.1f} | "
                     f"{r['torch_eager']['median_ms']:.1f} | {r['vcompile']['median_ms'] / ort:.1f}x | "
                     f"{r['torch_eager']['median_ms'] / ort:.2f}x | {r['compile_s']} | "
                     f"{r['max_rel_err_vs_ort']:.1e} |")
    if rows:
        gv = geomean([r["vcompile"]["median_ms"] / r["onnxruntime"]["median_ms"] for r in rows])
        ge = geomean([r["torch_eager"]["median_ms"] / r["onnxruntime"]["median_ms"] for r in rows])
        lines += ["", f"Geometric mean vs onnxruntime: vcompile {gv:.1f}x, PyTorch eager {ge:.2f}x."]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from vcompile.runtime.bench import set_threads
    set_threads(args.threads)  # before TVM, torch and onnxruntime start their pools
    import torch
    torch.set_num_threads(args.threads)
    from tests.models import SUITE
    names = args.models.split(",") if args.models else SUITE
    rows = []
    for name in names:
        print(f"[{len(rows) + 1}/{len(names)}] {name} ...", flush=True)
        rows.append(bench_model(name, args))
        r = rows[-1]
        print(f"  vcompile {r['vcompile']['median_ms']:.1f} ms, onnxruntime "
              f"{r['onnxruntime']['median_ms']:.1f} ms, eager {r['torch_eager']['median_ms']:.1f} ms",
              flush=True)
        write(rows, args)  # after every model, so an interrupted run keeps what it measured
    print(f"wrote {args.out}.md and {args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
