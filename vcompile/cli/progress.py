"""Progress display for long CLI steps: a rich spinner on a terminal, nothing otherwise."""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def steps(title: str, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """Yields `say(step)`; shows `title: step` with a spinner and elapsed time (nothing
    when `quiet` or when standard error is not a terminal)."""
    if quiet or not sys.stderr.isatty():
        yield lambda s: None
        return
    from rich.console import Console
    console = Console(stderr=True)
    start = time.monotonic()
    with console.status(title) as status:
        def say(step: str) -> None:
            status.update(f"{title}: {step} ({time.monotonic() - start:.0f}s)")
        yield say
