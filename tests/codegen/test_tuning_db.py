"""The tuning database under concurrent writers and with damaged files.

    2 processes tune 2 graphs into 1 database at once => it loads, every record names its
        own workload, no workload twice, -O3 of each graph == interpreter
    torn last line (a killed writer)          => dropped with a warning, the rest loads
    garbage / records without their workloads => one-line TuneError naming the file and line
    records numbered by two unlocked writers  => TuneError naming the record (was "parallel_
        for_dynamic error" from every later -O3 compile)

MetaSchedule's search runs for real here, but with an instant builder and runner (a
candidate's time is made up): the records are real schedules, which -O3 then compiles
and runs, and a test takes seconds instead of minutes of compiling candidates.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vcompile.ir import interp
from vcompile.ir.builder import Builder

pytestmark = pytest.mark.tvm


def _graph(k: int) -> Any:
    """x[4,k] @ W[k,8] -> relu: the matmul differs per k, the relu kernel is shared."""
    rng = np.random.default_rng(k)
    bb = Builder(f"mm{k}")
    x = bb.input((4, k), hint="x")
    y = bb.emit("matmul", x, bb.const(rng.standard_normal((k, 8)).astype(np.float32)))
    return bb.build(bb.emit("relu", y))


def _instant_builder_runner(*_args: Any, **_kw: Any) -> tuple[Any, Any]:
    """A MetaSchedule builder and runner that build nothing and report a made-up time."""
    import tempfile

    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class Builder(ms.builder.PyBuilder):
        def build(self, build_inputs: list[Any]) -> list[Any]:
            return [ms.builder.BuilderResult(tempfile.mkdtemp(prefix="vcompile-test-") + "/a.so", None)
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

    @derived_object
    class Runner(ms.runner.PyRunner):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(0)

        def run(self, runner_inputs: list[Any]) -> list[Any]:
            return [Future(float(self.rng.uniform(1e-6, 1e-5))) for _ in runner_inputs]

    return Builder(), Runner()


def _cpu_intrinsics_only() -> None:
    """MetaSchedule's TuneContext imports `tvm.s_tir.tensor_intrin`, 30 s or more of
    TVMScript parsing (mostly CUDA); the CPU rules need only the x86 and arm ones. For this
    process only (a test's child): the package without its __init__, those two loaded."""
    import os
    import sys
    import types

    import tvm.s_tir
    pkg = types.ModuleType("tvm.s_tir.tensor_intrin")
    pkg.__path__ = [os.path.join(os.path.dirname(tvm.s_tir.__file__), "tensor_intrin")]
    sys.modules[pkg.__name__] = pkg
    import tvm.s_tir.tensor_intrin.arm_cpu
    import tvm.s_tir.tensor_intrin.x86  # noqa: F401


def _tune_child(k: int, db: str, start: Any, out: Any) -> None:
    """In a child process: tune _graph(k) into `db` with the instant builder, once every
    child has imported what it needs (`start`, a barrier, or None); puts (k, tasks, new)
    on `out`."""
    import vcompile.codegen.tune as T
    from vcompile.runtime.tvm_import import import_tvm
    import_tvm()
    _cpu_intrinsics_only()
    T._builder_runner = _instant_builder_runner
    g = _graph(k)
    if start is not None:
        start.wait(timeout=120)
    r = T.tune(g, "host", trials=4, db_dir=db)
    out.put((k, r.tasks, r.new))


def _tune_in_children(db: Path, *ks: int) -> dict[int, tuple[int, int]]:
    """Tune _graph(k) for each k into `db`, each in its own process, all at once: k ->
    (tasks, new)."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(len(ks)), ctx.Queue()
    procs = [ctx.Process(target=_tune_child, args=(k, str(db), start, out)) for k in ks]
    for p in procs:
        p.start()
    try:
        return {k: (tasks, new) for k, tasks, new in (out.get(timeout=300) for _ in procs)}
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()


def _check_o3(k: int, db: Path) -> None:
    """-O3 of _graph(k) from the database `db` matches the interpreter."""
    import vcompile
    g = _graph(k)
    x = np.random.default_rng(1).standard_normal((4, k)).astype(np.float32)
    m = vcompile.compile(g, opt_level=3, tune_trials=0, tuning_db=str(db))
    (want,) = interp.run(g, x)
    (got,) = m(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding the records of _graph(16)."""
    d = tmp_path_factory.mktemp("tuned") / "db"
    _tune_in_children(d, 16)
    assert len(_lines(d / "records.json")) >= 3
    return d


def _copy(tuned: Path, tmp_path: Path) -> Path:
    d = tmp_path / "db"
    shutil.copytree(tuned, d, ignore=shutil.ignore_patterns("logs", ".lock"))
    return d


def test_concurrent_tunes_share_one_database(tmp_path: Path) -> None:
    """Two processes tune different graphs into one empty database at the same moment.
    Each used to number its first workload 0, so the database no longer loaded."""
    db = tmp_path / "db"
    results = _tune_in_children(db, 16, 24)
    assert all(new == tasks > 0 for tasks, new in results.values())  # both found it empty
    from vcompile.codegen.cpu.database import open_db
    wls, recs = _lines(db / "workloads.json"), _lines(db / "records.json")
    assert len(open_db(db).get_all_tuning_records()) == len(recs)  # was "parallel_for_dynamic error"
    assert all(0 <= r[0] < len(wls) for r in recs) and {r[0] for r in recs} == set(range(len(wls)))
    assert len({w[1] for w in wls}) == len(wls)  # the relu kernel both share: stored once
    assert len(wls) < sum(tasks for tasks, _ in results.values())
    for k in (16, 24):
        _check_o3(k, db)
    from vcompile.codegen.tune import tune
    again = tune(_graph(24), "host", trials=4, db_dir=db)
    assert (again.tasks, again.new) == (results[24][0], 0)  # all there: nothing new to tune


def test_torn_last_lines_are_dropped_with_a_warning(tuned: Path, tmp_path: Path) -> None:
    """A process killed while appending leaves an unterminated last line: dropped, the
    file repaired, the rest loads and builds."""
    from vcompile.codegen.cpu.database import TuningDatabaseWarning, open_db
    d = _copy(tuned, tmp_path)
    n = len(_lines(d / "records.json"))
    (d / "records.json").write_bytes((d / "records.json").read_bytes()[:-40])
    with open(d / "workloads.json", "ab") as f:  # a workload no record uses yet
        f.write(b'["1234","+VMAAAAAAAB7Cg')
    with pytest.warns(TuningDatabaseWarning) as seen:
        db = open_db(d)
    said = " ".join(str(w.message) for w in seen)
    for name in ("records.json", "workloads.json"):
        assert f"{d / name}: dropped its incomplete last line" in said
    assert len(db.get_all_tuning_records()) == n - 1
    assert len(_lines(d / "records.json")) == n - 1  # repaired on disk
    assert (d / "workloads.json").read_bytes().endswith(b"\n")
    _check_o3(16, d)


@pytest.mark.parametrize(("damage", "message"), [
    ("garbage", r"records\.json is corrupt \(line 1 is not JSON\); move it away or pass --tuning-db DIR"),
    ("garbage_middle", r"records\.json is corrupt \(line 2 is not JSON\)"),
    ("wrong_shape", r"workloads\.json is corrupt \(line 1 is not a workload entry\)"),
    ("empty_workloads",
     r"records\.json is corrupt \(record 1 refers to workload \d, and .*workloads\.json has 0\)"),
    ("renumbered", r"records\.json is corrupt \(record \d+ does not apply to workload 0, as when two tuning "
                   r"runs wrote it at once\)"),
])
def test_damaged_database_is_named(tuned: Path, tmp_path: Path, damage: str, message: str) -> None:
    from vcompile.codegen.cpu.database import TuneError, open_db
    d = _copy(tuned, tmp_path)
    recs = (d / "records.json").read_bytes().splitlines(keepends=True)
    if damage == "garbage":
        (d / "records.json").write_bytes(bytes(range(7, 200)) + b"\n")
    elif damage == "garbage_middle":
        (d / "records.json").write_bytes(recs[0] + b"}{ not json\n" + b"".join(recs[1:]))
    elif damage == "wrong_shape":
        (d / "workloads.json").write_bytes(b'{"a": 1}\n')
    elif damage == "empty_workloads":
        (d / "workloads.json").write_bytes(b"")
    else:  # what two unlocked writers left: every record numbered 0
        (d / "records.json").write_bytes(b"".join(b"[0" + r[r.index(b","):] for r in recs))
    with pytest.raises(TuneError, match=message) as e:
        open_db(d)
    assert "\n" not in str(e.value) and str(d) in str(e.value)


def test_empty_blank_and_unterminated_lines_load(tuned: Path, tmp_path: Path) -> None:
    """Empty files are an empty database; blank lines (on which MetaSchedule crashed) are
    dropped; a whole last line without its newline is kept (and the newline added)."""
    from vcompile.codegen.cpu.database import open_db
    d = tmp_path / "empty"
    d.mkdir()
    (d / "workloads.json").write_bytes(b"")
    (d / "records.json").write_bytes(b"")
    assert len(open_db(d).get_all_tuning_records()) == 0
    d = _copy(tuned, tmp_path)
    n = len(_lines(d / "records.json"))
    data = (d / "records.json").read_bytes()
    (d / "records.json").write_bytes(b"\n" + data[:-1].replace(b"\n", b"\n  \n", 1))
    assert len(open_db(d).get_all_tuning_records()) == n
    assert (d / "records.json").read_bytes() == data


def test_cli_names_the_damaged_file(tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vcompile.cli import main
    from vcompile.ir.printer import print_graph
    d = _copy(tuned, tmp_path)
    (d / "records.json").write_bytes(b"oops\n")
    model = tmp_path / "m.vir"
    model.write_text(print_graph(_graph(16)))
    for argv in (["tune", str(model), "--trials", "4", "--tuning-db", str(d)],
                 [str(model), "-O3", "--tune-trials", "0", "--tuning-db", str(d),
                  "-o", str(tmp_path / "m.so")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(f"vcompile: error: tuning database {d / 'records.json'} is corrupt (line 1")


def test_commit_from_threads(tuned: Path, tmp_path: Path) -> None:
    """The lock holds between threads of one process too (one descriptor each): 4 threads
    committing the same records at once add their workloads once and every record."""
    import threading

    from vcompile.codegen.cpu.database import commit, open_db
    recs = list(open_db(tuned).get_all_tuning_records())
    d = tmp_path / "db"
    threads = [threading.Thread(target=commit, args=(d, recs)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(_lines(d / "workloads.json")) == len(_lines(tuned / "workloads.json"))
    assert len(open_db(d).get_all_tuning_records()) == 4 * len(recs)
