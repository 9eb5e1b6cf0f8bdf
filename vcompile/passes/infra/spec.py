"""Pass pipelines as text: `canonicalize,attention-to-conv{layout=bchw},fuse`.

A `PassSpec` is a registered pass's name with the values of its keyword-only options.
The text form is MLIR's and xDSL's: passes separated by commas, each optionally
followed by `{key=value,...}`; keys are the option parameters' names in kebab-case
(snake_case is accepted too). Values are parsed by the parameter's annotation (int,
float, bool as true/false, str, or a `Literal` of allowed strings), so a bad option
fails in one line before any pass runs. `format_pipeline(parse_pipeline(s))` prints
the canonical text, and parsing that text gives the same specs back.

    specs = parse_pipeline("dce,attention-to-conv{layout=ane}")
    specs[1].kwargs()  =>  {"layout": "ane"}
    format_pipeline(specs)  =>  "dce,attention-to-conv{layout=ane}"
"""
from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vcompile.errors import VcompileError
from vcompile.passes.infra.registry import get_pass

_KEY = re.compile(r"[a-z][a-z0-9]*([-_][a-z0-9]+)*")


class PipelineError(VcompileError, ValueError):
    """Pipeline text that does not parse, or an option the pass does not take."""


@dataclass(frozen=True, slots=True)
class PassSpec:
    name: str
    options: tuple[tuple[str, Any], ...] = ()  # (snake_case parameter, value), sorted by key

    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)

    def with_options(self, **options: Any) -> PassSpec:
        """This pass with `options` set (checked against the pass's parameters)."""
        merged = {**self.kwargs(), **options}
        return make_spec(self.name, merged)

    def __str__(self) -> str:
        if not self.options:
            return self.name
        body = ",".join(f"{k.replace('_', '-')}={_format_value(v)}" for k, v in self.options)
        return f"{self.name}{{{body}}}"


def option_types(name: str) -> dict[str, tuple[Any, Any]]:
    """{parameter: (annotation, default)} of the keyword-only options of pass `name`."""
    fn = get_pass(name)
    hints = typing.get_type_hints(fn)
    return {p.name: (hints.get(p.name, Any), p.default)
            for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def make_spec(name: str, options: dict[str, Any] | None = None) -> PassSpec:
    """A checked spec: the pass exists and takes each option, each value of its type."""
    types = option_types(name)
    checked = []
    for key, value in (options or {}).items():
        param = key.replace("-", "_")
        if param not in types:
            takes = ", ".join(k.replace("_", "-") for k in types) or "no options"
            raise PipelineError(f"pass {name!r} has no option {key!r}; it takes {takes}")
        checked.append((param, _coerce(name, param, value, types[param][0])))
    return PassSpec(name, tuple(sorted(checked)))


def parse_pipeline(spec: str | PassSpec | Iterable[str | PassSpec]) -> tuple[PassSpec, ...]:
    """Pipeline text, or a sequence of names/specs/texts, as checked `PassSpec`s."""
    if isinstance(spec, PassSpec):
        return (spec,)
    if isinstance(spec, str):
        return tuple(_parse_item(item) for item in _split_top(spec))
    out: list[PassSpec] = []
    for item in spec:
        out.extend(parse_pipeline(item))
    return tuple(out)


def format_pipeline(specs: Iterable[PassSpec]) -> str:
    return ",".join(str(s) for s in specs)


def _split_top(text: str) -> list[str]:
    """Split on the commas outside braces; empty items (a trailing comma) are dropped."""
    items: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise PipelineError(f"pipeline {text!r}: '}}' without '{{'")
        if ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise PipelineError(f"pipeline {text!r}: '{{' without '}}'")
    items.append("".join(cur).strip())
    return [i for i in items if i]


def _parse_item(item: str) -> PassSpec:
    name, brace, rest = item.partition("{")
    name = name.strip()
    if not brace:
        get_pass(name)
        return PassSpec(name)
    get_pass(name)
    if not rest.endswith("}"):
        raise PipelineError(f"pass options {item!r}: text after the closing '}}'")
    options: dict[str, Any] = {}
    for pair in (p.strip() for p in rest[:-1].split(",")):
        if not pair:
            continue
        key, eq, value = (s.strip() for s in pair.partition("="))
        if not eq or not _KEY.fullmatch(key):
            raise PipelineError(f"pass option {pair!r} of {name!r}: expected key=value, as in "
                                "attention-to-conv{layout=bchw}")
        options[key] = value
    return make_spec(name, options)


def _format_value(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _coerce(name: str, key: str, value: Any, hint: Any) -> Any:
    """`value` (text from a pipeline, or a Python value) as the parameter's type."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    literal = typing.get_origin(hint) is typing.Literal
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return _coerce(name, key, value, args[0])  # X | None
    if literal:
        if value not in typing.get_args(hint):
            raise PipelineError(f"pass {name!r}: option {key.replace('_', '-')}={value} is not one of "
                                f"{', '.join(map(str, typing.get_args(hint)))}")
        return value
    kinds: dict[Any, Any] = {bool: _to_bool, int: int, float: float, str: str}
    if hint not in kinds:
        return value
    try:
        return kinds[hint](value)
    except (TypeError, ValueError):
        raise PipelineError(f"pass {name!r}: option {key.replace('_', '-')}={value!r} is not "
                            f"a {hint.__name__}") from None


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("true", "1", "yes"):
        return True
    if str(v).lower() in ("false", "0", "no"):
        return False
    raise ValueError(v)


__all__ = ["PassSpec", "PipelineError", "format_pipeline", "make_spec", "option_types",
           "parse_pipeline"]
