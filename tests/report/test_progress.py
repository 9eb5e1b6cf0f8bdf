"""Progress bars on a terminal (a real pseudo-terminal), silenced by --quiet and when
standard error is not a terminal."""
from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.codegen.test_cli import ROOT, tiny_onnx
from vcompile.passes import pipeline

pytest.importorskip("tvm")


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Runs `vcompile ARGS` with stdout and stderr on a pseudo-terminal; returns all it drew."""
    main, sub = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "vcompile", *args], stdin=sub, stdout=sub, stderr=sub,
                         cwd=ROOT, close_fds=True, env={**os.environ, "COLUMNS": "300"})
    os.close(sub)
    out = b""
    while True:
        try:
            chunk = os.read(main, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    return p.wait(timeout=300), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))


def test_progress_bars_for_passes_and_timing_and_quiet(tmp_path: Path) -> None:
    model = str(tiny_onnx(tmp_path / "tiny.onnx"))
    n = len(pipeline(2))
    rc, shown = _on_a_terminal("profile", model, "-O2", "--rounds", "3", "--threads", "1")
    assert rc == 0, shown
    assert f"profiling {model}: pass fuse" in shown and f"{n - 1}/{n}" in shown
    assert "timing kernels" in shown and "by op class" in shown
    rc, shown = _on_a_terminal("bench", model, "--repeat", "4", "--threads", "1")
    assert rc == 0, shown
    assert "timing vcompile, onnxruntime: timing" in shown and "4/4" in shown
    rc, shown = _on_a_terminal("profile", model, "-O2", "--rounds", "3", "--threads", "1", "--quiet")
    assert rc == 0, shown
    assert "profiling" not in shown and "pass fuse" not in shown and "by op class" in shown
