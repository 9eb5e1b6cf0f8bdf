"""Progress display for long CLI steps (import, passes, tuning, build, benchmark).

    with steps("compiling m.onnx", quiet=args.quiet) as say:
        say("importing")                     # a step of unknown length: a spinner
        say("pass fuse", 16, 17)             # a counted step: a bar, 16/17

On a terminal, standard error shows the title, the current step, a bar when the step
is counted, and the elapsed time, redrawn in place and cleared at the end. Nothing is
shown with `quiet` (default: the CLI's -q/--quiet, `QUIET`) or when standard error is
not a terminal (pipes, logs, tests).
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Protocol


class Say(Protocol):
    def __call__(self, step: str, done: int | None = None, total: int | None = None) -> None: ...


QUIET = False  # the CLI's -q/--quiet, set by `cli.main` for every subcommand


def _silent(step: str, done: int | None = None, total: int | None = None) -> None:
    return None


@contextlib.contextmanager
def steps(title: str, quiet: bool | None = None) -> Iterator[Say]:
    """Yields `say(step, done=None, total=None)` (see the module docstring); while it is
    open, every pass pipeline run reports its passes as a counted step."""
    if (QUIET if quiet is None else quiet) or not sys.stderr.isatty():
        yield _silent
        return
    import rich.progress as rp
    from rich.console import Console

    from vcompile.passes.infra.manager import observe_passes
    progress = rp.Progress(rp.SpinnerColumn(), rp.TextColumn("{task.description}"), rp.BarColumn(),
                           rp.MofNCompleteColumn(), rp.TimeElapsedColumn(),
                           console=Console(stderr=True), transient=True)
    with progress:
        task = progress.add_task(title, total=None)

        def say(step: str, done: int | None = None, total: int | None = None) -> None:
            progress.update(task, description=f"{title}: {step}", completed=done or 0, total=total,
                            refresh=True)
        with observe_passes(lambda name, i, n: say(f"pass {name}", i, n)):
            yield say
