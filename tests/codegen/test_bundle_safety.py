"""`--bundle DIR` never deletes what vcompile did not write (issue 25, items 3 and 6): a
directory that is not a vcompile bundle is refused before compiling, an earlier bundle
keeps the user's files and a library written into it with `-o`, a file named by --bundle
is a one-line error, and the runner loads only a listed library inside the bundle.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.codegen.test_cli import one_line_error, tiny_onnx, vc

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("safety") / "m.onnx")


def test_foreign_manifest_directory_is_refused(model: Path, tmp_path: Path) -> None:
    p = tmp_path / "p"
    p.mkdir()
    (p / "manifest.json").write_text("{}\n")
    (p / "important.txt").write_text("x\n")
    r = vc(str(model), "-o", str(tmp_path / "m.so"), "--bundle", str(p))
    one_line_error(r, "is not a vcompile bundle")
    assert sorted(q.name for q in p.iterdir()) == ["important.txt", "manifest.json"]
    assert (p / "important.txt").read_text() == "x\n"
    assert not (tmp_path / "m.so").exists()  # refused before compiling


def test_bundle_naming_a_file_is_one_line(model: Path, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    one_line_error(vc(str(model), "-o", str(tmp_path / "m.so"), "--bundle", str(f)), "is a file")
    assert f.read_text() == "data"


def test_output_in_unwritable_directory_is_one_line(model: Path) -> None:
    one_line_error(vc(str(model), "-o", "/sys/vcompile-test/m.so"), "cannot write /sys/vcompile-test/m.so")
    one_line_error(vc(str(model), "-o", "/proc/m.so"), "cannot write /proc/m.so")


def test_rebundle_keeps_user_files_and_the_output_inside(model: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    r = vc(str(model), "-o", str(b / "lib.so"), "--bundle", str(b))  # b does not exist yet
    assert r.returncode == 0, r.stderr
    assert (b / "lib.so").is_file() and (b / "manifest.json").is_file()
    (b / "notes.txt").write_text("mine")
    (b / "build").mkdir()
    (b / "build" / "keep").write_text("mine too")
    first = json.loads((b / "manifest.json").read_text())
    # a file the earlier bundle listed and the new one does not: removed; an unlisted one: kept
    first["files"]["obsolete.txt"] = "0" * 64
    (b / "obsolete.txt").write_text("old bundle file")
    (b / "manifest.json").write_text(json.dumps(first))
    r = vc(str(model), "-o", str(b / "lib.so"), "--bundle", str(b))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert (b / "notes.txt").read_text() == "mine" and (b / "build" / "keep").read_text() == "mine too"
    assert (b / "lib.so").is_file() and not (b / "obsolete.txt").exists()
    from vcompile.codegen.deploy.bundle import verify_bundle
    assert verify_bundle(b)["format"] == "vcompile-bundle-1"
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".vcompile")]


def test_user_file_in_the_way_is_not_overwritten(model: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    assert vc(str(model), "-o", str(tmp_path / "m.so"), "--bundle", str(b)).returncode == 0
    m = json.loads((b / "manifest.json").read_text())
    del m["files"]["runner.cc"]  # as if an earlier bundle had no runner.cc: the user's file
    (b / "manifest.json").write_text(json.dumps(m))
    (b / "runner.cc").write_text("// my runner")
    one_line_error(vc(str(model), "-o", str(tmp_path / "m.so"), "--bundle", str(b)), "is in the way")
    assert (b / "runner.cc").read_text() == "// my runner"


def test_output_may_not_be_a_bundle_file(model: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    one_line_error(vc(str(model), "-o", str(b / "runner"), "--bundle", str(b)), "is a file the bundle")
    assert not b.exists()


def test_manifest_listing_paths_outside_is_not_a_bundle(tmp_path: Path) -> None:
    from vcompile.codegen.deploy.bundle import BundleError, check_destination
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    b = tmp_path / "b"
    b.mkdir()
    (b / "manifest.json").write_text(json.dumps({"format": "vcompile-bundle-1", "library": "model.so",
                                                 "files": {"model.so": "0", "../victim.txt": "0"}}))
    with pytest.raises(BundleError, match="outside the bundle"):
        check_destination(b)
    assert victim.read_text() == "keep"


def test_runner_loads_only_a_listed_library_inside(model: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    r = vc(str(model), "-o", str(tmp_path / "m.so"), "--bundle", str(b))
    assert r.returncode == 0, r.stderr
    if not (b / "runner").exists():
        pytest.skip("no C++ compiler for the runner")
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))

    def run(copy: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(copy / "runner"), "-o", str(tmp_path), str(tmp_path / "x.npy")],
                              capture_output=True, text=True, timeout=120)
    for name, edit in [("outside", lambda m: m.update(library="../b/model.so")),
                       ("unlisted", lambda m: (m.update(library="extra.so"))),
                       ("escaping", lambda m: m["files"].update({"../b/model.so": m["files"]["model.so"]}))]:
        copy = tmp_path / name
        shutil.copytree(b, copy)
        shutil.copyfile(b / "model.so", copy / "extra.so")
        m = json.loads((copy / "manifest.json").read_text())
        edit(m)
        (copy / "manifest.json").write_text(json.dumps(m))
        r = run(copy)
        assert r.returncode == 1 and r.stderr.startswith("runner: error: manifest.json"), (name, r.stderr)
        from vcompile.codegen.deploy.bundle import BundleError, verify_bundle
        with pytest.raises(BundleError, match="is not a vcompile bundle"):
            verify_bundle(copy)
    assert run(b).returncode == 0
