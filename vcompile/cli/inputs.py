"""`--input NAME=DIMS`, the one parser of input specs for every subcommand.

    parse_input_spec("x=1x3x224x224")  =>  ("x", (1, 3, 224, 224))
    parse_input_spec("x=Nx3x224x224")  =>  ("x", ("N", 3, 224, 224))   a symbolic dim
"""
from __future__ import annotations

from vcompile.errors import VcompileError
from vcompile.ir.types import Dim

SPEC_HELP = "NAME=DIMS with DIMS like 1x3x224x224 (a dim may be a name such as N)"


def parse_input_spec(spec: str) -> tuple[str, tuple[Dim, ...]]:
    """'x=1x3x224x224' -> ('x', (1, 3, 224, 224)); a non-numeric dim stays a symbol."""
    name, eq, dims_text = spec.partition("=")
    name = name.strip()
    if not eq or not name or not dims_text.strip():
        raise VcompileError(f"bad --input {spec!r}: expected {SPEC_HELP}")
    dims: list[Dim] = []
    for d in dims_text.replace(",", "x").split("x"):  # NOTE: so a symbol cannot contain "x"
        d = d.strip()
        if d.isdigit():
            dims.append(int(d))
        elif d.isidentifier():
            dims.append(d)
        else:
            raise VcompileError(f"bad --input {spec!r}: dim {d!r} is neither a size nor a name; "
                                f"expected {SPEC_HELP}")
    return name, tuple(dims)


def parse_input_specs(specs: list[str] | None) -> dict[str, tuple[Dim, ...]] | None:
    if not specs:
        return None
    shapes: dict[str, tuple[Dim, ...]] = {}
    for spec in specs:
        name, dims = parse_input_spec(spec)
        if name in shapes:
            raise VcompileError(f"--input {name} is given twice")
        shapes[name] = dims
    return shapes
