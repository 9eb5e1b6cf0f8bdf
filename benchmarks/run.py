"""The model suite through vcompile, onnxruntime (ORT_ENABLE_ALL), PyTorch eager and
(optionally) torch.compile.

    .venv/bin/python benchmarks/run.py [--models resnet18,levit_128s] [--threads 2]
    .venv/bin/python benchmarks/run.py -O3 --tune-trials 512 --tuning-db DIR --torch-compile

Per model: export (cached), compile with vcompile for the host, then time the three
runtimes interleaved in one process with the same thread count, after warm-up, and
check that vcompile's output matches onnxruntime's. Writes benchmarks/results.md and
benchmarks/results.json (median and p90 ms, ratios to onnxruntime, geometric means).
GFLOP/s uses the FLOPs `ir.stats` counts (2 per multiply-add); the peak is the best
sgemm (numpy's OpenBLAS or PyTorch, 2048^3) at the same thread count, measured in the same run.
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
    p.add_argument("--tune-trials", type=int, help="-O3: MetaSchedule trials per model")
    p.add_argument("--tuning-db", help="-O3: tuning database directory")
    p.add_argument("--torch-compile", action="store_true",
                   help="add torch.compile (inductor) as a contender (slow to compile)")
    p.add_argument("--rewrite", action="store_true",
                   help="rewrite the .md from the existing .json (after a format change), measuring nothing")
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
    m = vcompile.compile(path, target="host", opt_level=args.opt_level,
                         tune_trials=args.tune_trials, tuning_db=args.tuning_db)
    compile_s = time.perf_counter() - t0
    from vcompile.ir.stats import graph_stats
    flops = graph_stats(m.graph).flops
    sess = onnxruntime_session(path, args.threads)
    feed = {sess.get_inputs()[0].name: x}  # type: ignore[attr-defined]
    model, _ = create_timm(name)
    xt = torch.from_numpy(x)

    def eager() -> Any:
        with torch.inference_mode():
            return model(xt)
    ref = sess.run(None, feed)[0]  # type: ignore[attr-defined]
    err = float(np.abs(m(x)[0] - ref).max() / max(float(np.abs(ref).max()), 1e-12))
    contenders = {"vcompile": lambda: m(x), "onnxruntime": lambda: sess.run(None, feed),  # type: ignore[attr-defined]
                  "torch_eager": eager}
    if args.torch_compile:
        compiled = torch.compile(model)

        def tc() -> Any:
            with torch.inference_mode():
                return compiled(xt)
        tc()  # compiles
        contenders["torch_compile"] = tc
    res = time_interleaved(contenders, args.warmup, args.repeat, args.max_seconds)
    return {"model": name, "compile_s": round(compile_s, 1), "max_rel_err_vs_ort": err,
            "gflop": round(flops / 1e9, 4),
            **{k: {"median_ms": round(v.median_ms, 3), "p90_ms": round(v.p90_ms, 3), "runs": v.runs}
               for k, v in res.items()}}


def sgemm_peak_gflops(threads: int) -> float:
    """The faster of OpenBLAS (numpy) and PyTorch's sgemm, 2048^3, at the benchmark's
    thread count (the caller set both libraries' threads): the machine's practical peak."""
    import numpy as np
    import torch
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    t = torch.from_numpy(a)
    best = float("inf")
    for fn in (lambda: a @ a, lambda: torch.mm(t, t)):
        fn()
        best = min(best, *(_timed(fn) for _ in range(5)))
    return 2 * 2048 ** 3 / best / 1e9


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _ratio_geomean(rows: list[dict[str, Any]], key: str) -> float:
    return geomean([r[key]["median_ms"] / r["onnxruntime"]["median_ms"] for r in rows])


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def write(rows: list[dict[str, Any]], args: argparse.Namespace, peak: float,
          measured: dict[str, Any] | None = None) -> None:
    """Write OUT.json and OUT.md; `measured` keeps a rewritten run's own date and load."""
    env = {"threads": args.threads, "sgemm_peak_gflops": round(peak, 1),
           "opt_level": args.opt_level, "exporter": args.exporter,
           "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d %H:%M"),
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    env.update(measured or {})
    Path(args.out + ".json").write_text(json.dumps({"env": env, "results": rows}, indent=1) + "\n")
    lines = [f"# vcompile benchmark ({env['date']})", "",
             f"Batch 1, {args.threads} thread(s), -O{args.opt_level}, {args.exporter} ONNX export, "
             "median ms over interleaved runs; ratio = runtime / onnxruntime (lower is better). "
             f"Load average at the end: {env['load_average']}. GFLOP/s of vcompile; "
             f"peak = best sgemm (OpenBLAS or PyTorch) at {args.threads} thread(s), {peak:.0f} GFLOP/s.", "",
             "| model | GFLOP | vcompile ms | onnxruntime ms | PyTorch eager ms |"
             + (" torch.compile ms |" if args.torch_compile else "")
             + " vcompile / ORT | eager / ORT |" + (" compile / ORT |" if args.torch_compile else "")
             + " vcompile GFLOP/s | % of peak | compile s | rel err |",
             "| --- |" + " ---: |" * (10 + 2 * args.torch_compile)]
    for r in rows:
        ort = r["onnxruntime"]["median_ms"]
        v = r["vcompile"]["median_ms"]
        tc = r.get("torch_compile", {}).get("median_ms")
        gfs = r["gflop"] / (v / 1e3)
        lines.append(f"| {r['model']} | {r['gflop']:.2f} | {v:.1f} | {ort:.1f} | "
                     f"{r['torch_eager']['median_ms']:.1f} |" + (f" {tc:.1f} |" if args.torch_compile else "")
                     + f" {v / ort:.2f}x | {r['torch_eager']['median_ms'] / ort:.2f}x |"
                     + (f" {tc / ort:.2f}x |" if args.torch_compile else "")
                     + f" {gfs:.0f} | {100 * gfs / peak:.0f}% | {r['compile_s']} | "
                     f"{r['max_rel_err_vs_ort']:.1e} |")
    if rows:
        gv = geomean([r["vcompile"]["median_ms"] / r["onnxruntime"]["median_ms"] for r in rows])
        ge = geomean([r["torch_eager"]["median_ms"] / r["onnxruntime"]["median_ms"] for r in rows])
        worst = max(rows, key=lambda r: r["vcompile"]["median_ms"] / r["onnxruntime"]["median_ms"])
        lines += ["", f"Geometric mean vs onnxruntime: vcompile {gv:.2f}x, PyTorch eager {ge:.2f}x"
                  + (f", torch.compile {_ratio_geomean(rows, 'torch_compile'):.2f}x"
                     if args.torch_compile else "")
                  + f". Worst vcompile ratio: {worst['model']} "
                  f"{worst['vcompile']['median_ms'] / worst['onnxruntime']['median_ms']:.2f}x."]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # NOTE: PyTorch's idle OpenMP threads otherwise spin after each eager run and take
    # the cores from whichever contender runs next.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from vcompile.runtime.bench import set_threads
    set_threads(args.threads)  # before TVM, torch and onnxruntime start their pools
    import torch
    torch.set_num_threads(args.threads)
    from tests.models import SUITE
    names = args.models.split(",") if args.models else SUITE
    if args.rewrite:
        old = json.loads(Path(args.out + ".json").read_text())
        peak = old["env"]["sgemm_peak_gflops"]
        args.threads = old["env"]["threads"]
        args.opt_level, args.exporter = old["env"]["opt_level"], old["env"]["exporter"]
        args.torch_compile = any("torch_compile" in r for r in old["results"])
        write(old["results"], args, peak,
              {k: old["env"][k] for k in ("date", "load_average") if k in old["env"]})
        print(f"rewrote {args.out}.md from {args.out}.json")
        return 0
    peak = sgemm_peak_gflops(args.threads)
    print(f"sgemm peak at {args.threads} thread(s): {peak:.0f} GFLOP/s", flush=True)
    rows = []
    for name in names:
        print(f"[{len(rows) + 1}/{len(names)}] {name} ...", flush=True)
        rows.append(bench_model(name, args))
        r = rows[-1]
        print(f"  vcompile {r['vcompile']['median_ms']:.1f} ms, onnxruntime "
              f"{r['onnxruntime']['median_ms']:.1f} ms, eager {r['torch_eager']['median_ms']:.1f} ms",
              flush=True)
        write(rows, args, peak)  # after every model, so an interrupted run keeps what it measured
    print(f"wrote {args.out}.md and {args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
