"""`vcompile bench MODEL --target arm64 --rpc HOST:PORT` (or `--rpc-tracker HOST:PORT --rpc-key KEY`).

Compiles the model for the target here, exports the library, and runs and times it on
the remote device through TVM's RPC (`runtime.remote`). The device's outputs are
compared with onnxruntime on this machine, so a wrong build shows up beside its time.
"""
from __future__ import annotations

import argparse
import os
import tempfile

from vcompile.errors import VcompileError


def main_remote(args: argparse.Namespace) -> int:
    from vcompile.api import compile_plan
    from vcompile.cli.options import compile_options
    from vcompile.cli.progress import steps
    from vcompile.codegen import targets
    from vcompile.planner import plan
    from vcompile.runtime import remote
    from vcompile.runtime.bench import max_rel_err
    from vcompile.runtime.inputs import random_inputs
    targets.check_options(args.target, args.mcpu)
    if args.rpc_key and not args.rpc_tracker:
        raise VcompileError("--rpc-key goes with --rpc-tracker HOST:PORT")
    where = args.rpc or f"{args.rpc_tracker} (key {args.rpc_key})"
    from vcompile.cli.options import one_line_warnings
    from vcompile.cli.quantopts import check_args
    check_args(args)
    p = plan(compile_options(args))
    sess = remote.connect(args.rpc, args.rpc_tracker, args.rpc_key)  # fail before compiling
    with one_line_warnings(), steps(f"compiling {args.model} for {args.target}") as say:
        m = compile_plan(args.model, p, progress=say)
    xs = random_inputs(m)
    with tempfile.TemporaryDirectory(prefix="vcompile-rpc-") as tmp:
        lib = m.export(os.path.join(tmp, "model.so"))
        with steps(f"running on {where}"):
            timing, outs = remote.run_remote(sess, lib, xs, warmup=args.warmup, repeat=args.repeat)
    print(f"{os.path.basename(args.model)} on {where} (target {args.target}): median "
          f"{timing.median_ms:.3f} ms, p90 {timing.p90_ms:.3f} ms, {timing.runs} runs")
    if str(args.model).endswith(".onnx"):
        from vcompile.runtime.bench import onnxruntime_session
        sess_ort = onnxruntime_session(args.model, args.threads)
        feed = dict(zip([i.name for i in sess_ort.get_inputs()], xs, strict=False))  # type: ignore[attr-defined]
        err = max_rel_err(outs, sess_ort.run(None, feed))  # type: ignore[attr-defined]
        print(f"max relative difference remote vs onnxruntime here: {err:.2e}")
    return 0
