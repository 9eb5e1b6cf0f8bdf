"""No litter from a killed compile (issue 25, item 7): SIGTERM while the library is being
generated removes the temporary library and TVM's workspace (lib0.o) as Ctrl-C does; after
SIGKILL, the next run removes what the dead run left (its pid is in the names). A live
writer's files stay. The temporaries to catch: the hidden library beside `-o` and TVM's
export workspace in the temporary directory.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.codegen.test_cli import ROOT, tiny_onnx

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm


def litter(*dirs: Path) -> list[str]:
    return sorted(p.name for d in dirs if d.exists() for p in d.iterdir() if "vcompile-" in p.name)


def start(model: Path, out: Path, tmp: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.Popen([sys.executable, "-m", "vcompile", str(model), "-o", str(out)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_while_exporting(model: Path, out: Path, tmp: Path, sig: int) -> subprocess.Popen[str]:
    """Start a compile and send `sig` once its temporary library appears; a compile that
    finishes before the poll sees it (a loaded machine) is started again."""
    for _ in range(5):
        proc = start(model, out, tmp)
        deadline = time.monotonic() + 120
        while not litter(out.parent, tmp) and proc.poll() is None:
            assert time.monotonic() < deadline, "the export never started"
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.communicate(timeout=60)
            return proc
        assert proc.returncode == 0, proc.communicate()
        out.unlink()
    pytest.fail("every compile finished before its export could be interrupted")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmp.mkdir()
    return tiny_onnx(tmp_path / "tiny.onnx"), out, tmp


def test_sigterm_during_export_leaves_nothing(setup: tuple[Path, Path, Path]) -> None:
    model, out, tmp = setup
    proc = kill_while_exporting(model, out / "m.so", tmp, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM
    time.sleep(1)  # a linker left running would write its output now
    assert litter(out, tmp) == [] and not (out / "m.so").exists()


def test_after_sigkill_the_next_run_sweeps(setup: tuple[Path, Path, Path]) -> None:
    model, out, tmp = setup
    kill_while_exporting(model, out / "m.so", tmp, signal.SIGKILL)
    left = litter(out, tmp)
    assert left and all(n.lstrip(".").startswith("vcompile-") for n in left)
    proc = start(model, out / "m.so", tmp)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert litter(out, tmp) == [] and (out / "m.so").is_file()


def test_sweep_keeps_live_and_recent_foreign_temporaries(tmp_path: Path) -> None:
    from vcompile.files import STALE_AFTER_S, sweep_stale, temp_prefix
    live = tmp_path / f"{temp_prefix()}m.so.abc"  # this process: alive
    live.write_bytes(b"x")
    parent = tmp_path / f"{temp_prefix().replace(f'-{os.getpid()}-', f'-{os.getppid()}-')}m.so.def"
    parent.write_bytes(b"x")  # the test runner's parent: alive
    foreign = tmp_path / ".vcompile-00000000-1-m.so.ghi"  # another host's
    foreign.write_bytes(b"x")
    old = tmp_path / ".vcompile-00000000-2-m.so.jkl"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - STALE_AFTER_S - 60,) * 2)
    mine = tmp_path / "vcompile-notes.txt"  # not one of ours: no host-pid tag
    mine.write_text("x")
    assert sweep_stale(tmp_path) == [str(old)]
    assert live.exists() and parent.exists() and foreign.exists() and mine.exists()


def test_sigterm_handler_is_restored() -> None:
    from vcompile.files import terminate_as_exit
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as e, terminate_as_exit():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert e.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before
