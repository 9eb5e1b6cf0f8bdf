"""`vcompile report`: the HTML page opened in headless Debian chromium (fresh profile):
no console errors, every section, a screenshot; failing models still get their page."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.codegen.test_cli import one_line_error, tiny_onnx, vc
from tests.report.browser import Chromium

pytest.importorskip("tvm")
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium missing")
SECTIONS = ["summary", "pipeline", "graphs", "fusion", "profile", "benchmark", "environment"]


def test_browser_check_catches_console_errors(tmp_path: Path) -> None:
    """The harness itself: a page with a console error, an exception and a missing file."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><section id="a">x</section><img src="missing.png">'
                    '<script>console.error("boom"); nope();</script></body></html>')
    with Chromium(tmp_path / "profile") as b:
        got = b.load(page)
    assert got.section_ids == ["a"] and len(got.errors) == 3, got.errors
    assert any("boom" in e for e in got.errors) and any("nope" in e for e in got.errors)
    assert got.screenshot.startswith(b"\x89PNG")


@pytest.mark.slow
def test_report_opens_in_chromium_with_every_section(tmp_path: Path) -> None:
    from tests.models import onnx_model
    out = tmp_path / "report.html"
    r = vc("report", str(onnx_model("resnet18")), "-O3", "--target", "host", "--tune-trials", "0",
           "--tuning-db", str(tmp_path / "db"), "--threads", "1", "--rounds", "3",
           "--pytorch", "timm:resnet18", "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)   # nothing fetched from a network
    with Chromium(tmp_path / "profile") as b:
        page = b.load(out)
    (tmp_path / "report.png").write_bytes(page.screenshot)
    assert page.errors == []
    assert page.section_ids == SECTIONS
    assert all(page.section_boxes[s][1] > 40 for s in SECTIONS)  # each one laid out, not empty
    text = page.text
    for stage in ("import", "passes", "fusion", "build", "profile", "benchmark"):
        assert re.search(rf"{stage}\s+ok", text), stage
    assert "fuse" in text and "groups=18" in text                 # the pass table, after fuse
    assert "onnxruntime" in text and "PyTorch" in text and "x vcompile" in text
    assert "vcompile report " in text and "-O3" in text and "--tune-trials 0" in text
    assert html.count('<div class="box"><svg') == 2 and html.count("<svg") == 5  # 2 graphs, 3 charts
    assert "fused_conv2d_add_relu" in html                       # a kernel bar of the profile
    assert (tmp_path / "report.png").stat().st_size > 50_000


def _unsupported_onnx(path: Path) -> Path:
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Det", ["r"], ["y"])],
                          "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def test_failing_models_still_get_a_report(tmp_path: Path) -> None:
    # fails at import: an op the frontend does not know
    bad = tmp_path / "bad.html"
    r = vc("report", str(_unsupported_onnx(tmp_path / "det.onnx")), "-o", str(bad), "-q")
    one_line_error(r, "stage import failed")
    assert "Det" in r.stderr and str(bad) in r.stderr
    # fails at build: -O3 with a tuning database path that is a file
    (tmp_path / "db").write_text("not a directory")
    late = tmp_path / "late.html"
    r = vc("report", str(tiny_onnx(tmp_path / "tiny.onnx")), "-O3", "--tune-trials", "0",
           "--tuning-db", str(tmp_path / "db"), "-o", str(late), "-q")
    one_line_error(r, "stage build failed: cannot use tuning database")
    with Chromium(tmp_path / "profile") as b:
        first, second = b.load(bad), b.load(late)
    for page in (first, second):
        assert page.errors == [] and page.section_ids == ["error", *SECTIONS]
    assert re.search(r"import\s+failed", first.text) and "Det" in first.text
    assert first.text.count("Not reached") >= 5
    # the second got through import, passes and fusion: their tables and graphs are there
    for stage in ("import", "passes", "fusion"):
        assert re.search(rf"{stage}\s+ok", second.text), stage
    assert re.search(r"build\s+failed", second.text) and "cannot use tuning database" in second.text
    assert "conv2d" in second.text and late.read_text().count('<div class="box">') == 2
    assert "Not reached" in second.text.split("Per-kernel profile")[1]


def test_report_output_must_be_html(tmp_path: Path) -> None:
    one_line_error(vc("report", "timm:resnet18", "-o", str(tmp_path / "r.txt")), "name it FILE.html")
    one_line_error(vc("report", "timm:resnet18", "-o", str(tmp_path / "r.html"), "--rounds", "0"),
                   "--threads and --rounds must be 1 or more")
    assert not (tmp_path / "r.txt").exists()
    np.testing.assert_equal(list(tmp_path.iterdir()), [])


def test_report_for_a_target_that_does_not_run_here(tmp_path: Path) -> None:
    out = tmp_path / "arm.html"
    r = vc("report", str(tiny_onnx(tmp_path / "tiny.onnx")), "--target", "arm64", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert re.search(r"build</td><td class=\"ok\">ok", html)
    assert html.count("Skipped: target arm64 does not run on this machine") == 2
    assert "Not reached" not in html and 'id="error"' not in html
