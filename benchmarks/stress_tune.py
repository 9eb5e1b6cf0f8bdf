"""K concurrent `vcompile tune` runs into one tuning database, R rounds (issue 25, item 2).

    .venv/bin/python benchmarks/stress_tune.py [--procs 4] [--rounds 10] [--trials 4]
                                               [--measure real|instant] [--db DIR]

Each round writes K tiny models (x[4,k] @ W[k,8] -> relu; k new each round, so every
round adds kernels, while the relu kernel is shared by all), starts K `vcompile tune`
processes on them at once into ONE database (kept across rounds), then, in a fresh
process, checks that the database loads (every record naming a workload that exists)
and that an -O3 build of each of the round's models from it (no trials) matches the
interpreter. Prints one line per round and the count of good rounds, with the CPU model.

`--measure instant` swaps MetaSchedule's builder and runner for ones that report a
made-up time (and loads only the CPU tensor intrinsics), so a round takes seconds of
search instead of minutes of compiling candidates; the records are still real schedules
that -O3 builds. `main(argv)` returns 0 when every round was good.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.suite_loop import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def write_model(k: int, where: Path) -> Path:
    """x[4,k] @ W[k,8] -> relu as an ONNX file (the tune and the check read the same weights)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = np.random.default_rng(k).standard_normal((k, 8)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        f"mm{k}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, k])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 8])], [numpy_helper.from_array(w, "w")])
    path = where / f"mm{k}.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _instant_tune(argv: list[str]) -> int:
    """`vcompile tune ARGV` with an instant builder and runner (a child of --measure instant)."""
    import os
    import types

    import numpy as np
    import tvm.s_tir
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    import vcompile.codegen.tune as T
    from vcompile.cli import main as cli
    pkg = types.ModuleType("tvm.s_tir.tensor_intrin")  # only the CPU intrinsics: 5 s, not 30+
    pkg.__path__ = [os.path.join(os.path.dirname(tvm.s_tir.__file__), "tensor_intrin")]
    sys.modules[pkg.__name__] = pkg
    import tvm.s_tir.tensor_intrin.arm_cpu
    import tvm.s_tir.tensor_intrin.x86  # noqa: F401

    @derived_object
    class Builder(ms.builder.PyBuilder):
        def build(self, build_inputs: list[Any]) -> list[Any]:
            return [ms.builder.BuilderResult(tempfile.mkdtemp(prefix="vcompile-stress-") + "/a.so", None)
                    for _ in build_inputs]

    @derived_object
    class Future(ms.runner.PyRunnerFuture):
        def __init__(self, secs: float) -> None:
            super().__init__()
            self.secs = secs

        def done(self) -> bool:
            return True

        def result(self) -> Any:
            return ms.runner.RunnerResult([self.secs], None)

    rng = np.random.default_rng()

    @derived_object
    class Runner(ms.runner.PyRunner):
        def run(self, runner_inputs: list[Any]) -> list[Any]:
            return [Future(float(rng.uniform(1e-6, 1e-5))) for _ in runner_inputs]

    T._builder_runner = lambda *a, **kw: (Builder(), Runner())
    return cli(["tune", *argv])


def _check(db: str, models: list[str]) -> int:
    """In a fresh process: the database loads and -O3 of each model matches the interpreter.
    Prints one line per failure; returns how many models built and matched."""
    import json

    import numpy as np

    import vcompile
    from vcompile.api import to_graph
    from vcompile.codegen.cpu.database import open_db
    from vcompile.ir import interp
    try:
        n = len(open_db(db).get_all_tuning_records())
        wls = len(Path(db, "workloads.json").read_text().splitlines())
        bad = [r for r in map(json.loads, Path(db, "records.json").read_text().splitlines())
               if not 0 <= r[0] < wls]
        assert not bad and n > 0, f"{len(bad)} records name a missing workload; {n} records"
    except Exception as e:  # noqa: BLE001
        print(f"database: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return 0
    ok = 0
    for path in models:
        try:
            g = to_graph(path)
            k = int(Path(path).stem[2:])
            x = np.random.default_rng(1).standard_normal((4, k)).astype(np.float32)
            m = vcompile.compile(g, opt_level=3, tune_trials=0, tuning_db=db)
            np.testing.assert_allclose(m(x)[0], interp.run(g, x)[0], rtol=1e-4, atol=1e-4)
            ok += 1
        except Exception as e:  # noqa: BLE001
            print(f"{path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    print(f"ok {ok}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=4, help="concurrent tune processes (K, default 4)")
    ap.add_argument("--rounds", type=int, default=10, help="rounds (R, default 10)")
    ap.add_argument("--trials", type=int, default=4, help="--trials of each tune (default 4)")
    ap.add_argument("--measure", choices=("real", "instant"), default="real",
                    help="real: MetaSchedule's local builder and runner; instant: made-up times")
    ap.add_argument("--db", help="the database directory (default: a new temporary one)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per tune process")
    ap.add_argument("--child-tune", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ap.add_argument("--child-check", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_tune is not None:
        return _instant_tune(args.child_tune)
    if args.child_check is not None:
        return 0 if _check(args.child_check[0], args.child_check[1:]) == len(args.child_check) - 1 else 1
    work = Path(tempfile.mkdtemp(prefix="vcompile-stress-tune-"))
    db = Path(args.db) if args.db else work / "db"
    py = sys.executable
    print(f"# {args.procs} concurrent `vcompile tune` x {args.rounds} rounds, {args.trials} trials, "
          f"measure {args.measure}; CPU: {cpu_model()}, {__import__('os').cpu_count()} cores; db {db}",
          flush=True)
    good = 0
    for rnd in range(args.rounds):
        ks = [8 + 4 * (rnd * args.procs + i) for i in range(args.procs)]
        models = [str(write_model(k, work)) for k in ks]
        start = time.monotonic()
        tune_argv = ["--trials", str(args.trials), "--tuning-db", str(db)]
        cmds = [[py, __file__, "--child-tune", m, *tune_argv] if args.measure == "instant" else
                [py, "-m", "vcompile", "tune", m, *tune_argv] for m in models]
        procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for c in cmds]
        rcs, errs = [], []
        for p in procs:
            try:
                _, err = p.communicate(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            rcs.append(p.returncode)
            errs.extend(line for line in err.splitlines() if "error" in line.lower()
                        or "Traceback" in line or "warning" in line.lower())
        tune_s = time.monotonic() - start
        chk = subprocess.run([py, __file__, "--child-check", str(db), *models], cwd=ROOT,
                             capture_output=True, text=True)
        lines = (chk.stdout + chk.stderr).strip().splitlines()
        ok = chk.returncode == 0
        good += ok
        print(f"round {rnd + 1}: tune exit codes {rcs} in {tune_s:.0f} s; "
              f"database loads and -O3 of {len(models)} models matches: {'yes' if ok else 'NO'}"
              + ("" if ok else f" ({'; '.join(lines[-3:])})")
              + (f"; stderr: {'; '.join(errs[:3])}" if errs else ""), flush=True)
    print(f"good rounds: {good} of {args.rounds}")
    return 0 if good == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
