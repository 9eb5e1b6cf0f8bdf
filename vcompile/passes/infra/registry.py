"""The pass registry: kebab-case name -> pure function `Graph -> Graph`.

    @register("fold-batchnorm")
    def fold_batchnorm(g: Graph) -> Graph: ...

    @register("attention-to-conv")
    def attention_to_conv(g: Graph, *, layout: Layout = "bchw") -> Graph: ...

Options are keyword-only parameters with defaults, typed (int, float, bool, str or a
`Literal`); pipelines set them as `attention-to-conv{layout=ane}` (`passes.infra.spec`).

A pass returns its input object itself when it changed nothing; the manager relies
on that (`is`) to tell whether a pass did anything. Passes may report what they did
with `note(what, n)`; the manager collects the counts per pass (`--pass-stats`).
"""
from __future__ import annotations

import contextvars
import inspect
import re
from collections import Counter
from collections.abc import Callable

from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph

Pass = Callable[..., Graph]  # (g, *, option=default, ...) -> Graph
PASSES: dict[str, Pass] = {}
_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_COUNTS: contextvars.ContextVar[Counter[str] | None] = contextvars.ContextVar("pass_counts",
                                                                             default=None)


class UnknownPassError(VcompileError, KeyError):
    """A pass name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(name: str, *, replace: bool = False) -> Callable[[Pass], Pass]:
    """Register `fn` under the kebab-case `name` (tests may `replace` a pass)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"pass name {name!r} must be kebab-case, e.g. 'fold-batchnorm'")

    def deco(fn: Pass) -> Pass:
        params = list(inspect.signature(fn).parameters.values())[1:]
        bad = [p.name for p in params if p.kind is not p.KEYWORD_ONLY or p.default is p.empty]
        if bad:
            raise ValueError(f"pass {name!r}: options must be keyword-only with defaults "
                             f"(`def f(g, *, {bad[0]}=...)`), got {', '.join(bad)}")
        if name in PASSES and not replace and PASSES[name] is not fn:
            raise ValueError(f"pass {name!r} is registered twice")
        PASSES[name] = fn
        return fn
    return deco


def unregister(name: str) -> None:
    PASSES.pop(name, None)


def get_pass(name: str) -> Pass:
    if name not in PASSES:
        raise UnknownPassError(f"unknown pass {name!r}; registered passes: {', '.join(sorted(PASSES))}")
    return PASSES[name]


def note(what: str, n: int = 1) -> None:
    """Count a change made by the running pass (a no-op outside the manager)."""
    c = _COUNTS.get()
    if c is not None:
        c[what] += n


def collecting() -> tuple[Counter[str], contextvars.Token[Counter[str] | None]]:
    c: Counter[str] = Counter()
    return c, _COUNTS.set(c)


def stop_collecting(token: contextvars.Token[Counter[str] | None]) -> None:
    _COUNTS.reset(token)
