"""`vcompile targets`: the named targets, what each needs, whether it builds and runs here."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resolve", action="store_true",
                   help="also show each buildable target's TVM target dict (imports TVM)")


def options(s: object) -> str:
    from vcompile.codegen.targets import TargetSpec
    assert isinstance(s, TargetSpec)
    out = []
    if s.cpu.mcpus or s.kind == "llvm":
        out.append(f"--mcpu (default {s.mcpu or s.cpu.mcpu or 'detected'})")
    if s.arches:
        out.append(f"--arch {'|'.join(s.arches)} (default {s.arch})")
    if s.cpu.api_level is not None:
        out.append(f"--api-level (default {s.cpu.api_level})")
    return ", ".join(out)


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from vcompile.codegen import targets
    table = Table("target", "description", "options", "needs (Debian package)", "builds here",
                  "runs here", *(["tvm target"] if args.resolve else []))
    for name, s in targets.TARGETS.items():
        missing = s.missing()
        needs = ", ".join(f"{t.exe} ({t.package})" for t in s.toolchain()) or "-"
        row = [name, s.description, options(s), needs,
               "yes" if not missing else f"no (missing {', '.join(t.exe for t in missing)})",
               s.run_note()]
        if args.resolve:
            row.append(str(targets.target_dict(name)) if not missing else "-")
        table.add_row(*row)
    Console(width=200).print(table)
    return 0
