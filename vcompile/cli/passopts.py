"""Pass options shared by `vcompile inspect` and `vcompile compile`.

    -O0..-O3                  a pipeline from vcompile.passes.infra.pipeline
    -p/--passes a,b{k=v},c    an explicit pipeline (instead of -O), pass options MLIR-style
    --disable-pass x[,y]      drop passes from the list (repeatable)
    --verify-each             run the verifier after every pass
    --print-after-all         print the IR after every pass ...
    --print-after NAME        ... or after the named passes (repeatable)
    --print-dir DIR           ... into DIR/NN-pass.vir instead of stderr
    --pass-stats              per-pass time, node counts and changes, to stderr
    --bisect-numerics         interpret on seeded inputs after every pass and report
                              the first pass that changes the outputs (one line, stderr)
    --attn-layout L           bnc (transformer blocks unchanged), bchw or ane: run
                              attention-to-conv in that layout (added before fusion)
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vcompile.cli.options import compile_options as options_from_args
from vcompile.cli.options import split_names
from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph
from vcompile.passes.infra.manager import PassStat
from vcompile.passes.infra.spec import PassSpec, parse_pipeline
from vcompile.planner import CompileOptions, plan


def add_pass_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("passes")
    g.add_argument("-O", dest="opt_level", type=int, choices=range(4), metavar="LEVEL",
                   help="optimization level 0..3 (-O2): a fixed pass pipeline")
    g.add_argument("-p", "--passes", metavar="A,B{K=V},C",
                   help="run exactly these passes, in order; options in braces, e.g. "
                        "'canonicalize,attention-to-conv{layout=bchw},fuse'")
    g.add_argument("--disable-pass", action="append", default=[], metavar="NAME",
                   help="leave a pass out of the pipeline (repeatable, or comma-separated)")
    g.add_argument("--verify-each", action="store_true", help="verify the IR after every pass")
    g.add_argument("--print-after-all", action="store_true", help="print the IR after every pass")
    g.add_argument("--print-after", action="append", default=[], metavar="NAME",
                   help="print the IR after the named pass (repeatable)")
    g.add_argument("--print-dir", type=Path, metavar="DIR",
                   help="write --print-after* IR into DIR/NN-pass.vir instead of stderr")
    g.add_argument("--pass-stats", action="store_true",
                   help="print per-pass time, node counts and changes to stderr")
    g.add_argument("--bisect-numerics", action="store_true",
                   help="find the first pass whose outputs depart from the original model's")
    add_attn_layout_argument(g)
    g.add_argument("--bisect-tol", type=float, default=1e-4, metavar="TOL",
                   help="relative tolerance for --bisect-numerics (default 1e-4)")


def add_attn_layout_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    # NOTE: no argparse `choices`: a bad value gets our one-line error (exit 1), as every
    # other bad option value does.
    p.add_argument("--attn-layout", metavar="bnc|bchw|ane",
                   help="transformer block layout: bnc (unchanged), bchw (channel-first, "
                        "attention-to-conv), ane ([B,C,1,N], per-head attention)")


def compile_options(args: argparse.Namespace, default_level: int | None = None) -> CompileOptions:
    """The `CompileOptions` of `inspect`'s flags (no -O and no --passes: no passes);
    checks every pass name, --print-after's too."""
    if getattr(args, "passes", None) and getattr(args, "opt_level", None) is not None:
        raise VcompileError("give either -O<level> or --passes, not both")
    parse_pipeline(split_names(getattr(args, "print_after", [])))
    return options_from_args(args, default_level)


def pass_list(args: argparse.Namespace, default_level: int | None = None) -> list[str]:
    """The names of the passes `args` asks for, in order (the plan's pipeline)."""
    return [s.name for s in plan(compile_options(args, default_level)).passes]


def apply_passes(args: argparse.Namespace, graph: Graph, default_level: int | None = None) -> Graph:
    """Run the plan `args` asks for on `graph` (int8 too: calibration, QDQ, lowering),
    with the requested diagnostics."""
    from vcompile.api import run_passes
    p = plan(compile_options(args, default_level))
    out, _ = run_passes(graph, p, run=lambda g, specs: _apply(args, g, specs))
    return out


def _apply(args: argparse.Namespace, graph: Graph, specs: Sequence[PassSpec]) -> Graph:
    from vcompile.passes import PassManager, bisect_numerics, format_stats
    if not specs:
        return graph
    if getattr(args, "bisect_numerics", False):
        res = bisect_numerics(graph, specs, tol=args.bisect_tol, verify_each=True)
        print(res.line, file=sys.stderr)
        return res.graph
    after = "all" if getattr(args, "print_after_all", False) else frozenset(
        split_names(getattr(args, "print_after", [])))
    stats: list[PassStat] | None = [] if getattr(args, "pass_stats", False) else None
    pm = PassManager(verify_each=getattr(args, "verify_each", False), print_after=after,
                     print_to=getattr(args, "print_dir", None), stats=stats)
    out = pm.run(graph, specs)
    if stats is not None:
        print(format_stats(stats), file=sys.stderr)
    return out
