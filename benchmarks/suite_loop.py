"""What the interleaved suite benchmarks share: timing options, thread setup and the
per-model loop that prints a line and rewrites the table after every model (so an
interrupted run still leaves a table of what it measured), and the CPU's name."""
from __future__ import annotations

import argparse
import os
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def cpu_model() -> str:
    """/proc/cpuinfo's model name: every table names the CPU it ran on."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else platform.machine()


def timing_args(p: argparse.ArgumentParser, models: str, warmup: int = 2, repeat: int = 10,
                max_seconds: float = 30.0) -> None:
    p.add_argument("--models", default=models)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--repeat", type=int, default=repeat)
    p.add_argument("--max-seconds", type=float, default=max_seconds)


def each_model(args: argparse.Namespace, bench: Callable[[str, argparse.Namespace], Row],
               line: Callable[[Row], str], write: Callable[[list[Row], argparse.Namespace], None]) -> int:
    """bench(name, args) per model of --models, with TVM on --threads threads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from vcompile.runtime.bench import set_threads
    set_threads(args.threads)
    rows: list[Row] = []
    for name in args.models.split(","):
        print(f"[{len(rows) + 1}] {name} ...", flush=True)
        rows.append(bench(name, args))
        print("  " + line(rows[-1]), flush=True)
        write(rows, args)
    return 0
