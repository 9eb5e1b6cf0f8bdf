"""`vcompile bench --rpc` and `--rpc-tracker/--rpc-key` against TVM's own RPC server and
tracker on loopback (x86): the library is uploaded, run and timed by the server, and
its outputs match onnxruntime; bad addresses and unreachable servers are one-line errors.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.codegen.test_cli import tiny_onnx

pytest.importorskip("tvm")
pytestmark = [pytest.mark.tvm, pytest.mark.xdist_group("rpc")]
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 90) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert proc.poll() is None, "the RPC process exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the server forks a worker per session: its group
    except ProcessLookupError:  # already gone
        pass
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    proc = start("tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
                 "--port-end", str(port + 1))
    wait_port(port, proc)
    yield port
    stop(proc)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("rpc") / "tiny.onnx")


def test_run_remote_matches_local(server: int, tiny: Path, tmp_path: Path) -> None:
    import vcompile
    from vcompile.runtime import remote
    m = vcompile.compile(str(tiny), target="host")
    lib = m.export(tmp_path / "tiny.so")
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8), dtype=np.float32)
    timing, outs = remote.run_remote(remote.connect(rpc=f"127.0.0.1:{server}"), lib, [x], repeat=5)
    assert timing.runs == 5 and 0 < timing.median_ms <= timing.p90_ms
    np.testing.assert_allclose(outs[0], m(x)[0], rtol=1e-6, atol=1e-6)


def test_bench_rpc_cli(server: int, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vcompile.cli import main
    assert main(["bench", str(tiny), "--rpc", f"127.0.0.1:{server}", "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    assert f"tiny.onnx on 127.0.0.1:{server} (target host): median" in out and "3 runs" in out
    err = float(out.split("remote vs onnxruntime here: ")[1].split()[0])
    assert err < 1e-5


@pytest.fixture(scope="module")
def tracker() -> Iterator[int]:
    """A TVM RPC tracker with one server registered under the key "board"; yields its port."""
    from tvm import rpc
    tport, sport = free_port(), free_port()
    procs = [start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tport),
                   "--port-end", str(tport + 1))]
    try:
        wait_port(tport, procs[0])
        procs.append(start("tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(sport),
                           "--port-end", str(sport + 1), "--tracker", f"127.0.0.1:{tport}", "--key", "board"))
        end = time.monotonic() + 90
        while "board" not in str(rpc.connect_tracker("127.0.0.1", tport).summary()):
            assert time.monotonic() < end, "the server never registered with the tracker"
            time.sleep(0.5)
        yield tport
    finally:
        for p in reversed(procs):
            stop(p)


def test_bench_through_tracker(tracker: int, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vcompile.cli import main
    assert main(["bench", str(tiny), "--rpc-tracker", f"127.0.0.1:{tracker}", "--rpc-key", "board",
                 "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    assert f"on 127.0.0.1:{tracker} (key board) (target host): median" in out


@pytest.mark.slow  # about 75 s, as long as the same 4-trial tuning run measured locally
def test_tune_measures_through_rpc_runner(tracker: int, tiny: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from vcompile.cli import main
    db = tmp_path / "db"
    assert main(["tune", str(tiny), "--trials", "4", "--tuning-db", str(db),
                 "--rpc-tracker", f"127.0.0.1:{tracker}", "--rpc-key", "board"]) == 0
    out = capsys.readouterr().out
    assert "kernels," in out and f"database {db}" in out
    records = [json.loads(line) for line in (db / "records.json").read_text().splitlines() if line]
    assert records and all(r[1][1] for r in records)  # every record has measured run times
    assert main(["tune", str(tiny), "--rpc-tracker", f"127.0.0.1:{tracker}"]) == 1
    assert "needs both --rpc-tracker HOST:PORT and --rpc-key KEY" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "msg"), [
    (["--rpc", "localhost"], "bad --rpc 'localhost': expected HOST:PORT such as 127.0.0.1:9090"),
    (["--rpc-tracker", "127.0.0.1:9190"], "--rpc-tracker needs --rpc-key KEY"),
    (["--rpc-key", "board"], "--rpc-key goes with --rpc-tracker HOST:PORT"),
    (["--rpc", "127.0.0.1:1", "--rpc-tracker", "127.0.0.1:2", "--rpc-key", "k"], "give exactly one of --rpc"),
    (["--rpc", "127.0.0.1:{dead}"], "cannot reach the RPC server 127.0.0.1:{dead}"),
])
def test_bad_rpc_arguments(args: list[str], msg: str, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vcompile.cli import main
    dead = free_port()  # nothing listens there
    args = [a.format(dead=dead) for a in args]
    assert main(["bench", str(tiny), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vcompile: error:") and msg.format(dead=dead) in err[0], err
