"""`vcompile bench MODEL.onnx --target host --against onnxruntime [--threads N]`.

Compiles the model, then times it and each contender interleaved in one process
(after warm-up, with the same thread count) and prints median and p90 latency and
each contender's ratio to vcompile. Outputs are compared too, so a fast wrong answer
shows up in the table. With `--rpc HOST:PORT` (or `--rpc-tracker HOST:PORT --rpc-key
KEY`) the library is timed on a remote device instead (see `cli.bench_remote`).
"""
from __future__ import annotations

import argparse
import os

from vcompile.cli.compile import add_target_arguments

CONTENDERS = ("onnxruntime",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the model to time (.onnx)")
    add_target_arguments(p)
    p.add_argument("--against", action="append", choices=CONTENDERS, default=None,
                   help="contender to time beside vcompile (default: onnxruntime)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every runtime")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--input", action="append", metavar="NAME=DIMS", help="fix an input's shape")
    p.add_argument("--rpc", metavar="HOST:PORT",
                   help="run and time on the device behind this TVM RPC server (tvm.exec.rpc_server)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT",
                   help="run and time on a free device of --rpc-key behind this TVM RPC tracker")
    p.add_argument("--rpc-key", metavar="KEY", help="the device key boards registered with the tracker")
    from vcompile.cli.quantopts import add_quant_arguments
    add_quant_arguments(p)


def main(args: argparse.Namespace) -> int:
    if args.rpc or args.rpc_tracker or args.rpc_key:
        from vcompile.cli.bench_remote import main_remote
        return main_remote(args)
    from vcompile.runtime.bench import onnxruntime_session, set_threads, time_interleaved
    set_threads(args.threads)  # before TVM's thread pool exists
    from vcompile.api import compile_plan
    from vcompile.cli.options import compile_options, one_line_warnings
    from vcompile.cli.progress import steps
    from vcompile.cli.quantopts import check_args
    from vcompile.planner import plan
    from vcompile.runtime.inputs import random_inputs
    check_args(args)
    p = plan(compile_options(args))
    with one_line_warnings(), steps(f"compiling {args.model}") as say:
        m = compile_plan(args.model, p, progress=say)
    xs = random_inputs(m)
    fns = {"vcompile": lambda: m(*xs)}
    sess = None
    for name in args.against or ["onnxruntime"]:
        if name == "onnxruntime":
            sess = onnxruntime_session(args.model, args.threads)
            feed = dict(zip([i.name for i in sess.get_inputs()], xs, strict=False))  # type: ignore[attr-defined]
            fns[name] = lambda s=sess, f=feed: s.run(None, f)  # type: ignore[attr-defined]
    with steps(f"timing {', '.join(fns)}") as say:
        res = time_interleaved(fns, args.warmup, args.repeat, progress=say)
    from vcompile.runtime.bench import max_rel_err
    err = max_rel_err(m(*xs), sess.run(None, feed)) if sess is not None else None  # type: ignore[attr-defined]
    _print(res, args, err, m.meta)
    return 0


def _print(res: dict, args: argparse.Namespace, err: float | None, meta: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    base = res["vcompile"].median_ms
    t = Table("runtime", "median ms", "p90 ms", "runs", "time / vcompile",
              title=f"{os.path.basename(args.model)}, {args.threads} thread(s), target {args.target}")
    for name, r in res.items():
        t.add_row(name, f"{r.median_ms:.3f}", f"{r.p90_ms:.3f}", str(r.runs), f"{r.median_ms / base:.2f}")
    Console().print(t)
    if meta.get("kernels") is not None:
        print(f"vcompile launches {meta['kernels']} kernels per inference "
              f"(fusion: {meta.get('fusion', '?')})")
    if err is not None:
        print(f"max relative difference vcompile vs onnxruntime: {err:.2e}")
