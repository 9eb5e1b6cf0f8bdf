"""The stages of `collect`: each `stage_<name>(opts, report, state)` fills its part of
the report and returns a note, or ("skipped", why). `state` carries the graph and the
compiled model from one stage to the next."""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # collect runs the stages: a type-only import keeps the two acyclic
    from vcompile.report.collect import Options, Report


def _svg(g: Any) -> tuple[str, str]:
    from vcompile.report.draw import AUTO_LIMIT, count_boxes, draw, pipe
    boxes = count_boxes(g)
    svg = pipe(draw(g, "auto"), "svg").decode()
    note = f"{boxes} ops" + (f"; repeated blocks folded (more than {AUTO_LIMIT} ops)"
                             if boxes > AUTO_LIMIT else "")
    return svg[svg.find("<svg"):], note


def stage_import(opts: Options, rep: Report, state: dict[str, Any]) -> str:
    from vcompile.api import to_graph
    from vcompile.ir.stats import graph_stats
    from vcompile.ir.verify import verify
    g = verify(to_graph(opts.model, opts.compile.input_shapes))
    s = graph_stats(g)
    rep.summary = {"graph": g.name, "inputs": [f"{v.hint or 'input'}: {v.type}" for v in g.inputs],
                   "outputs": [f"{v.hint or 'output'}: {v.type}" for v in g.outputs],
                   "nodes": s.nodes, "params": s.params, "param_mib": s.param_bytes / 2**20,
                   "gflop": s.flops / 1e9, "ops": dict(sorted(s.op_counts.items(), key=lambda kv: -kv[1]))}
    rep.svg_before, note = _svg(g)
    rep.draw_note = f"before: {note}"
    state["graph"] = g
    return f"{s.nodes} ops"


def stage_passes(opts: Options, rep: Report, state: dict[str, Any]) -> str:
    from vcompile.api import run_passes
    from vcompile.passes import PassManager
    from vcompile.planner import plan
    p = state["plan"] = plan(opts.compile)
    rep.plan = p.format()
    stats: list[Any] = []
    pm = PassManager(verify_each=True, stats=stats)  # each pass shown by cli.progress
    g, names = run_passes(state["graph"], p, progress=state["say"], run=pm.run)
    rep.passes = stats
    state["graph"], state["passes"] = g, names
    return f"{len(names)} passes, {stats[0].nodes_before if stats else len(g.nodes)} -> {len(g.nodes)} nodes"


def stage_fusion(opts: Options, rep: Report, state: dict[str, Any]) -> str:
    from vcompile.report.kernels import kernel_table
    g = state["graph"]
    rep.kernels = kernel_table(g)
    rep.svg_after, note = _svg(g)
    rep.draw_note += f"; after: {note}"
    groups = sum(1 for n in g.nodes if n.region is not None)
    return f"{len(rep.kernels)} kernels, {groups} fused groups"


def stage_build(opts: Options, rep: Report, state: dict[str, Any]) -> str:
    from vcompile.api import build, tune_for
    from vcompile.codegen import targets
    from vcompile.runtime.module import CompiledModel
    g, p = state["graph"], state["plan"]
    spec = targets.spec(p.codegen.target)
    tune_for(g, p, state["say"])  # a bad database path fails here, not deep inside TVM
    ex, meta = build(g, p, state["passes"])
    db = p.codegen.tuning_db
    rep.build = {"kernels": meta.get("kernels"), "fusion": meta.get("fusion"),
                 "tvm_target": meta.get("tvm_target"), "tuning_db": str(db) if db else None}
    if spec.runs_here:
        state["model"] = CompiledModel(ex, meta, graph=g, executable=ex)
    return f"{meta.get('kernels')} kernels launched per inference"


def stage_profile(opts: Options, rep: Report, state: dict[str, Any]) -> str | tuple[str, str]:
    if "model" not in state:
        return ("skipped", f"target {opts.compile.target} does not run on this machine")
    from vcompile.report.profile import profile_model
    from vcompile.runtime.inputs import random_inputs
    m = state["model"]
    state["inputs"] = random_inputs(m)
    rep.profile = profile_model(m, state["inputs"], rounds=opts.rounds,
                                info={"model": opts.model, "threads": opts.threads})
    return f"{rep.profile.per_run_s * 1e3:.2f} ms in kernels, {rep.profile.e2e_s * 1e3:.2f} ms end to end"


def stage_benchmark(opts: Options, rep: Report, state: dict[str, Any]) -> str | tuple[str, str]:
    if "model" not in state:
        return ("skipped", f"target {opts.compile.target} does not run on this machine")
    from vcompile.runtime.bench import time_interleaved
    m, xs = state["model"], state["inputs"]
    fns: dict[str, Any] = {"vcompile": lambda: m(*xs)}
    missing = _contenders(opts, xs, fns, state)
    res = time_interleaved(fns, warmup=3, repeat=opts.rounds,
                           progress=lambda _s, i, n: state["say"](f"benchmark: {', '.join(fns)}", i, n))
    ref = m(*xs)[0]
    flops = rep.profile.flops if rep.profile is not None else 0
    rep.bench = {"rows": [{"runtime": k, "median_ms": t.median_ms, "p90_ms": t.p90_ms, "runs": t.runs,
                           "ratio": t.median_ms / res["vcompile"].median_ms,
                           "gflops_per_s": flops / t.median_ms / 1e6 if flops else None,
                           "rel_err": _rel_err(ref, state["outputs"][k]) if k != "vcompile" else None}
                          for k, t in res.items()],
                 "missing": missing, "threads": opts.threads}
    return ", ".join(f"{k} {t.median_ms:.2f} ms" for k, t in res.items())


def _contenders(opts: Options, xs: list[Any], fns: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """Adds onnxruntime (an .onnx model, or a timm model exported for it) and PyTorch
    (a timm or factory model, or --pytorch); returns why any is missing."""
    missing = []
    state["outputs"] = {}
    onnx_path = opts.model if opts.model.endswith(".onnx") else None
    torch_spec = opts.pytorch or (None if onnx_path else opts.model)
    sess: Any = None
    if onnx_path is not None:
        from vcompile.runtime.bench import onnxruntime_session
        sess = onnxruntime_session(onnx_path, opts.threads)
    elif opts.model.startswith("timm:"):
        import tempfile

        from vcompile.models import export_timm
        from vcompile.runtime.bench import onnxruntime_session
        with tempfile.TemporaryDirectory(prefix="vcompile-report-") as d:
            export_timm(opts.model.removeprefix("timm:"), os.path.join(d, "model.onnx"))
            sess = onnxruntime_session(os.path.join(d, "model.onnx"), opts.threads)
    if sess is not None:
        feed = dict(zip([i.name for i in sess.get_inputs()], xs, strict=False))
        fns["onnxruntime"] = lambda: sess.run(None, feed)
        state["outputs"]["onnxruntime"] = sess.run(None, feed)[0]
    else:
        missing.append("onnxruntime: give an .onnx model or timm:NAME")
    if torch_spec is not None and ":" in torch_spec:
        fns["PyTorch"], state["outputs"]["PyTorch"] = _torch_fn(torch_spec, xs, opts.threads)
    else:
        missing.append("PyTorch: give timm:NAME, pkg.module:factory or --pytorch SPEC")
    return missing


def _torch_fn(spec: str, xs: list[Any], threads: int) -> tuple[Any, Any]:
    import torch

    from vcompile.frontends.loader import module_from_reference
    torch.set_num_threads(threads)
    module, _ = module_from_reference(spec)
    module.eval()
    args = [torch.from_numpy(x) for x in xs]

    def run() -> Any:
        with torch.no_grad():
            return module(*args)
    out = run()
    return run, (out[0] if isinstance(out, tuple | list) else out).numpy()


def _rel_err(a: Any, b: Any) -> float:
    import numpy as np
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.abs(b).max()), 1e-12) if b.size else 1.0
    return float(np.abs(np.asarray(a, np.float64) - b).max()) / scale if b.size else math.nan
