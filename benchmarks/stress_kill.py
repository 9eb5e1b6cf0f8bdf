"""Kill-at-random-point compiles (issue 25): no partial output, no litter after the next run.

    .venv/bin/python benchmarks/stress.py kill [--rounds 40] [--seed 0] [--bundle]

Each round starts `vcompile MODEL -o OUT/lib.so` (with `--bundle`: `--target arm64
--bundle OUT/b`) with TMPDIR pointing at a private directory, and sends SIGKILL or SIGTERM
(alternating) at a uniformly random moment within the time a whole compile takes
(measured first). After the kill:

- the output is either absent or complete: the library loads with `vcompile.load`
  (which checks its checksum trailer), the bundle's manifest parses and lists files
  that exist;
- after SIGTERM nothing of the dead compile is left in OUT or in TMPDIR;
- after SIGKILL, what is left carries the dead process's id; the next compile (run to
  completion right after) removes it, so no `vcompile-*` name survives it.

Writes the `kill` section of stress.md: rounds, how many outputs existed after the kill,
how many were incomplete (must be 0), litter after SIGTERM and after the next run (must be 0).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.stress_tune import write_model  # noqa: E402
from benchmarks.suite_loop import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def litter(*dirs: Path) -> list[str]:
    return sorted(str(p) for d in dirs if d.exists() for p in d.rglob("*") if "vcompile-" in p.name)


def command(model: Path, out: Path, bundle: bool) -> list[str]:
    cmd = [sys.executable, "-m", "vcompile", str(model)]
    return cmd + (["--target", "arm64", "--bundle", str(out / "b")] if bundle
                  else ["-o", str(out / "lib.so")])


def run(cmd: list[str], tmp: Path, kill_after: float | None, sig: int) -> tuple[int, float]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
    return proc.wait(timeout=600), time.monotonic() - t0


def complete(out: Path, bundle: bool) -> bool | None:
    """None: no output; True: a whole, loadable output; False: a partial one."""
    if bundle:
        manifest = out / "b" / "manifest.json"
        if not (out / "b").exists():
            return None
        try:
            files = json.loads(manifest.read_text()).get("files", {})
        except (OSError, ValueError):
            return False
        return all((out / "b" / f).is_file() for f in files)
    lib = out / "lib.so"
    if not lib.exists():
        return None
    code = f"import vcompile; vcompile.load({str(lib)!r})"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True).returncode == 0


def kill_part(args: argparse.Namespace) -> str:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="stress-kill-"))
    try:
        model = write_model(64, work)
        out, tmp = work / "out", work / "tmp"
        out.mkdir()
        tmp.mkdir()
        rc, full = run(command(model, out, args.bundle), tmp, None, 0)
        if rc != 0:
            raise SystemExit(f"the reference compile failed (exit {rc})")
        counts = {"rounds": 0, "killed": 0, "finished": 0, "output present": 0,
                  "output incomplete": 0, "litter after SIGTERM": 0,
                  "litter after next run": 0}
        for k in range(args.rounds):
            shutil.rmtree(out)
            out.mkdir()
            sig = signal.SIGKILL if k % 2 else signal.SIGTERM
            rc, _ = run(command(model, out, args.bundle), tmp, rng.uniform(0, full), sig)
            counts["rounds"] += 1
            counts["killed" if rc != 0 else "finished"] += 1
            state = complete(out, args.bundle)
            counts["output present"] += state is not None
            counts["output incomplete"] += state is False
            if rc != 0 and sig == signal.SIGTERM:
                time.sleep(0.5)  # a linker left running would write now
                counts["litter after SIGTERM"] += bool(litter(out, tmp))
            rc, _ = run(command(model, out, args.bundle), tmp, None, 0)
            if rc != 0 or not complete(out, args.bundle):
                raise SystemExit(f"round {k}: the compile after the kill failed (exit {rc})")
            counts["litter after next run"] += bool(litter(out, tmp))
            print(f"round {k + 1}/{args.rounds}: {counts}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    what = "arm64 bundle" if args.bundle else "host library"
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items())
    return (f"## kill{' (bundle)' if args.bundle else ''}\n\n"
            f"{args.rounds} compiles of a MatMul+Relu model to a {what}, each killed at a "
            f"uniformly random moment within one whole compile ({full:.1f} s here), SIGTERM and "
            f"SIGKILL alternating (seed {args.seed}); then a compile to the same place run to "
            f"completion. CPU: {cpu_model()}.\n\n| count | rounds |\n|---|---|\n{rows}\n\n"
            "'output incomplete', 'litter after SIGTERM' and 'litter after next run' must be 0.\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bundle", action="store_true", help="compile arm64 bundles instead")
    args = p.parse_args(argv)
    from benchmarks.stress import write_section
    text = kill_part(args)
    print(f"wrote {write_section(text.splitlines()[0][3:], text)}")
    bad = [line for line in text.splitlines() if line.startswith(("| output incomplete",
                                                                  "| litter after"))]
    return 1 if any(not line.endswith("| 0 |") for line in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
