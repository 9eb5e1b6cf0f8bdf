"""What attention-to-conv buys on the CPU: the transformer models of the issue compiled at
-O2 with the pass off (bnc), on in the channel-first layout (bchw) and on in the NPU
layout (ane), timed interleaved in one process.

    .venv/bin/python benchmarks/attention_to_conv.py [--models deit_tiny_patch16_224,levit_128s] [--threads 2]

Per model (legacy ONNX export where timm's legacy export works, else dynamo; random
weights, batch 1): the transpose/reshape counts of the graph before fusion, kernels per
inference, median latency of each layout and its ratio to bnc, and the max error against
the pass-off build. Writes benchmarks/attention_to_conv.{md,json}. There is no GPU on the
build machine, so CUDA is not measured here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
HERE = Path(__file__).resolve().parent
from benchmarks.suite_loop import each_model, timing_args  # noqa: E402

MODELS = ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "levit_128s", "efficientvit_m0",
          "mobilevitv2_050", "nextvit_small", "lowformer_b0")
LAYOUTS = ("bnc", "bchw", "ane")


def _counts(g: Any) -> Counter[str]:
    return Counter(o.op for n in g.nodes for o in ([n] if n.region is None else n.region.nodes))


def bench(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    import vcompile
    from tests.models import cached_path, onnx_model, sample_input
    from vcompile.runtime.bench import time_interleaved
    exporter = "legacy" if cached_path(name, "legacy").exists() else "dynamo"
    path = str(onnx_model(name, exporter))
    x = sample_input(name)
    row: dict[str, Any] = {"model": name, "exporter": exporter}
    fns, ref = {}, None
    for layout in LAYOUTS:
        t0 = time.perf_counter()
        m = vcompile.compile(path, target="host", opt_level=2, attn_layout=layout)
        y = m(x)[0]
        ref = y if ref is None else ref
        err = float(np.abs(y - ref).max() / max(float(np.abs(ref).max()), 1e-12))
        c = _counts(m.graph)
        row[layout] = {"kernels": m.meta["kernels"], "transpose": c["transpose"], "reshape": c["reshape"],
                       "conv2d": c["conv2d"], "linear": c["linear"], "attention": c["attention"],
                       "compile_s": round(time.perf_counter() - t0, 1),
                       "max_rel_err_vs_bnc": err}
        fns[layout] = (lambda m=m: m(x))
    res = time_interleaved(fns, args.warmup, args.repeat, args.max_seconds)
    for k, t in res.items():
        row[k].update(median_ms=round(t.median_ms, 3), p90_ms=round(t.p90_ms, 3), runs=t.runs)
    return row


def write(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    meta = {"threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": os.getloadavg()}
    out = HERE / f"attention_to_conv{args.tag}.json"
    out.write_text(json.dumps({**meta, "results": rows}, indent=1) + "\n")
    lines = [f"# attention-to-conv on the CPU ({time.strftime('%Y-%m-%d %H:%M')}, {args.threads} thread(s), "
             "batch 1, -O2, host target; median ms, interleaved; no GPU here, so no CUDA column)", "",
             "| model | transposes bnc / bchw / ane | kernels bnc / bchw / ane | bnc ms | bchw ms | ane ms "
             "| bnc / bchw | bnc / ane | faster with the pass? | max rel err |",
             "| --- | --- | --- |" + " ---: |" * 5 + " --- | ---: |"]
    for r in rows:
        b, c, a = (r[k] for k in LAYOUTS)
        sp_c, sp_a = b["median_ms"] / c["median_ms"], b["median_ms"] / a["median_ms"]
        best = max(sp_c, sp_a)
        verdict = (f"yes ({'bchw' if sp_c >= sp_a else 'ane'})" if best >= args.threshold else
                   "no" if best < 1 / args.threshold else "level")
        lines.append(f"| {r['model']} | {b['transpose']} / {c['transpose']} / {a['transpose']} | "
                     f"{b['kernels']} / {c['kernels']} / {a['kernels']} | {b['median_ms']:.2f} | "
                     f"{c['median_ms']:.2f} | {a['median_ms']:.2f} | {sp_c:.2f}x | {sp_a:.2f}x | {verdict} | "
                     f"{max(c['max_rel_err_vs_bnc'], a['max_rel_err_vs_bnc']):.1e} |")
    lines += ["", f"'yes' needs a speedup of at least {args.threshold:.2f}x (the machine's run-to-run "
              "noise); "
              "'no' is a slowdown beyond it. Transposes are counted inside the fused kernels."]
    (HERE / f"attention_to_conv{args.tag}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    timing_args(p, ",".join(MODELS), warmup=3, repeat=20, max_seconds=20.0)
    p.add_argument("--threshold", type=float, default=1.05)
    p.add_argument("--tag", default="", help="suffix of the output files (a confirming rerun)")
    args = p.parse_args(argv)
    return each_model(args, bench, lambda r: "  ".join(
        f"{k} {r[k]['median_ms']:.2f} ms ({r[k]['transpose']} transposes, "
        f"err {r[k]['max_rel_err_vs_bnc']:.1e})" for k in LAYOUTS), write)


if __name__ == "__main__":
    sys.exit(main())
