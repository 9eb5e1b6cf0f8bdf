"""The pass manager: runs a named list of passes, verifying after each.

    g = PassManager(verify_each=True).run(g, ["canonicalize", "fold-batchnorm", "dce"])

Any failure inside a pass (including a verify failure after it) is raised as
`PassError("pass 'x' failed; ran before it: a, b")`, chained from the cause, so the
user sees which pass broke and in what phase order. Options: `print_after` (a set of
pass names, or "all") writes the IR after those passes to a stream or directory;
`stats` (a list) receives one `PassStat` per pass run: time, node counts and what
the pass reported through `registry.note`.
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from vcompile.errors import VcompileError
from vcompile.ir.graph import Graph
from vcompile.ir.printer import print_graph
from vcompile.ir.verify import verify
from vcompile.passes.infra.registry import collecting, get_pass, stop_collecting
from vcompile.passes.infra.spec import PassSpec, parse_pipeline


class PassError(VcompileError, RuntimeError):
    """A pass raised, or left a graph that does not verify."""


@dataclass(frozen=True, slots=True)
class PassStat:
    name: str
    seconds: float
    changed: bool
    nodes_before: int
    nodes_after: int
    counts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        what = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items())) or (
            "changed" if self.changed else "no change")
        return (f"{self.name:<22} {self.seconds * 1e3:9.1f} ms  nodes {self.nodes_before:>5} -> "
                f"{self.nodes_after:<5} {what}")


def format_stats(stats: Sequence[PassStat]) -> str:
    total = sum(s.seconds for s in stats)
    return "\n".join([s.line() for s in stats] + [f"{'total':<22} {total * 1e3:9.1f} ms"])


# A progress display's hook: (pass name, index, count) before each pass of any pipeline
# run in this context (`cli.progress.steps` sets it, so the passes need no argument).
_OBSERVER: ContextVar[Callable[[str, int, int], None] | None] = ContextVar("pass_observer", default=None)


@contextlib.contextmanager
def observe_passes(fn: Callable[[str, int, int], None]) -> Iterator[None]:
    token = _OBSERVER.set(fn)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


@dataclass
class PassManager:
    verify_each: bool = True
    print_after: frozenset[str] | str = frozenset()  # pass names, or "all"
    print_to: TextIO | str | Path | None = None  # stream (default stderr) or a directory
    stats: list[PassStat] | None = None

    def run(self, g: Graph, passes: str | Iterable[str | PassSpec]) -> Graph:
        specs = parse_pipeline(passes)
        names = [s.name for s in specs]
        observer = _OBSERVER.get()
        for i, spec in enumerate(specs):
            if observer is not None:
                observer(spec.name, i, len(specs))
            g = self.run_one(g, spec, i, names[:i])
        return g

    def run_one(self, g: Graph, spec: PassSpec, index: int, before: list[str]) -> Graph:
        name = spec.name
        fn = get_pass(name)
        counts, token = collecting()
        t0 = time.perf_counter()
        try:
            out = fn(g, **spec.kwargs())
            if not isinstance(out, Graph):
                raise TypeError(f"pass returned {type(out).__name__}, not a Graph")
            if self.verify_each and out is not g:
                verify(out)
        except Exception as e:
            ran = ", ".join(before) or "nothing"
            raise PassError(f"pass {name!r} failed; ran before it: {ran}: "
                            f"{type(e).__name__}: {e}") from e
        finally:
            stop_collecting(token)
        if self.stats is not None:
            self.stats.append(PassStat(name, time.perf_counter() - t0, out is not g,
                                       len(g.nodes), len(out.nodes), dict(counts)))
        if self.print_after == "all" or name in self.print_after:
            self._print(out, name, index)
        return out

    def _print(self, g: Graph, name: str, index: int) -> None:
        text = print_graph(g)
        if isinstance(self.print_to, (str, Path)):
            d = Path(self.print_to)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{index + 1:02d}-{name}.vir").write_text(text)
        else:
            stream = self.print_to or sys.stderr
            stream.write(f"// ----- IR after {name} (pass {index + 1}) -----\n{text}")


def run(g: Graph, passes: str | Iterable[str | PassSpec], *, verify_each: bool = True,
        print_after: frozenset[str] | str = frozenset(), print_to: TextIO | str | Path | None = None,
        stats: list[PassStat] | None = None) -> Graph:
    """Run a pipeline: `run(g, "fold-batchnorm,attention-to-conv{layout=ane}")`, an -O tuple
    or `PassSpec`s (`vcompile.passes.infra.spec`)."""
    pm = PassManager(verify_each, print_after, print_to, stats)
    return pm.run(g, passes)
