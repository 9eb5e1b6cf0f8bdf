"""`vcompile profile ARTIFACT_OR_MODEL --target host [--json FILE]`: time every kernel.

    vcompile profile model.so                       a library written by `vcompile -o`
    vcompile profile timm:resnet18 -O2 --json p.json  compile first, then profile

Each kernel (one PrimFunc the Relax VM calls; at -O2 one fusion group) is timed inside
real inferences through the VM's instrumentation hook, interleaved with plain runs that
give the end-to-end latency (`vcompile.runtime.profile`). The terminal shows the time
by op class, by fusion group and the slowest kernels, with FLOPs, achieved GFLOP/s and
share of the total; `--json` writes every kernel for scripts.
"""
from __future__ import annotations

import argparse
import json
import os

from vcompile.cli.compile import add_target_arguments
from vcompile.errors import VcompileError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a compiled library (.so) or a model to compile first "
                   "(MODEL.onnx, timm:NAME, pkg.module:factory)")
    add_target_arguments(p)
    p.add_argument("--input", action="append", metavar="NAME=DIMS", help="fix an input's shape")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="kernel threads")
    p.add_argument("--rounds", type=int, default=20,
                   help="timed inferences (each kernel's time is its median; default 20)")
    p.add_argument("--top", type=int, default=15, help="rows of the per-kernel table (default 15)")
    p.add_argument("--json", metavar="FILE", help="also write the whole profile as JSON")


def load_or_compile(args: argparse.Namespace, say: object) -> object:
    """A `CompiledModel`: the library `args.model` names, or the model compiled."""
    if args.model.endswith(".so"):
        if not os.path.exists(args.model):
            raise VcompileError(f"{args.model}: no such file; give a library written by "
                                "`vcompile MODEL -o FILE.so` or a model to compile")
        from vcompile.runtime.module import load
        return load(args.model)
    from vcompile.api import compile_plan
    from vcompile.cli.options import compile_options
    from vcompile.planner import plan
    # profiling times the database's kernels as they are: it tunes nothing
    return compile_plan(args.model, plan(compile_options(args, tune_trials=0)),
                        progress=say)  # type: ignore[arg-type]


def main(args: argparse.Namespace) -> int:
    if args.threads < 1 or args.rounds < 1:
        raise VcompileError("--threads and --rounds must be 1 or more")
    from vcompile.runtime.bench import set_threads
    set_threads(args.threads)  # before TVM's thread pool exists
    from vcompile.cli.progress import steps
    from vcompile.report.profile import format_profile, profile_model
    from vcompile.runtime.inputs import random_inputs
    with steps(f"profiling {args.model}") as say:
        m = load_or_compile(args, say)
        say("timing kernels")
        prof = profile_model(m, random_inputs(m), rounds=args.rounds,
                             info={"model": args.model, "threads": args.threads})
    from rich.console import Console
    console = Console()
    for part in format_profile(prof, top=args.top):
        console.print(part)
    if args.json:
        from vcompile.files import write_atomic
        write_atomic(args.json, json.dumps(prof.to_json(), indent=1) + "\n")
    return 0
