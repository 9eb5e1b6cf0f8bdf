"""Tuning at -O3: MetaSchedule over a model's kernels, with a persistent database.

    tune(g, "host", trials=256, db_dir=default_db_dir()) => TuneReport(tasks, new, trials, ...)
    build(g, CodegenOptions("host", tuning_db=...))     => records applied, rules for the rest

The tasks are the PrimFuncs of the model after TVM's FuseOps/FuseTIR, in the packed
layouts `emit.tiled` chose, so the search starts from the rule-based kernels' layouts.
Before searching, each new task's rule-based schedule is measured by the same runner and
committed as a record: the database's best record for a task is therefore never slower
than the rule-based fallback, and a task the search did not improve keeps its rule.

The database (MetaSchedule's JSON files) is keyed by workload (the PrimFunc's structural
hash) and target. A task already in it is not tuned again, so a second compile of a model,
or of another model sharing kernel shapes, tunes only what is new. The search writes into
a private in-memory database; its records are added to the shared one at the end (also
when the search fails or is interrupted) by `cpu.database.commit`, under the database's
file lock, so runs tuning into one database at once do not corrupt it.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcompile.codegen.cpu.database import TuneError, commit, default_db_dir, open_db

DEFAULT_TRIALS = 512  # -O3 without --tune-trials: about 10 minutes for a small CNN on 2 cores
Progress = Callable[[str], None]


def build_without_intrinsics(mod: Any, target: Any, _params: Any) -> Any:
    """MetaSchedule's default builder minus `import tvm.s_tir.tensor_intrin`, which takes
    about 30 s in each fresh worker (mostly CUDA intrinsics) and hits the build timeout."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


@dataclass
class TuneReport:
    tasks: int = 0  # distinct kernels in the model
    new: int = 0  # not in the database before this run
    trials: int = 0  # candidates measured by the search
    seconds: float = 0.0
    best_ms: dict[str, float] = field(default_factory=dict)  # per task, after tuning
    rule_ms: dict[str, float] = field(default_factory=dict)  # per new task, rule-based
    untunable: list[str] = field(default_factory=list)  # MetaSchedule failed on these

    def summary(self) -> str:
        won = sum(1 for k, v in self.best_ms.items() if k in self.rule_ms and v < self.rule_ms[k] * 0.98)
        skipped = (f"; MetaSchedule could not search {len(self.untunable)} (kept their rules: "
                   f"{', '.join(self.untunable[:3])})" if self.untunable else "")
        return (f"{self.tasks} kernels, {self.new} new, {self.trials} trials in {self.seconds:.0f} s; "
                f"tuning beat the rule-based schedule on {won} of {len(self.rule_ms)}{skipped}")


def fused_module(g: Any, target: Any, tiles: Any, fusion: str = "tvm") -> Any:
    """The Relax module after legalization and fusion (`fusion` as the plan's codegen
    options say, `fuse` groups kept): what gets scheduled or tuned."""
    import tvm

    from vcompile.codegen.emit.relax import to_relax
    from vcompile.codegen.options import fusion_mode
    from vcompile.codegen.pipelines import fusion_passes
    from vcompile.ir.graph import io_names
    fusion = fusion_mode(g, fusion)
    mod = to_relax(g, io_names(g)[0], tiles, one_kernel_per_node=fusion == "vcompile")
    with target:
        return tvm.transform.Sequential(fusion_passes(target, fusion))(mod)


def export_aarch64(mod: Any) -> str:
    """MetaSchedule's export step for aarch64 candidates (runs in a builder worker)."""
    import tempfile

    from vcompile.codegen import targets
    path = os.path.join(tempfile.mkdtemp(prefix="vcompile-ms-"), "candidate.so")
    mod.export_library(path, fcompile=targets.fcompile("arm64"))
    return path


def _builder_runner(rpc: tuple[str, int, str] | None = None, cross: bool = False) -> tuple[Any, Any]:
    """A builder (cross-linking for aarch64 when `cross`) and a runner: this machine, or
    MetaSchedule's RPC runner on a device of key `rpc[2]` behind tracker `rpc[:2]`."""
    from tvm.s_tir import meta_schedule as ms
    builder = ms.builder.LocalBuilder(f_build=build_without_intrinsics, timeout_sec=120,
                                      f_export=export_aarch64 if cross else None)
    config = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50, enable_cpu_cache_flush=False)
    if rpc is None:
        return builder, ms.runner.LocalRunner(evaluator_config=config)
    rpc_config = ms.runner.RPCConfig(tracker_host=rpc[0], tracker_port=rpc[1], tracker_key=rpc[2],
                                     session_timeout_sec=120)
    return builder, ms.runner.RPCRunner(rpc_config=rpc_config, evaluator_config=config)


def _measure(mod: Any, target: Any, builder: Any, runner: Any) -> float | None:
    """Seconds per run of one scheduled PrimFunc module, or None if it failed."""
    from tvm.s_tir import meta_schedule as ms
    (res,) = builder.build([ms.builder.BuilderInput(mod, target)])
    if res.error_msg:
        return None
    try:
        args = ms.arg_info.ArgInfo.from_prim_func(mod["main"])
        (fut,) = runner.run([ms.runner.RunnerInput(res.artifact_path, "cpu", args)])
        out = fut.result()
    finally:
        ms.utils.remove_build_dir(res.artifact_path)
    if out.error_msg or not out.run_secs:
        return None
    return float(min(float(s) for s in out.run_secs))


def _seed_rule_records(tasks: list[Any], target: Any, tiles: Any, db: Any, builder: Any,
                       runner: Any, report: TuneReport) -> None:
    """Measure each task's rule-based schedule and commit it as a tuning record."""
    from tvm.s_tir import meta_schedule as ms

    from vcompile.codegen.cpu.schedules import schedule
    for t in tasks:
        mod = t.dispatched[0]
        try:
            sch = schedule(mod["main"], tiles)
        except Exception:  # no rule applies cleanly: the search alone decides
            continue
        secs = _measure(sch.mod, target, builder, runner)
        if secs is None:
            continue
        report.rule_ms[t.task_name] = secs * 1e3
        wl = db.commit_workload(mod)
        db.commit_tuning_record(ms.database.TuningRecord(
            sch.trace, wl, [secs], target,
            ms.arg_info.ArgInfo.from_prim_func(mod["main"])))


def _drop_unnamed_handlers(name: str) -> None:
    """MetaSchedule rebuilds its loggers with dictConfig, naming every handler already on
    its logger; a handler without a name there makes it fail with "'NoneType' object has
    no attribute 'format'" (seen once in the test suite, after other tests in the same
    process had used the logger). Such a handler could not be named in dictConfig anyway."""
    import logging
    logger = logging.getLogger(name)
    for h in list(logger.handlers):
        if h.get_name() is None:
            logger.removeHandler(h)


def tune(g: Any, target_name: str = "host", *, trials: int = DEFAULT_TRIALS,
         db_dir: str | os.PathLike[str] | None = None, mcpu: str | None = None,
         progress: Progress | None = None, seed: int = 0,
         rpc: tuple[str, int, str] | None = None, fusion: str = "tvm") -> TuneReport:
    """Tune the kernels of `g` that the database does not hold yet; returns a report.
    With `rpc` (tracker host, port, device key) candidates are measured on that device."""
    from tvm.s_tir import meta_schedule as ms

    from vcompile.codegen import targets
    from vcompile.codegen.cpu.schedules import cpu_tiles
    say = progress or (lambda s: None)
    target = targets.resolve(target_name, mcpu=mcpu)
    tiles = cpu_tiles(target)
    if tiles is None:
        raise TuneError(f"tuning is for CPU targets; {target_name} is {target.kind.name}")
    where = Path(db_dir or default_db_dir())
    db = open_db(where)  # what is tuned already (a bad database fails here, before any work)
    start = time.monotonic()
    say("extracting kernels")
    mod = fused_module(g, target, tiles, fusion)
    tasks = list(ms.relax_integration.extract_tasks(mod, target))
    report = TuneReport(tasks=len(tasks))
    new = [t for t in tasks if not db.has_workload(t.dispatched[0])]
    report.new = len(new)
    if new and trials > 0:
        # the search writes to a private database, committed to the shared one under its
        # lock at the end (also when interrupted): concurrent runs cannot interleave
        private = ms.database.MemoryDatabase(module_equality="structural")
        try:
            _search(new, target, tiles, private, trials, rpc, say, report, where, seed)
        finally:
            commit(where, private.get_all_tuning_records())
        db = open_db(where)
    for t in tasks:
        rec = db.query_tuning_record(t.dispatched[0], target, "main")
        if rec is not None and rec.run_secs:
            report.best_ms[t.task_name] = float(min(float(s) for s in rec.run_secs)) * 1e3
    report.seconds = time.monotonic() - start
    return report


def _search(new: list[Any], target: Any, tiles: Any, db: Any, trials: int,
            rpc: tuple[str, int, str] | None, say: Progress, report: TuneReport,
            db_dir: Path, seed: int) -> None:
    """Seed `db` with the rule-based schedules of the `new` tasks, then search."""
    import tvm
    from tvm.s_tir import meta_schedule as ms
    builder, runner = _builder_runner(rpc, cross="aarch64" in str(target.attrs.get("mtriple", "")))
    say(f"measuring the rule-based schedules of {len(new)} new kernels")
    _seed_rule_records(new, target, tiles, db, builder, runner, report)
    _drop_unnamed_handlers("tvm.s_tir.meta_schedule")
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        new, work_dir=str(db_dir / "logs"), seed=seed)
    contexts, weights = _searchable(contexts, weights, new, report)
    if not contexts:
        return
    cb = _ProgressCallback(trials, say, report)
    with tvm.transform.PassContext(opt_level=3):
        ms.tune.tune_tasks(
            tasks=contexts, task_weights=weights, work_dir=str(db_dir / "logs"),
            max_trials_global=trials, num_trials_per_iter=min(64, max(4, trials // max(1, len(new)))),
            builder=builder, runner=runner, database=db, cost_model="xgb",
            measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), cb],
            task_scheduler="gradient")


def _searchable(contexts: list[Any], weights: list[Any], tasks: list[Any],
                report: TuneReport) -> tuple[list[Any], list[Any]]:
    """The tune contexts whose design space MetaSchedule can generate. Its rules raise
    on some fused kernels (a grouped conv with a reshape epilogue: "requires all the
    producer(s) ... under the target loop"); one such task would end the whole search,
    so it is left out and keeps its rule-based record."""
    keep_c, keep_w = [], []
    for ctx, w, task in zip(contexts, weights, tasks, strict=True):
        try:
            ctx.generate_design_space()
        except Exception:  # noqa: BLE001  (TVM raises several error types here)
            report.untunable.append(task.task_name)
            continue
        keep_c.append(ctx)
        keep_w.append(w)
    return keep_c, keep_w


def _make_progress_callback() -> type:
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class ProgressCallback(ms.measure_callback.PyMeasureCallback):
        """Counts measured candidates and reports the best latency per task so far."""

        def __init__(self, total: int, say: Progress, report: TuneReport) -> None:
            super().__init__()
            self.total, self.say, self.report = total, say, report
            self.best: dict[int, float] = {}

        def apply(self, task_scheduler: Any, task_id: int, measure_candidates: Any,
                  builder_results: Any, runner_results: Any) -> None:
            for r in runner_results:
                if not r.error_msg and r.run_secs:
                    t = min(float(s) for s in r.run_secs) * 1e3
                    self.best[task_id] = min(self.best.get(task_id, t), t)
            self.report.trials += len(measure_candidates)
            done = min(self.report.trials, self.total)
            bar = "#" * (20 * done // max(1, self.total))
            self.say(f"tuning [{bar:<20}] {done}/{self.total} trials, task {task_id}: "
                     f"best {self.best.get(task_id, float('nan')):.3f} ms")
    return ProgressCallback


def _ProgressCallback(total: int, say: Progress, report: TuneReport) -> Any:  # noqa: N802
    return _make_progress_callback()(total, say, report)
