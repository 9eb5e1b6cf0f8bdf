"""The `vcompile` command, shaped like a C compiler.

    vcompile MODEL.onnx --target host -O2 -o model.so     (default action: compile)
    vcompile inspect MODEL.onnx [--stats]
    vcompile run model.so --input x.npy
    vcompile bench MODEL.onnx --target host --against onnxruntime
    vcompile targets
    vcompile --version

Each subcommand is a module in this package with `add_arguments(parser)` and
`main(args) -> int`; the default action is the `compile` module. A
`VcompileError` prints as one line and exits with status 1.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vcompile.errors import VcompileError

# name -> (module in vcompile.cli, one-line help). Modules not yet written are skipped.
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("inspect", "print a model's IR, its statistics or pass results"),
    "compile": ("compile", "compile a model to a shared library (the default action)"),
    "run": ("run", "run a compiled library on .npy inputs"),
    "bench": ("bench", "time a model against other runtimes"),
    "targets": ("targets", "list the named targets and what each needs"),
    "tune": ("tune", "tune a model's kernels without building"),
    "profile": ("profile", "time every kernel of a compiled model"),
    "report": ("report", "write one HTML page: graphs, passes, kernel profile, benchmark"),
}


def _load(name: str):  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module(f"vcompile.cli.{COMMANDS[name][0]}")
    except ModuleNotFoundError as e:
        if e.name == f"vcompile.cli.{COMMANDS[name][0]}":
            return None
        raise


def version_text() -> str:
    """`vcompile 0.1.0 (TVM 0.27.0.post1)`: from the package metadata, without importing TVM."""
    from importlib import metadata

    from vcompile.version import __version__
    tvm = "not installed"
    for dist in ("apache-tvm", "tvm"):
        try:
            tvm = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    return f"vcompile {__version__} (TVM {tvm})"


class _Version(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:  # noqa: A002
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vcompile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action=_Version, help="print vcompile's and TVM's versions")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        mod = _load(name)
        if mod is not None:
            p = sub.add_parser(name, help=help_text, description=help_text)
            mod.add_arguments(p)
            p.add_argument("-q", "--quiet", action="store_true",
                           help="no progress display on the terminal")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        args_list.insert(0, "compile")  # `vcompile MODEL ...` compiles, as cc does
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    from vcompile.cli import progress
    progress.QUIET = bool(args.quiet)
    try:
        return int(_load(args.command).main(args) or 0)
    except VcompileError as e:
        print(f"vcompile: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vcompile: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
