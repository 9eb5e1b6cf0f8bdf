"""`vcompile MODEL.onnx --target host -O2 -o model.so [--input name=1x3x224x224] [--int8]`.

Compiles a model to one shared library. The output is written under a temporary name
and renamed into place, so a failed compile never leaves a partial or stale file.
"""
from __future__ import annotations

import argparse
import os

from vcompile.errors import VcompileError


def parse_input_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]]:
    """`name=1x3x224x224` (repeatable) -> {name: (1, 3, 224, 224)}."""
    out: dict[str, tuple[int, ...]] = {}
    for spec in specs or []:
        name, sep, dims = spec.partition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
        except ValueError:
            shape = None  # type: ignore[assignment]
        if not sep or not name or shape is None or any(d < 0 for d in shape):
            raise VcompileError(f"bad --input {spec!r}: expected NAME=DIMS such as input=1x3x224x224")
        out[name] = shape
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the model: MODEL.onnx, timm:NAME or pkg.module:factory")
    p.add_argument("-o", "--output", help="output library (default: MODEL with .so)")
    add_target_arguments(p)
    p.add_argument("--input", action="append", metavar="NAME=DIMS",
                   help="fix an input's shape, e.g. input=1x3x224x224 (repeatable)")
    p.add_argument("-p", "--passes", help="explicit comma-separated pass list instead of -O")
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
    from vcompile.cli.progress import steps
    out = args.output or os.path.splitext(args.model)[0] + ".so"
    from vcompile.codegen import targets
    # bad names and missing toolchains fail before any import of the model
    targets.check_options(args.target, args.mcpu, args.arch, args.api_level)
    targets.require_toolchain(args.target)
    from vcompile.cli.quantopts import compile_kwargs, one_line_warnings
    quant = compile_kwargs(args)
    with one_line_warnings(), steps(f"compiling {args.model} for {args.target}") as say:
        from vcompile.api import compile as compile_model
        m = compile_model(args.model, target=args.target, opt_level=int(args.opt_level),
                          input_shapes=parse_input_shapes(args.input), passes=args.passes,
                          mcpu=args.mcpu, progress=say, tune_trials=args.tune_trials,
                          tuning_db=args.tuning_db, arch=args.arch, api_level=args.api_level,
                          attn_layout=args.attn_layout, **quant)
        say("exporting")
        m.export(out)
        if args.bundle:
            say("writing the bundle")
            from vcompile.codegen.bundle import write_bundle
            report = write_bundle(out, args.bundle)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")
    if args.bundle:
        print(f"wrote bundle {args.bundle}: {report}")
    return 0
