"""Pass options shared by `vcompile inspect` and `vcompile compile`.

    -O0..-O3                  a pipeline from vcompile.passes.pipeline
    -p/--passes a,b,c         an explicit pass list (instead of -O)
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
from pathlib import Path

from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph


def add_pass_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("passes")
    g.add_argument("-O", dest="opt_level", type=int, choices=range(4), metavar="LEVEL",
                   help="optimization level 0..3 (-O2): a fixed pass pipeline")
    g.add_argument("-p", "--passes", metavar="A,B,C", help="run exactly these passes, in order")
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


def _split(items: list[str]) -> list[str]:
    return [s.strip() for item in items for s in item.split(",") if s.strip()]


def pass_list(args: argparse.Namespace, default_level: int | None = None) -> list[str]:
    """The passes `args` asks for; checks every name."""
    from vcompile.passes import pipeline
    from vcompile.passes.registry import parse_pass_list
    if getattr(args, "passes", None) and getattr(args, "opt_level", None) is not None:
        raise VcompileError("give either -O<level> or --passes, not both")
    if getattr(args, "passes", None):
        names = parse_pass_list(args.passes)
    elif getattr(args, "opt_level", None) is not None:
        names = list(pipeline(args.opt_level))
    elif default_level is not None:
        names = list(pipeline(default_level))
    else:
        names = []
    from vcompile.passes.pipeline import with_attn_layout
    names = with_attn_layout(names, getattr(args, "attn_layout", None))
    disabled = parse_pass_list(_split(getattr(args, "disable_pass", [])))
    parse_pass_list(_split(getattr(args, "print_after", [])))
    return [n for n in names if n not in disabled]


def apply_passes(args: argparse.Namespace, graph: Graph, default_level: int | None = None) -> Graph:
    """Run the passes `args` asks for on `graph`, with the requested diagnostics."""
    from vcompile.passes.attention_to_conv import attn_layout
    names = pass_list(args, default_level)
    with attn_layout(getattr(args, "attn_layout", None) or "bchw"):
        return _apply(args, graph, names)


def _apply(args: argparse.Namespace, graph: Graph, names: list[str]) -> Graph:
    from vcompile.passes import PassManager, bisect_numerics, format_stats
    if not names:
        return graph
    if getattr(args, "bisect_numerics", False):
        res = bisect_numerics(graph, names, tol=args.bisect_tol, verify_each=True)
        print(res.line, file=sys.stderr)
        if res.first_bad is not None:
            return res.graph
        graph_out = res.graph
        return graph_out
    after = "all" if getattr(args, "print_after_all", False) else frozenset(
        _split(getattr(args, "print_after", [])))
    stats: list = [] if getattr(args, "pass_stats", False) else None  # type: ignore[type-arg]
    pm = PassManager(verify_each=getattr(args, "verify_each", False), print_after=after,
                     print_to=getattr(args, "print_dir", None), stats=stats)
    out = pm.run(graph, names)
    if stats is not None:
        print(format_stats(stats), file=sys.stderr)
    return out
