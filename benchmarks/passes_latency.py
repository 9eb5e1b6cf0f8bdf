"""What the graph passes buy: -O2 against -O0 on models with training-form branches.

    .venv/bin/python benchmarks/passes_latency.py [--models fastvit_t8,repvit_m0_9,mobileone_s0]

Each timm model (random weights, *not* re-parameterized: the training-form branches
and BatchNorms are there) is compiled from its nn.Module at -O0 and at -O2, both
libraries are checked against eager PyTorch, then timed interleaved in one process
with the same thread count. Writes benchmarks/passes_latency.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT = "fastvit_t8,repvit_m0_9,mobileone_s0"
HERE = Path(__file__).resolve().parent


def bench(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    import vcompile
    from vcompile.models import create_timm
    from vcompile.runtime.bench import time_interleaved
    model, shape = create_timm(name)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = model(x).numpy()
    row: dict[str, Any] = {"model": name}
    fns = {}
    for level in (0, 2):
        cm = vcompile.compile(model, example_inputs=(x,), opt_level=level)
        xn = x.numpy()
        got = cm(xn)[0]
        from vcompile.ir.stats import all_nodes
        ops = [n.op for n in all_nodes(cm.graph)]
        row[f"O{level}"] = {"nodes": len(ops), "conv2d": ops.count("conv2d"),
                            "batch_norm": ops.count("batch_norm"),
                            "max_rel_err_vs_eager": float(np.abs(got - ref).max() / np.abs(ref).max())}
        fns[f"O{level}"] = (lambda cm=cm, xn=xn: cm(xn))
    res = time_interleaved(fns, args.warmup, args.repeat, args.max_seconds)
    for k, t in res.items():
        row[k].update(median_ms=round(t.median_ms, 2), p90_ms=round(t.p90_ms, 2), runs=t.runs)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=DEFAULT)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--max-seconds", type=float, default=60.0)
    args = p.parse_args(argv)
    from vcompile.runtime.bench import set_threads
    set_threads(args.threads)
    rows = [bench(m, args) for m in args.models.split(",")]
    env = {"date": time.strftime("%Y-%m-%d %H:%M"), "threads": args.threads,
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    (HERE / "passes_latency.json").write_text(json.dumps({"env": env, "results": rows}, indent=1) + "\n")
    lines = [f"# -O2 against -O0 ({env['date']}, {args.threads} threads, batch 1, untuned TVM; "
             f"load average at the end {env['load_average']})", "",
             "| model | nodes O0 -> O2 | conv2d O0 -> O2 | batch_norm O0 -> O2 | -O0 ms | -O2 ms "
             "| speedup | max rel err vs eager (O2) |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        a, b = r["O0"], r["O2"]
        lines.append(f"| {r['model']} | {a['nodes']} -> {b['nodes']} | {a['conv2d']} -> {b['conv2d']} | "
                     f"{a['batch_norm']} -> {b['batch_norm']} | {a['median_ms']:.1f} | "
                     f"{b['median_ms']:.1f} | {a['median_ms'] / b['median_ms']:.2f}x | "
                     f"{b['max_rel_err_vs_eager']:.1e} |")
    (HERE / "passes_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
