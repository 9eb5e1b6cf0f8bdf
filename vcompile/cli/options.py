"""Command-line arguments -> `vcompile.CompileOptions`: one function for every subcommand.

Each subcommand declares the flags it takes (`cli.compile.add_target_arguments`,
`passopts.add_pass_arguments`, `quantopts.add_quant_arguments`, ...); whatever it has,
`compile_options(args)` reads into the one frozen options object, whose `plan` runs.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vcompile.errors import VcompileWarning
from vcompile.planner import CompileOptions


def split_names(items: list[str] | None) -> list[str]:
    """`--disable-pass a,b --disable-pass c` -> [a, b, c]."""
    return [s.strip() for item in items or [] for s in item.split(",") if s.strip()]


def compile_options(args: argparse.Namespace, default_level: int | None = 2,
                    **overrides: Any) -> CompileOptions:
    """The options `args` asks for; flags a subcommand lacks keep their defaults."""
    from vcompile.cli.inputs import parse_input_specs
    get = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    level = get("opt_level")
    if level is None:
        level = default_level
    quant: dict[str, Any] = {}
    if get("int8", False):
        quant = {"quantize": "int8", "calib": get("calib"),
                 "calib_method": get("calib_method", "minmax"), "percentile": get("percentile", 99.99)}
    fields: dict[str, Any] = dict(
        target=get("target", "host"), mcpu=get("mcpu"), arch=get("arch"), api_level=get("api_level"),
        opt_level=None if level is None else int(level), passes=get("passes"),
        disabled_passes=tuple(split_names(get("disable_pass"))), attn_layout=get("attn_layout"),
        tune_trials=get("tune_trials"), tuning_db=get("tuning_db"),
        input_shapes=parse_input_specs(get("input")), **quant)
    fields.update(overrides)
    return CompileOptions(**fields)


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Our warnings (`errors.VcompileWarning`: synthetic calibration data, a repaired
    tuning database) print as `vcompile: warning: ...`, one line, like our errors."""
    with warnings.catch_warnings():  # restores showwarning on exit
        warnings.simplefilter("always", VcompileWarning)
        default = warnings.showwarning

        def show(message: Any, category: type[Warning], *rest: Any, **kw: Any) -> None:
            if issubclass(category, VcompileWarning):
                print(f"vcompile: warning: {message}", file=sys.stderr)
            else:
                default(message, category, *rest, **kw)
        warnings.showwarning = show
        yield
