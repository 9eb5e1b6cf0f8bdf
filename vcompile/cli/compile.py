"""`vcompile MODEL.onnx --target host -O2 -o model.so [--input name=1x3x224x224] [--int8]`.

Compiles a model to one shared library. The output is written under a temporary name
and renamed into place, so a failed compile never leaves a partial or stale file; SIGTERM
cleans up as Ctrl-C does. `--bundle DIR` is checked before compiling (a new or empty
directory, or an earlier vcompile bundle); `--sign KEY` writes OUTPUT.sig (and, with
--bundle, DIR/manifest.json.sig): see `codegen.deploy.signing`.
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
    p.add_argument("--sign", metavar="KEY",
                   help="sign the library (OUTPUT.sig) and the bundle's manifest with an Ed25519 "
                        "private key, PEM (openssl genpkey -algorithm ed25519 -out key.pem)")
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
    from vcompile.files import terminate_as_exit
    with terminate_as_exit():
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    from vcompile.cli.options import compile_options, one_line_warnings
    from vcompile.cli.progress import steps
    from vcompile.cli.quantopts import check_args
    from vcompile.codegen import targets
    from vcompile.planner import plan
    out = args.output or os.path.splitext(args.model)[0] + ".so"
    # bad options, keys, bundle directories and missing toolchains fail before any import of the model
    check_args(args)
    p = plan(compile_options(args))
    targets.require_toolchain(args.target)
    key = None
    if args.sign:
        from vcompile.codegen.deploy.signing import load_private_key
        key = load_private_key(args.sign)
    made = None
    if args.bundle:
        from vcompile.codegen.deploy.bundle import bundle_platform, check_destination, check_output
        bundle_platform(args.target)
        check_output(out, args.bundle)
        check_destination(args.bundle)
        made = _make_output_dir(out, args.bundle)
    try:
        with one_line_warnings(), steps(f"compiling {args.model} for {args.target}") as say:
            from vcompile.api import compile_plan
            m = compile_plan(args.model, p, progress=say)
            say("exporting")
            m.export(out)
            if key is not None:
                from vcompile.codegen.deploy.signing import sign_file
                sign_file(out, key)
            if args.bundle:
                say("writing the bundle")
                from vcompile.codegen.deploy.bundle import write_bundle
                report = write_bundle(out, args.bundle, sign=key)
    except BaseException:
        if made is not None:
            _remove_empty(made)
        raise
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)" + (f", signed: {out}.sig" if key else ""))
    if args.bundle:
        print(f"wrote bundle {args.bundle}: {report}")
    return 0


def _make_output_dir(out: str, bundle: str) -> str | None:
    """`-o DIR/lib.so --bundle DIR` with DIR new: create DIR (returned, to remove if the
    compile fails) so the library can be written into it."""
    parent = os.path.dirname(os.path.abspath(out))
    root = os.path.abspath(bundle)
    if os.path.exists(parent) or not (parent == root or parent.startswith(root + os.sep)):
        return None
    first = parent
    while not os.path.exists(os.path.dirname(first)):
        first = os.path.dirname(first)
    try:
        os.makedirs(parent)
    except OSError as e:
        from vcompile.errors import VcompileError
        raise VcompileError(f"cannot create {parent}: {e.strerror or e}") from e
    return first


def _remove_empty(top: str) -> None:
    """Remove the directories under `top` (and `top`) that a failed compile left empty."""
    for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
