"""`vcompile targets`: the named targets, what each needs, whether it builds and runs here."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resolve", action="store_true",
                   help="also show each buildable target's TVM target dict (imports TVM)")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from vcompile.codegen import targets
    table = Table("target", "description", "needs", "builds here", "runs here",
                  *(["tvm target"] if args.resolve else []))
    for name, s in targets.TARGETS.items():
        missing = s.missing()
        builds = s.implemented and not missing
        why = "not implemented" if not s.implemented else f"no (missing {', '.join(missing)})"
        row = [name, s.description, ", ".join(s.needs) or "-", "yes" if builds else why,
               "yes" if s.runs_here and builds else "no"]
        if args.resolve:
            row.append(str(targets.target_dict(name)) if builds else "-")
        table.add_row(*row)
    Console().print(table)
    return 0
