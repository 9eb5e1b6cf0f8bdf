"""`vcompile inspect MODEL`: print a model's IR, or its statistics with --stats.

    vcompile inspect model.onnx                          the IR text, one op per line
    vcompile inspect model.onnx --stats                  op counts, parameters, GFLOPs
    vcompile inspect model.onnx --dtypes --int8          ops by dtype, float ops left in the
                                                         integer region (0 at --int8)
    vcompile inspect model.onnx --input x=1x3x256x256    fix an input's shape
    vcompile inspect block.vir -o out.vir                IR text in (constants seeded), file out

The command runs in three steps: load the model (the ONNX frontend, or the IR parser
for `.vir` text), run the passes asked for (see `_run_passes`), print the result.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vcompile.cli.inputs import SPEC_HELP, parse_input_specs
from vcompile.errors import VcompileError
from vcompile.frontends.loader import load_model
from vcompile.ir.graph import Graph


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an ONNX model (.onnx), IR text (.vir), timm:NAME or "
                   "pkg.module:factory")
    p.add_argument("--input", action="append", metavar="NAME=DIMS",
                   help=f"set an input's shape: {SPEC_HELP}; repeat for more inputs")
    p.add_argument("--stats", action="store_true",
                   help="print op counts, parameter count and FLOPs instead of the IR")
    p.add_argument("--fusion", action="store_true",
                   help="print the fusion groups (one kernel each) and the kernel count "
                   "instead of the IR; fuses the graph first if the passes did not")
    p.add_argument("--draw", type=Path, metavar="FILE",
                   help="draw the graph with Graphviz into FILE (.svg, .png or .dot): a box per "
                   "op, fusion groups as clusters, colours by op class")
    p.add_argument("--draw-collapse", choices=("auto", "blocks", "none"), default="auto",
                   help="fold repeated blocks into one box: always, never, or (auto) when the "
                   f"drawing would have more than {250} boxes")
    p.add_argument("--dtypes", action="store_true",
                   help="print the ops by output dtype and the number of float ops inside the "
                   "integer region (0 after --int8) instead of the IR")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write to FILE instead of standard output")
    # ==== PASSES HOOK (arguments): pass options (-O, -p, --verify-each) are added here. ====
    from vcompile.cli.passopts import add_pass_arguments
    add_pass_arguments(p)
    from vcompile.cli.quantopts import add_quant_arguments
    add_quant_arguments(p)


def _run_passes(args: argparse.Namespace, g: Graph) -> Graph:
    # ==== PASSES HOOK (run): apply the passes that `args` asks for (none: g unchanged). ====
    # the plan of the flags; --int8: rewrites, calibration and QDQ, lower-integer, fuse
    from vcompile.cli.passopts import apply_passes
    return apply_passes(args, g)


def _render(args: argparse.Namespace, g: Graph) -> str:
    if args.dtypes:
        from vcompile.ir.dtypes import format_census
        return format_census(g)
    if args.fusion:
        from vcompile.passes.fuse import format_groups
        return format_groups(g)
    if args.stats:
        from vcompile.ir.stats import format_stats, graph_stats
        return format_stats(graph_stats(g))
    from vcompile.ir.printer import print_graph
    return print_graph(g)


def _write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `vcompile inspect m.onnx | head` closes the pipe early; that is not an error.
        # Point stdout at /dev/null so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _draw(args: argparse.Namespace, g: Graph) -> int:
    from vcompile.report.draw import count_boxes, render
    boxes, clusters = render(g, args.draw, collapse=args.draw_collapse)
    groups = sum(1 for n in g.nodes if n.region is not None)
    print(f"wrote {args.draw}: {count_boxes(g)} ops and {groups} fusion groups, drawn as "
          f"{boxes} boxes and {clusters} clusters (collapse: {args.draw_collapse})")
    return 0


def main(args: argparse.Namespace) -> int:
    from vcompile.cli.options import one_line_warnings
    from vcompile.cli.progress import steps
    from vcompile.cli.quantopts import check_args
    check_args(args)
    with one_line_warnings(), steps(f"inspecting {args.model}") as say:
        say("importing")
        g = load_model(args.model, parse_input_specs(args.input))   # 1. load
        say("running passes")
        g = _run_passes(args, g)                                    # 2. passes
    if args.draw is not None:
        return _draw(args, g)
    text = _render(args, g)                                     # 3. print
    if args.output is None:
        _write_stdout(text)
        return 0
    try:
        args.output.write_text(text)
    except OSError as e:
        raise VcompileError(f"cannot write {args.output}: {e.strerror or e}") from e
    return 0
