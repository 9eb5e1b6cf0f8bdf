"""`vcompile MODEL.onnx --target host -O2 -o model.so [--input name=1x3x224x224] [--int8]`.

Compiles a model to one shared library. The output is written under a temporary name
and renamed into place, so a failed compile never leaves a partial or stale file.
"""
from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the model: MODEL.onnx, timm:NAME or pkg.module:factory")
    p.add_argument("-o", "--output", help="output library (default: MODEL with .so)")
    add_target_arguments(p)
    p.add_argument("--input", action="append", metavar="NAME=DIMS",
                   help="fix an input's shape, e.g. input=1x3x224x224 (repeatable)")
    p.add_argument("-p", "--passes", metavar="A,B{K=V},C",
                   help="explicit pipeline instead of the -O list, pass options in braces: "
                        "'canonicalize,attention-to-conv{layout=bchw},fuse'")
    p.add_argument("--bundle", metavar="DIR",
                   help="also write a deployment bundle: library, TVM runtime libraries, C++ "
                        "runner (source, CMakeLists, cross-built binary) and manifest.json")
    from vcompile.cli.passopts import add_attn_layout_argument
    add_attn_layout_argument(p)
    add_tuning_arguments(p)
    from vcompile.cli.quantopts import add_quant_arguments
    add_quant_arguments(p)


def add_tuning_arguments(p: argparse.ArgumentParser, trials_flag: str = "--tune-trials") -> None:
    p.add_argument(trials_flag, dest="tune_trials", type=int, metavar="N",
                   help="MetaSchedule candidates to measure at -O3 (default 512; 0: use the "
                        "database only)")
    p.add_argument("--tuning-db", metavar="DIR",
                   help="tuning database directory (default ~/.cache/vcompile/tuning, or "
                        "$VCOMPILE_TUNING_DB)")


def add_target_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="host", help="named target (see `vcompile targets`)")
    p.add_argument("--mcpu", help="override the target's CPU (validated: see `vcompile targets`)")
    p.add_argument("--arch", help="CUDA targets: the GPU arch, e.g. sm_80, sm_87, sm_90")
    p.add_argument("--api-level", type=int, help="Android targets: the API level (default 24)")
    p.add_argument("-O", dest="opt_level", default="2", choices=["0", "1", "2", "3"],
                   help="optimization level (default 2)")


def main(args: argparse.Namespace) -> int:
    from vcompile.cli.options import compile_options
    from vcompile.cli.progress import steps
    from vcompile.cli.quantopts import check_args, one_line_warnings
    from vcompile.codegen import targets
    from vcompile.planner import plan
    out = args.output or os.path.splitext(args.model)[0] + ".so"
    # bad options and missing toolchains fail before any import of the model
    check_args(args)
    p = plan(compile_options(args))
    targets.require_toolchain(args.target)
    with one_line_warnings(), steps(f"compiling {args.model} for {args.target}") as say:
        from vcompile.api import compile_plan
        m = compile_plan(args.model, p, progress=say)
        say("exporting")
        m.export(out)
        if args.bundle:
            say("writing the bundle")
            from vcompile.codegen.deploy.bundle import write_bundle
            report = write_bundle(out, args.bundle)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")
    if args.bundle:
        print(f"wrote bundle {args.bundle}: {report}")
    return 0
