"""The report page: a `collect.Report` rendered through `templates/report.html.j2`.

    render_html(report) => one self-contained HTML string: inline CSS, inline SVGs
    (graphs from Graphviz, charts from `charts.hbars`), no script, nothing fetched.

Section ids (what the browser test checks): summary, pipeline, graphs, fusion, profile,
benchmark, environment, and `error` when a stage failed.
"""
from __future__ import annotations

import datetime
import platform
from importlib import metadata
from typing import Any

from vcompile.report.charts import Bar, hbars
from vcompile.report.collect import Report
from vcompile.report.draw import COLORS

SECTIONS = ("summary", "pipeline", "graphs", "fusion", "profile", "benchmark", "environment")
PACKAGES = ("vcompile", "apache-tvm", "apache-tvm-ffi", "onnx", "onnxruntime", "torch", "timm",
            "numpy", "graphviz", "jinja2")
RUNTIME_COLORS = {"vcompile": "#2a9d8f", "onnxruntime": "#8ecae6", "PyTorch": "#e76f51"}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                        platform.processor() or platform.machine())
    except OSError:
        return platform.machine()


def profile_charts(rep: Report, top: int = 25) -> list[str]:
    p = rep.profile
    if p is None:
        return []
    total = p.kernel_s or 1.0
    by_class = [Bar(r["class"], r["seconds"] * 1e3, COLORS.get(r["class"], "#fff"),
                    f"{r['seconds'] * 1e3:.2f} ms  {100 * r['share']:.1f}%  {r['kernels']} kernels")
                for r in p.aggregate("cls")]
    slow = sorted(p.kernels, key=lambda k: -k.seconds)[:top]
    kernels = [Bar(k.symbol, k.seconds * 1e3, COLORS.get(k.cls, "#fff"),
                   f"{k.seconds * 1e3:.3f} ms  {100 * k.seconds / total:.1f}%"
                   + (f"  {k.gflops_per_s:.0f} GFLOP/s" if k.gflops_per_s else "")) for k in slow]
    return [hbars(by_class, "time by op class"),
            hbars(kernels, f"the {len(slow)} slowest of {len(p.kernels)} kernels")]


def bench_chart(rep: Report) -> str:
    rows = rep.bench.get("rows", [])
    if not rows:
        return ""
    return hbars([Bar(r["runtime"], r["median_ms"], RUNTIME_COLORS.get(r["runtime"], "#ccc"),
                      f"{r['median_ms']:.2f} ms  ({r['ratio']:.2f}x vcompile)") for r in rows],
                 f"median latency, batch 1, {rep.bench['threads']} thread(s)", label_width=120)


def context(rep: Report) -> dict[str, Any]:
    from vcompile.report.kernels import CLASSES
    counts: dict[str, int] = {}
    for k in rep.kernels:
        counts[k["class"]] = counts.get(k["class"], 0) + 1
    return {"r": rep, "o": rep.options, "sections": SECTIONS, "versions": versions(),
            "cpu": cpu_name(), "now": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "profile_charts": profile_charts(rep), "bench_chart": bench_chart(rep),
            "class_counts": [(c, counts[c], COLORS[c]) for c in CLASSES if c in counts],
            "legend": list(COLORS.items()), "prof": rep.profile.to_json() if rep.profile else None,
            "fused_kernels": [k for k in rep.kernels if len(k["ops"]) > 1]}


def render_html(rep: Report) -> str:
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("vcompile.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context(rep))
