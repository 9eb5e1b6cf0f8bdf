"""One CompiledModel called from many Python threads at once (issue 25, item 1).

Serving code shares one model between request threads. Before the fix the threads
shared one Relax VM (its register file and frames), and 2 threads were enough to
segfault in StorageObj::AllocTensor or to raise "reg < register_file.size()". The
threaded run happens in a child process so that a crash fails this test instead of
killing pytest; the child prints one JSON line with what it saw.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm
ROOT = Path(__file__).resolve().parents[2]
THREADS, CALLS, SAMPLES = 8, 50, 8


def conv_graph(n: int = 6, channels: int = 8, hw: int = 56):  # type: ignore[no-untyped-def]
    """n x (3x3 conv, pad 1 -> relu) on x[1,3,hw,hw]: the shape of the model in the issue."""
    from vcompile.ir.builder import Builder
    rng = np.random.default_rng(0)
    bb = Builder()
    x = bb.input((1, 3, hw, hw))
    cin = 3
    for _ in range(n):
        w = bb.const((rng.standard_normal((channels, cin, 3, 3)) * 0.3).astype(np.float32))
        b = bb.const(rng.standard_normal(channels).astype(np.float32) * 0.1)
        x = bb.emit("relu", bb.emit("conv2d", x, w, b, pads=(1, 1, 1, 1)))
        cin = channels
    return bb.build(x)


def hammer() -> dict[str, object]:
    """THREADS threads x CALLS calls on one model; compare each output with a sequential run."""
    import vcompile
    m = vcompile.compile(conv_graph(), target="host", opt_level=2)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1, 3, 56, 56)).astype(np.float32) for _ in range(SAMPLES)]
    want = [m(x)[0] for x in xs]
    errors: list[str] = []
    mismatches = [0] * THREADS
    done = [0] * THREADS
    start = threading.Barrier(THREADS)

    def work(k: int) -> None:
        try:
            start.wait()
            for j in range(CALLS):
                i = (k + j) % SAMPLES
                y = m(xs[i])[0]
                if y.dtype != want[i].dtype or y.tobytes() != want[i].tobytes():
                    mismatches[k] += 1
                done[k] += 1
        except Exception as e:  # noqa: BLE001 - reported to the parent
            errors.append(f"{type(e).__name__}: {e}"[:300])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"errors": errors, "mismatches": sum(mismatches), "calls": sum(done)}


def test_one_model_many_threads_bit_exact() -> None:
    r = subprocess.run([sys.executable, "-m", "tests.runtime.test_threads"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"child died (rc {r.returncode}):\n{r.stderr[-3000:]}"
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["errors"] == [], got["errors"][:3]
    assert got["mismatches"] == 0
    assert got["calls"] == THREADS * CALLS


def test_threads_that_end_release_their_vm_and_errors_stay_one_line() -> None:
    """A model used from short-lived threads keeps working in the thread that made it,
    and a wrong input from a worker thread is still a RunError, not a VM failure."""
    import vcompile
    from vcompile.runtime.module import RunError
    m = vcompile.compile(conv_graph(n=1, hw=8), target="host", opt_level=2)
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    want = m(x)[0]
    out: list[object] = []

    def one() -> None:
        try:
            out.append(m(x)[0])
            m(x[:, :2])
        except RunError as e:
            out.append(e)

    for _ in range(3):
        t = threading.Thread(target=one)
        t.start()
        t.join()
    assert len(out) == 6
    assert all(np.array_equal(y, want) for y in out[0::2])
    assert all(isinstance(e, RunError) and "must be f32[1,3,8,8]" in str(e) for e in out[1::2])
    assert np.array_equal(m(x)[0], want)


if __name__ == "__main__":
    print(json.dumps(hammer()))
