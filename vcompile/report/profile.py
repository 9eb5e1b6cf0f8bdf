"""A per-kernel profile: timed VM calls matched to the kernel table, aggregated.

    profile_model(model, inputs) => Profile(kernels=[KernelTime(...), ...], e2e_s, ...)
    profile.to_json()            => the dict `vcompile profile --json` writes
    format_profile(profile)      => the terminal tables (by class, by fusion group, top kernels)

Calls are matched to rows of `kernels.kernel_table` in order: a kernel named
`fused_<kernel>_<i>[_w]` is row `node == i` when that row is still ahead of the
cursor; otherwise (TVM shares one function between identical groups, under the first
group's name) the next row with the same kernel name. Calls that match no row (kernels
TVM formed itself at -O0/-O1) keep TVM's name, a class guessed from it and no FLOPs.
VM builtins (allocation, views, tuples) are summed as `runtime`.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from vcompile.report.kernels import CLASSES, name_class

_FUSED = re.compile(r"^fused_(?P<name>.+)_(?P<node>\d+)(?:_w)?$")


@dataclass(frozen=True)
class KernelTime:
    symbol: str               # the PrimFunc the VM called
    kernel: str               # fusion group name (or TVM's name when unmatched)
    cls: str                  # op class
    ops: tuple[str, ...]      # IR ops computed, empty when unmatched
    node: int | None          # index of the IR node (fused group) in the compiled graph
    flops: int | None
    seconds: float

    @property
    def gflops_per_s(self) -> float | None:
        return self.flops / self.seconds / 1e9 if self.flops is not None and self.seconds > 0 else None


@dataclass(frozen=True)
class Profile:
    kernels: list[KernelTime]
    runtime_s: float          # VM builtins: allocation, views, tuples
    e2e_s: float              # median end-to-end latency, not instrumented
    instrumented_e2e_s: float
    rounds: int
    info: dict[str, Any]      # model, target, threads, opt level, fusion
    per_run_s: float = 0.0    # median over runs of the run's kernel time (see runtime.profile)
    graph_flops: int = 0      # FLOPs of the whole graph (the kernel table's sum)

    @property
    def kernel_s(self) -> float:
        return sum(k.seconds for k in self.kernels)

    @property
    def flops(self) -> int:
        """The graph's FLOPs (also when TVM formed the kernels and they match no row)."""
        return self.graph_flops or sum(k.flops or 0 for k in self.kernels)

    def aggregate(self, key: str) -> list[dict[str, Any]]:
        """Rows summed by "cls" (op class) or "kernel" (fusion group name), slowest first."""
        rows: dict[str, dict[str, Any]] = {}
        for k in self.kernels:
            r = rows.setdefault(getattr(k, key), {key if key != "cls" else "class": getattr(k, key),
                                                  "kernels": 0, "seconds": 0.0, "flops": 0})
            r["kernels"] += 1
            r["seconds"] += k.seconds
            r["flops"] += k.flops or 0
        total = self.kernel_s or 1.0
        for r in rows.values():
            r["share"] = r["seconds"] / total
            r["gflops_per_s"] = r["flops"] / r["seconds"] / 1e9 if r["seconds"] > 0 and r["flops"] else None
        return sorted(rows.values(), key=lambda r: -r["seconds"])

    def to_json(self) -> dict[str, Any]:
        total = self.kernel_s or 1.0
        kernels = [{**{k: v for k, v in asdict(kt).items() if k != "cls"}, "class": kt.cls,
                    "ops": list(kt.ops), "ms": kt.seconds * 1e3, "share": kt.seconds / total,
                    "gflops_per_s": kt.gflops_per_s} for kt in self.kernels]
        return {"info": self.info, "rounds": self.rounds, "e2e_ms": self.e2e_s * 1e3,
                "instrumented_e2e_ms": self.instrumented_e2e_s * 1e3,
                "kernel_ms": self.kernel_s * 1e3, "kernel_ms_per_run": self.per_run_s * 1e3,
                "runtime_ms": self.runtime_s * 1e3,
                "flops": self.flops, "gflops_per_s_e2e": self.flops / self.e2e_s / 1e9,
                "gflops_per_s_kernels": self.flops / self.per_run_s / 1e9 if self.per_run_s else None,
                "by_class": self.aggregate("cls"), "by_group": self.aggregate("kernel"),
                "kernels": kernels}


def match_calls(calls: list[tuple[str, float]], table: list[dict[str, Any]]
                ) -> tuple[list[KernelTime], float]:
    """Kernel rows for the timed calls (see the module docstring); returns them and the
    builtins' total seconds."""
    out: list[KernelTime] = []
    runtime = 0.0
    pos = 0
    for symbol, secs in calls:
        if symbol.startswith("vm.builtin."):
            runtime += secs
            continue
        j = None
        m = _FUSED.match(symbol)
        if m is not None:
            node, name = int(m["node"]), m["name"]
            j = next((i for i in range(pos, len(table)) if table[i]["node"] == node), None)
            if j is None:
                j = next((i for i in range(pos, len(table)) if table[i]["kernel"] == name), None)
        if j is None:
            out.append(KernelTime(symbol, symbol.removeprefix("fused_"), name_class(symbol), (),
                                  None, None, secs))
            continue
        row, pos = table[j], j + 1
        out.append(KernelTime(symbol, row["kernel"], row["class"], tuple(row["ops"]), row["node"],
                              int(row["flops"]), secs))
    return out, runtime


def profile_model(model: Any, inputs: list[Any], rounds: int = 20, warmup: int = 3,
                  info: dict[str, Any] | None = None) -> Profile:
    """Time every kernel of a `CompiledModel` (see `runtime.profile.time_calls`)."""
    from vcompile.report.kernels import kernel_table
    from vcompile.runtime.profile import time_calls
    table = model.meta.get("kernel_table")
    if table is None and model.graph is not None:
        table = kernel_table(model.graph)
    times = time_calls(model, inputs, rounds=rounds, warmup=warmup)
    # only our fusion groups are named after graph nodes; TVM's own kernels (-O0/-O1, or
    # FuseOps with --disable-pass fuse) keep their names and a guessed class
    matchable = table if model.meta.get("fusion") == "vcompile" else None
    kernels, runtime = match_calls(times.calls, matchable or [])
    meta = model.meta
    base = {"graph": meta.get("graph"), "target": meta.get("target"),
            "opt_level": meta.get("opt_level"), "fusion": meta.get("fusion"),
            "kernels_launched": meta.get("kernels")}
    return Profile(kernels, runtime, times.e2e_s, times.instrumented_e2e_s, times.rounds,
                   {**base, **(info or {})}, times.kernel_sum_s,
                   sum(int(r["flops"]) for r in table or []))


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_profile(p: Profile, top: int = 15) -> list[Any]:
    """rich renderables: a summary line, the class table, the group table, the top kernels."""
    from rich.table import Table
    total = p.kernel_s or 1.0
    by_class = Table("class", "kernels", "ms", "%", "GFLOP", "GFLOP/s", title="by op class")
    for r in p.aggregate("cls"):
        by_class.add_row(r["class"], str(r["kernels"]), f"{r['seconds'] * 1e3:.3f}",
                         f"{100 * r['share']:.1f}", f"{r['flops'] / 1e9:.3f}", _fmt(r["gflops_per_s"], ".1f"))
    by_group = Table("fusion group", "class", "kernels", "ms", "%", "GFLOP/s", title="by fusion group")
    for r in p.aggregate("kernel")[:top]:
        cls = next(k.cls for k in p.kernels if k.kernel == r["kernel"])
        by_group.add_row(r["kernel"], cls, str(r["kernels"]), f"{r['seconds'] * 1e3:.3f}",
                         f"{100 * r['share']:.1f}", _fmt(r["gflops_per_s"], ".1f"))
    slow = Table("#", "kernel", "class", "ms", "%", "MFLOP", "GFLOP/s", title=f"top {top} kernels")
    order = sorted(range(len(p.kernels)), key=lambda i: -p.kernels[i].seconds)[:top]
    for i in order:
        k = p.kernels[i]
        slow.add_row(str(i), k.symbol, k.cls, f"{k.seconds * 1e3:.3f}", f"{100 * k.seconds / total:.1f}",
                     _fmt(k.flops / 1e6 if k.flops is not None else None, ".1f"),
                     _fmt(k.gflops_per_s, ".1f"))
    summary = (f"{len(p.kernels)} kernels: {p.per_run_s * 1e3:.3f} ms per run in kernels (sum of "
               f"per-kernel medians {p.kernel_s * 1e3:.3f} ms) + {p.runtime_s * 1e3:.3f} ms in VM "
               f"builtins; end to end {p.e2e_s * 1e3:.3f} ms (medians of {p.rounds} runs; kernels = "
               f"{100 * p.per_run_s / p.e2e_s:.0f}% of it); {p.flops / 1e9:.3f} GFLOP -> "
               f"{p.flops / p.e2e_s / 1e9:.1f} GFLOP/s end to end")
    return [by_class, by_group, slow, summary]


__all__ = ["CLASSES", "KernelTime", "Profile", "format_profile", "match_calls", "profile_model"]
