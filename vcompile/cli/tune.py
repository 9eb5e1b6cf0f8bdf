"""`vcompile tune MODEL --target host --trials N [--tuning-db DIR] [--rpc-tracker H:P --rpc-key K]`.

Tunes the model's kernels with MetaSchedule and stores the records in the tuning
database, without building a library. Kernels already in the database are not tuned
again; a later `vcompile MODEL -O3` with the same database builds from the records.
Several runs may tune into one database at once (it is locked while records are added);
a database line torn by a killed run is dropped with a one-line warning.
"""
from __future__ import annotations

import argparse

from vcompile.errors import VcompileError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from vcompile.cli.compile import add_tuning_arguments
    p.add_argument("model", help="the model: MODEL.onnx, timm:NAME or pkg.module:factory")
    p.add_argument("--target", default="host", help="a CPU target that runs here (default host)")
    p.add_argument("--mcpu", help="override the target's CPU (validated against LLVM)")
    p.add_argument("--input", action="append", metavar="NAME=DIMS",
                   help="fix an input's shape, e.g. input=1x3x224x224 (repeatable)")
    add_tuning_arguments(p, "--trials")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT",
                   help="measure candidates on a device behind this TVM RPC tracker (MetaSchedule's "
                        "RPC runner) instead of this machine")
    p.add_argument("--rpc-key", metavar="KEY", help="the device key boards registered with the tracker")


def main(args: argparse.Namespace) -> int:
    from vcompile.cli.options import compile_options, one_line_warnings
    from vcompile.cli.progress import steps
    from vcompile.codegen import targets
    from vcompile.planner import plan
    spec = targets.spec(args.target)
    rpc = None
    if args.rpc_tracker or args.rpc_key:
        from vcompile.runtime.remote import parse_addr
        if not (args.rpc_tracker and args.rpc_key):
            raise VcompileError("tuning over RPC needs both --rpc-tracker HOST:PORT and --rpc-key KEY")
        rpc = (*parse_addr(args.rpc_tracker, "--rpc-tracker"), args.rpc_key)
    elif not spec.runs_here:
        raise VcompileError(f"target {args.target} does not run on this machine, so its kernels "
                            f"cannot be measured here; tune on the device, or measure there with "
                            f"--rpc-tracker HOST:PORT --rpc-key KEY")
    trials = 512 if args.tune_trials is None else args.tune_trials
    if trials < 1:
        raise VcompileError(f"--trials must be 1 or more, got {trials}")
    from vcompile.runtime.tvm_import import import_tvm
    import_tvm()
    from vcompile.api import run_passes, to_graph
    from vcompile.codegen import tune as T
    # the -O3 plan: its passes make the kernels the -O3 build will look up
    p = plan(compile_options(args, opt_level=3, tune_trials=trials))
    db = p.codegen.tuning_db
    with one_line_warnings(), steps(f"tuning {args.model} for {args.target}") as say:
        say("importing")
        g, _ = run_passes(to_graph(args.model, p.options.input_shapes), p)
        report = T.tune(g, args.target, trials=trials, db_dir=db, mcpu=args.mcpu, progress=say,
                        rpc=rpc, fusion=p.codegen.fusion)
    print(f"{report.summary()}; database {db}")
    for name in sorted(report.best_ms, key=lambda k: -report.best_ms[k]):
        rule = report.rule_ms.get(name)
        print(f"  {name:40s} {report.best_ms[name]:9.3f} ms" +
              (f"  (rule-based {rule:.3f} ms)" if rule is not None else ""))
    return 0
