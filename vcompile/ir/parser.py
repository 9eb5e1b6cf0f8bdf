"""Parses the text form that `print_graph` writes back into a Graph.

`parse_graph(text, consts=...)` fills constants whose values the text left out,
from a dict keyed by printed name, or else from a seeded RNG (an int seed; 0 by
default), so that golden files need not carry weights. A constant inside the
region of the node defining `%f` is keyed `"f/name"` (see `printer.const_names`).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping

import numpy as np

from vcompile.errors import VcompileError
from vcompile.ir.builder import BuildError, infer_node
from vcompile.ir.graph import Graph, Node, Value
from vcompile.ir.types import TensorType

_TOKEN = re.compile(r"""\s*(?:
    (?P<val>%[A-Za-z0-9_.]+) | (?P<sym>@[A-Za-z0-9_.]+) | (?P<str>"(?:[^"\\]|\\.)*") |
    (?P<num>-?(?:inf|nan)\b|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?) |
    (?P<id>[A-Za-z_][A-Za-z0-9_]*) | (?P<punct>[()\[\]{},:=]))""", re.X)


class ParseError(VcompileError, ValueError):
    """Text that is not valid IR; the message gives the line number and the line."""


def _tokens(line: str, lineno: int) -> list[tuple[str, str]]:
    out, pos, line = [], 0, line.rstrip()
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if not m or m.end() == pos:
            raise ParseError(f"line {lineno}: unexpected text {line[pos:].strip()[:20]!r}: {line.strip()}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Line:
    """A cursor over one line's tokens."""

    def __init__(self, text: str, lineno: int) -> None:
        self.text, self.lineno, self.toks, self.i = text, lineno, _tokens(text, lineno), 0

    def fail(self, what: str) -> ParseError:
        return ParseError(f"line {self.lineno}: {what}: {self.text.strip()}")

    def peek(self) -> str:
        return self.toks[self.i][1] if self.i < len(self.toks) else ""

    def take(self, kind: str | None = None, text: str | None = None) -> str:
        if self.i >= len(self.toks):
            raise self.fail(f"expected {text or kind or 'more'}, found end of line")
        k, t = self.toks[self.i]
        if (kind and k != kind) or (text and t != text):
            raise self.fail(f"expected {text or kind}, found {t!r}")
        self.i += 1
        return t

    def accept(self, text: str) -> bool:
        if self.peek() == text:
            self.i += 1
            return True
        return False

    def done(self) -> bool:
        return self.i >= len(self.toks)

    def type(self) -> TensorType:
        dtype = self.take("id")
        self.take(text="[")
        dims: list[int | str] = []
        while not self.accept("]"):
            k, t = self.toks[self.i] if not self.done() else ("", "end of line")
            if k not in ("num", "id"):  # a symbol may lex as a number ("inf")
                raise self.fail(f"expected a dim or ']', found {t!r}")
            self.i += 1
            dims.append(int(t) if re.fullmatch(r"-?\d+", t) else t)
            self.accept(",")
        try:
            return TensorType(dtype, tuple(dims))
        except TypeError as e:
            raise self.fail(str(e)) from None

    def literal(self) -> object:
        if self.accept("["):
            items = []
            while not self.accept("]"):
                items.append(self.literal())
                self.accept(",")
            return tuple(items)
        if self.done():
            raise self.fail("expected a value, found end of line")
        k, t = self.toks[self.i]
        self.i += 1
        if k == "str":
            return json.loads(t)
        if k == "num":
            return float(t) if re.search(r"[.eEn]", t) else int(t)
        if t in ("true", "false"):
            return t == "true"
        raise self.fail(f"expected a value, found {t!r}")


class _Parser:
    def __init__(self, text: str, consts: Mapping[str, np.ndarray] | int | None) -> None:
        self.lines: Iterator[tuple[int, str]] = (
            (i + 1, ln) for i, ln in enumerate(text.splitlines())
            if ln.strip() and not ln.strip().startswith("#"))
        self.consts = consts if isinstance(consts, Mapping) else {}
        self.rng = np.random.default_rng(consts if isinstance(consts, int) else 0)
        self.prefix = ""  # "f/" while parsing the region of the node defining %f

    def next_line(self) -> _Line:
        try:
            return _Line(*next(self.lines)[::-1])
        except StopIteration:
            raise ParseError("unexpected end of text: a graph is missing its closing '}'") from None

    def graph(self, first: _Line | None = None) -> Graph:
        ln = first or self.next_line()
        ln.take(text="graph")
        name = ln.take("sym")[1:]
        ln.take(text="(")
        env: dict[str, Value] = {}
        inputs: list[Value] = []
        while not ln.accept(")"):
            n = ln.take("val")[1:]
            ln.take(text=":")
            inputs.append(self.define(env, n, ln.type(), ln))
            ln.accept(",")
        ln.take(text="{")
        nodes: list[Node] = []
        consts: dict[Value, np.ndarray] = {}
        while True:
            ln = self.next_line()
            head = ln.peek()
            if head == "const":
                self.const(ln, env, consts)
            elif head == "return":
                ln.take()
                outs = [] if ln.done() else [self.use(env, ln.take("val")[1:], ln)]
                while ln.accept(","):
                    outs.append(self.use(env, ln.take("val")[1:], ln))
                if not ln.done():
                    raise ln.fail(f"unexpected {ln.peek()!r} after the return values")
                ln = self.next_line()
                ln.take(text="}")
                return Graph(name, tuple(inputs), tuple(nodes), tuple(outs), consts)
            else:
                nodes.append(self.node(ln, env))

    def define(self, env: dict[str, Value], name: str, t: TensorType, ln: _Line) -> Value:
        if name in env:
            raise ln.fail(f"%{name} is defined twice")
        env[name] = Value(t, "" if name.isdigit() else name)
        return env[name]

    def use(self, env: dict[str, Value], name: str, ln: _Line) -> Value:
        if name not in env:
            raise ln.fail(f"%{name} is used before it is defined")
        return env[name]

    def const(self, ln: _Line, env: dict[str, Value], consts: dict[Value, np.ndarray]) -> None:
        ln.take()
        name = ln.take("val")[1:]
        ln.take(text=":")
        t = ln.type()
        if ln.accept("="):
            arr = self.inline(ln, t)  # an inline value wins over one passed in consts
        elif self.prefix + name in self.consts:
            arr = np.asarray(self.consts[self.prefix + name])  # Graph copies it if writeable
        else:
            arr = self.random(t, ln)
        if not ln.done():
            raise ln.fail(f"unexpected {ln.peek()!r} after the constant")
        if not t.matches(arr):
            raise ln.fail(f"value given for %{name} has shape {arr.shape} and dtype {arr.dtype}, not {t}")
        consts[self.define(env, name, t, ln)] = arr

    def inline(self, ln: _Line, t: TensorType) -> np.ndarray:
        lit = ln.literal()
        flat = list(_flatten(lit))
        if t.np_dtype.kind in "iub" and any(isinstance(x, float) for x in flat):
            raise ln.fail(f"float value in a constant of type {t}")
        if not t.is_static or len(flat) != t.size or (t.rank == 0) == isinstance(lit, tuple):
            raise ln.fail(f"{len(flat)} values given for a constant of type {t}")
        try:
            if any(isinstance(x, str) for x in flat):
                raise ValueError("strings are not tensor values")
            arr = np.array(flat, dtype=t.np_dtype).reshape(t.shape)  # type: ignore[arg-type]
        except (ValueError, OverflowError) as e:
            raise ln.fail(f"bad value for a constant of type {t}: {e}") from None
        arr.flags.writeable = False  # ours alone: Graph shares it instead of copying
        return arr

    def random(self, t: TensorType, ln: _Line) -> np.ndarray:
        if not t.is_static:
            raise ln.fail(f"no value given for a constant of symbolic type {t}; pass it in consts")
        if t.dtype == "bool":
            return self.rng.integers(0, 2, t.shape).astype(bool)  # type: ignore[arg-type]
        if t.np_dtype.kind in "iu":
            return self.rng.integers(0, 8, t.shape).astype(t.np_dtype)  # type: ignore[arg-type]
        return self.rng.standard_normal(t.shape).astype(t.np_dtype)  # type: ignore[arg-type]

    def node(self, ln: _Line, env: dict[str, Value]) -> Node:
        outs = [ln.take("val")[1:]]
        while ln.accept(","):
            outs.append(ln.take("val")[1:])
        ln.take(text="=")
        op = ln.take("id")
        ln.take(text="(")
        args: list[Value] = []
        while not ln.accept(")"):
            args.append(self.use(env, ln.take("val")[1:], ln))
            ln.accept(",")
        attrs: dict[str, object] = {}
        if ln.accept("{"):
            while not ln.accept("}"):
                key = ln.take("id")
                if key in attrs:
                    raise ln.fail(f"attr {key} is given twice")
                ln.take(text="=")
                attrs[key] = ln.literal()
                ln.accept(",")
        ln.take(text=":")
        types = [ln.type()]
        while ln.accept(","):
            types.append(ln.type())
        loc = ""
        if ln.accept("loc"):
            ln.take(text="(")
            loc = json.loads(ln.take("str"))
            ln.take(text=")")
        region = self.region(outs[0]) if ln.accept("{") else None
        if not ln.done():
            raise ln.fail(f"unexpected {ln.peek()!r} after the node")
        try:
            full, inferred = infer_node(op, args, attrs, region)
        except BuildError as e:
            raise ln.fail(str(e)) from None
        if len(outs) != len(types):
            raise ln.fail(f"{len(outs)} results but {len(types)} types")
        if list(inferred) != types:
            raise ln.fail(f"declared type {', '.join(map(str, types))} but {op} infers "
                          f"{', '.join(map(str, inferred))}")
        values = tuple(self.define(env, n, t, ln) for n, t in zip(outs, types, strict=True))
        return Node(op, tuple(args), values, full, loc, region)

    def region(self, owner: str) -> Graph:
        outer, self.prefix = self.prefix, f"{self.prefix}{owner}/"  # see printer.const_names
        g = self.graph()
        self.prefix = outer
        self.next_line().take(text="}")
        return g


def _flatten(lit: object) -> Iterator[object]:
    if isinstance(lit, tuple):
        for x in lit:
            yield from _flatten(x)
    else:
        yield lit


def parse_graph(text: str, consts: Mapping[str, np.ndarray] | int | None = None) -> Graph:
    """Parse IR text. Constants without inline values come from `consts` (a dict by
    name) or a seeded RNG (`consts` as an int seed; 0 when not given)."""
    p = _Parser(text, consts)
    g = p.graph()
    rest = next(p.lines, None)
    if rest is not None:
        raise ParseError(f"line {rest[0]}: text after the graph's closing brace: {rest[1].strip()}")
    return g
