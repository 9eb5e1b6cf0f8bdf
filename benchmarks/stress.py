"""Stress tests from issue 25, as a benchmark: what breaks under load, and what it costs.

    .venv/bin/python benchmarks/stress.py threads [--threads 8] [--calls 200] [--model NAME|FILE]
                                                  [--rounds 1]
    .venv/bin/python benchmarks/stress.py tune [--procs 4] [--rounds 10] [--measure real|instant]
    .venv/bin/python benchmarks/stress.py scaling [--sizes 125,250,500,1000,2000] [--kinds wide,chain]
    .venv/bin/python benchmarks/stress.py kill [--rounds 40] [--seed 0] [--bundle]

`tune` (stress_tune.py): K concurrent `vcompile tune` processes into one database, R rounds;
after each the database loads and an -O3 compile of every model matches the interpreter.
`scaling` (stress_scaling.py): compile + export time of wide (N branches into one Concat)
and chain graphs against N, with the fitted log-log exponent; writes stress_scaling.md.
`kill` (stress_kill.py): compiles killed (SIGTERM/SIGKILL) at random moments: the output is
absent or whole, and nothing is left once the next compile has run.

`threads`: N Python threads x M calls against ONE `CompiledModel` (a library compiled
with -O2 and loaded with `vcompile.load`, as a server would), with every output compared
bit for bit with a sequential run of the same inputs. Three ways of running the same
N x M calls are timed, each in its own child process (a crash is then a reported
result, not the end of the benchmark):

- shared:    one model, called from every thread (what `CompiledModel` does: one VM per
             calling thread over one loaded library, weights shared);
- lock:      one model, every call under one lock (the cost of serializing instead);
- per-model: one model per thread (N loads of the library: the reference).

It also reports 1 thread x M calls (the sequential throughput) and each child's resident
memory after the run above what it held with the model(s) loaded and idle. Writes
`benchmarks/stress.md` (the part's section; one per TVM_NUM_THREADS setting) with the CPU
model from /proc/cpuinfo.
`--model` takes a timm name (exported once with `python -m vcompile.models export` to
the suite's cache, .cache/models/NAME.legacy.s0.onnx), an .onnx file or a vcompile
library; the default is resnet18. `--rounds R` runs the modes R times in turn.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.suite_loop import cpu_model  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLES = 8  # distinct inputs, cycled through by the threads
MODES = ("sequential", "shared", "lock", "per-model")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def library_for(model: str, work: Path) -> tuple[Path, str]:
    """The library to hammer and a name for it: `model` is a vcompile library, an .onnx
    file or a timm name (exported once to .cache/models/NAME.legacy.s0.onnx, the suite's
    cache), compiled here with -O2."""
    if model.endswith(".so"):
        return Path(model), Path(model).stem
    if model.endswith(".onnx"):
        onnx_path, name = Path(model), Path(model).stem
    else:
        name = model
        onnx_path = ROOT / ".cache" / "models" / f"{name}.legacy.s0.onnx"
        if not onnx_path.exists():
            onnx_path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "vcompile.models", "export", name,
                            "-o", str(onnx_path)], check=True, cwd=ROOT)
    lib = work / f"{name}.so"
    subprocess.run([sys.executable, "-m", "vcompile", str(onnx_path), "--target", "host", "-O2",
                    "-o", str(lib), "-q"], check=True, cwd=ROOT)
    return lib, name


# ---- the child: one mode, one process ----------------------------------------------------
def child(lib: str, mode: str, threads: int, calls: int) -> dict[str, object]:
    import vcompile
    from vcompile.runtime.inputs import random_inputs
    m = vcompile.load(lib)
    xs = [random_inputs(m, seed) for seed in range(SAMPLES)]
    want = [m(*x) for x in xs]
    n = 1 if mode == "sequential" else threads
    models = [m] + [vcompile.load(lib) for _ in range(n - 1)] if mode == "per-model" else [m] * n
    for mk in models:  # warm every model (and, in `shared`, nothing else: VMs come per thread)
        mk(*xs[0])
    lock = threading.Lock()
    errors: list[str] = []
    bad = [0] * n
    done = [0] * n
    base = rss_mb()
    start = threading.Barrier(n + 1)

    def work(k: int) -> None:
        mk = models[k]
        start.wait()
        try:
            for j in range(calls):
                i = (k + j) % SAMPLES
                if mode == "lock":
                    with lock:
                        ys = mk(*xs[i])
                else:
                    ys = mk(*xs[i])
                if len(ys) != len(want[i]) or any(y.dtype != w.dtype or y.tobytes() != w.tobytes()
                                                  for y, w in zip(ys, want[i], strict=False)):
                    bad[k] += 1
                done[k] += 1
        except Exception as e:  # noqa: BLE001 - counted and reported
            errors.append(f"{type(e).__name__}: {e}"[:200])

    ts = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return {"mode": mode, "threads": n, "calls": sum(done), "wall_s": wall,
            "calls_per_s": sum(done) / wall if wall else 0.0, "errors": len(errors),
            "first_error": errors[0] if errors else "", "mismatches": sum(bad),
            "rss_loaded_mb": base, "rss_growth_mb": rss_mb() - base}


def run_mode(lib: Path, mode: str, threads: int, calls: int, timeout: float) -> dict[str, object]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "threads", "--child", mode,
           "--library", str(lib), "--threads", str(threads), "--calls", str(calls)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"mode": mode, "crashed": f"timed out after {timeout:.0f} s"}
    if r.returncode != 0:
        tail = [ln for ln in r.stderr.splitlines() if ln.strip()][-1:] or [""]
        return {"mode": mode, "crashed": f"exit {r.returncode}: {tail[0][:160]}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def _summary(mode: str, runs: list[dict[str, object]]) -> dict[str, object]:
    """One row per mode over its rounds: failures summed, calls/s and memory medians."""
    ok = [r for r in runs if "crashed" not in r]
    crashes = [str(r["crashed"]) for r in runs if "crashed" in r]
    row: dict[str, object] = {"mode": mode, "rounds": len(runs), "crashes": len(crashes),
                              "first_crash": crashes[0] if crashes else ""}
    if ok:
        row.update(threads=ok[0]["threads"], calls=sum(int(r["calls"]) for r in ok),
                   errors=sum(int(r["errors"]) for r in ok),
                   mismatches=sum(int(r["mismatches"]) for r in ok),
                   calls_per_s=_median([float(r["calls_per_s"]) for r in ok]),
                   all_calls_per_s=[round(float(r["calls_per_s"]), 1) for r in ok],
                   rss_loaded_mb=_median([float(r["rss_loaded_mb"]) for r in ok]),
                   rss_growth_mb=_median([float(r["rss_growth_mb"]) for r in ok]),
                   first_error=next((str(r["first_error"]) for r in ok if r["first_error"]), ""))
    return row


def threads_part(args: argparse.Namespace) -> str:
    runs: dict[str, list[dict[str, object]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="vcompile-stress-") as d:
        t0 = time.perf_counter()
        lib, name = library_for(args.model, Path(d))
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.rounds):  # modes take turns, so machine noise hits them alike
            for mode in MODES:
                res = run_mode(lib, mode, args.threads, args.calls, args.timeout)
                print(json.dumps(res), flush=True)
                runs[mode].append(res)
        run_s = time.perf_counter() - t0
    rows = [_summary(m, rs) for m, rs in runs.items()]
    seq = next((r for r in rows if r["mode"] == "sequential" and "calls_per_s" in r), None)
    per = next((r for r in rows if r["mode"] == "per-model" and "calls_per_s" in r), None)
    tvm_threads = os.environ.get("TVM_NUM_THREADS")
    heading = f"threads (TVM_NUM_THREADS={tvm_threads})" if tvm_threads else "threads"
    out = [f"## {heading}\n",
           f"`benchmarks/stress.py threads --threads {args.threads} --calls {args.calls} "
           f"--model {args.model} --rounds {args.rounds}`: {time.strftime('%Y-%m-%d %H:%M')}, "
           f"model **{name}** (-O2, loaded from its library; built in {build_s:.0f} s, "
           f"all rounds ran in {run_s:.0f} s), CPU **{cpu_model()}**, {os.cpu_count()} cores, "
           f"TVM_NUM_THREADS={tvm_threads or 'unset (all cores)'}. Each mode "
           f"runs once per round in its own child process, modes taking turns; outputs are "
           f"compared bit for bit with a sequential run; calls/s and memory are medians over "
           f"the rounds.\n",
           "| mode | threads | calls | crashes | errors | mismatches | calls/s (each round) "
           "| vs per-model | vs 1 thread | RSS loaded (MB) | RSS growth (MB) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "calls_per_s" not in r:
            out.append(f"| {r['mode']} | | | {r['crashes']} of {r['rounds']} | | | | | | | |")
            continue
        cps = float(r["calls_per_s"])
        vs_per = f"{cps / float(per['calls_per_s']):.2f}x" if per else ""
        vs_seq = f"{cps / float(seq['calls_per_s']):.2f}x" if seq else ""
        each = ", ".join(str(c) for c in r["all_calls_per_s"])
        out.append(f"| {r['mode']} | {r['threads']} | {r['calls']} | {r['crashes']} | {r['errors']} "
                   f"| {r['mismatches']} | {cps:.1f} ({each}) | {vs_per} | {vs_seq} "
                   f"| {float(r['rss_loaded_mb']):.0f} | {float(r['rss_growth_mb']):.0f} |")
    errs = [f"- {r['mode']}: {r.get('first_crash') or r.get('first_error')}" for r in rows
            if r.get("first_crash") or r.get("first_error")]
    if errs:
        out += ["", "First failure per mode:", *errs]
    out.append("\nsequential: 1 thread x the same calls per thread. shared: one `CompiledModel` "
               "called from every thread (one Relax VM per thread over the one loaded library). "
               "lock: the same model with each call under one lock (what serializing in "
               "`__call__` would cost). per-model: one `vcompile.load` per thread. RSS loaded: "
               "resident memory with the model(s) loaded and warmed in the main thread (for "
               "per-model, N copies of the weights); RSS growth: what the run added on top "
               "(activations and thread stacks).\n")
    return "\n".join(out)


def write_section(part: str, text: str) -> Path:
    """Replace (or add) the `## part` section of stress.md, keeping other parts' sections."""
    path = HERE / "stress.md"
    head = ("# Stress tests\n\nWritten by [`stress.py`](stress.py) (issue 25); one section per "
            "part. Back to the [benchmarks](README.md).\n")
    old = path.read_text() if path.exists() else head
    parts = re.split(r"(?m)^(?=## )", old)
    keep = [p for p in parts if not p.startswith(f"## {part}\n")]
    if not keep or keep[0].startswith("## "):
        keep.insert(0, head)
    new = "".join(keep).rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(new)
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("tune", "scaling", "kill"):  # the parts in their own scripts
        sys.path.insert(0, str(HERE))
        import stress_kill
        import stress_scaling
        import stress_tune
        part = {"tune": stress_tune, "scaling": stress_scaling, "kill": stress_kill}[argv[0]]
        return int(part.main(argv[1:]) or 0)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="part", required=True)
    t = sub.add_parser("threads", help="N threads x M calls against one model")
    t.add_argument("--threads", type=int, default=8)
    t.add_argument("--calls", type=int, default=200, help="calls per thread")
    t.add_argument("--model", default="resnet18",
                   help="a timm name, an .onnx file or a vcompile library (default: resnet18)")
    t.add_argument("--rounds", type=int, default=1, help="times each mode runs, taking turns")
    t.add_argument("--timeout", type=float, default=600, help="seconds per mode")
    t.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    t.add_argument("--library", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.library, args.child, args.threads, args.calls)))
        return 0
    text = threads_part(args)
    path = write_section(text.splitlines()[0][3:], text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
