"""`vcompile report MODEL -O3 --target host -o report.html`: one self-contained HTML page.

The page holds the model summary, the pass pipeline with node counts after each pass,
the graph before and after (Graphviz SVGs), the fusion groups, the per-kernel profile
as a bar chart, the benchmark against onnxruntime and PyTorch, the target, versions and
the command to reproduce (`vcompile.report.collect` gathers it, `report.html` renders
it). A model that fails to compile still gets its page, showing the stages it passed
and the error; the command then exits with status 1.
"""
from __future__ import annotations

import argparse
import os
import shlex

from vcompile.cli.compile import add_target_arguments, add_tuning_arguments
from vcompile.errors import VcompileError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="MODEL.onnx, IR text (.vir), timm:NAME or pkg.module:factory")
    p.add_argument("-o", "--output", required=True, metavar="FILE.html", help="the page to write")
    add_target_arguments(p)
    add_tuning_arguments(p)
    p.add_argument("--input", action="append", metavar="NAME=DIMS", help="fix an input's shape")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every runtime")
    p.add_argument("--rounds", type=int, default=20, help="timed inferences for profile and benchmark")
    p.add_argument("--pytorch", metavar="SPEC", help="timm:NAME or pkg.module:factory: the same "
                   "model in PyTorch, benchmarked beside (implied for timm: and factory models)")
    p.add_argument("-p", "--passes", metavar="A,B{K=V},C", help="explicit pipeline instead of -O")
    from vcompile.cli.passopts import add_attn_layout_argument
    from vcompile.cli.quantopts import add_quant_arguments
    add_attn_layout_argument(p)
    add_quant_arguments(p)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this page, flags in a fixed order."""
    parts = ["vcompile", "report", args.model, f"-O{args.opt_level}", "--target", args.target]
    for flag, val in (("--mcpu", args.mcpu), ("--arch", args.arch), ("--api-level", args.api_level),
                      ("--passes", args.passes), ("--attn-layout", args.attn_layout),
                      ("--tune-trials", args.tune_trials), ("--tuning-db", args.tuning_db),
                      ("--threads", args.threads), ("--rounds", args.rounds), ("--pytorch", args.pytorch)):
        if val is not None:
            parts += [flag, str(val)]
    if args.int8:
        parts += ["--int8"] + (["--calib", args.calib] if args.calib else [])
        if args.calib_method != "minmax":
            parts += ["--calib-method", args.calib_method, "--percentile", str(args.percentile)]
    for spec in args.input or []:
        parts += ["--input", spec]
    return shlex.join(parts + ["-o", args.output])


def main(args: argparse.Namespace) -> int:
    if not args.output.endswith((".html", ".htm")):
        raise VcompileError(f"--output {args.output}: the report is an HTML page; name it FILE.html")
    if args.threads < 1 or args.rounds < 1:
        raise VcompileError("--threads and --rounds must be 1 or more")
    from vcompile.cli.options import compile_options
    from vcompile.cli.quantopts import check_args
    check_args(args)
    options = compile_options(args)  # bad options fail here, before the page is begun
    # NOTE: PyTorch's idle OpenMP threads otherwise spin after each eager run and take the
    # cores from the next contender (vcompile measured 34 ms instead of 21 on resnet18).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from vcompile.runtime.bench import set_threads
    set_threads(args.threads)  # before TVM's thread pool exists
    from vcompile.cli.progress import steps
    from vcompile.files import write_atomic
    from vcompile.report.collect import Options, collect
    from vcompile.report.html import render_html
    opts = Options(args.model, options, args.threads, args.rounds, args.pytorch, command_line(args))
    with steps(f"report on {args.model}") as say:
        rep = collect(opts, say)
        say("writing the page")
        write_atomic(args.output, render_html(rep))
    if rep.error:
        raise VcompileError(f"stage {rep.failed_stage} failed: {rep.error} "
                            f"(the report {args.output} shows how far it got)")
    print(f"wrote {args.output}")
    return 0
