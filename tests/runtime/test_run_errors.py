"""`vcompile run LIB [--input ...]` on bad inputs and foreign libraries: one line
`vcompile: error: ...` and exit 1, never a traceback or a misleading message (issue 25,
items 6 and 9); `vcompile --version`.

The CLI runs in this process (`vcompile.cli.main`), so an uncaught exception fails the
test with its traceback. Foreign and absurd libraries are made by rewriting a real
library's ELF header or trailer and appending a fresh trailer (valid checksum), which
is what a real arm64 build or a huge model would carry.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm")
pytestmark = pytest.mark.tvm


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conv(3->4, 3x3, pad 1) -> relu on x[1,3,8,8], exported as a library."""
    import vcompile
    from vcompile.ir.builder import Builder
    rng = np.random.default_rng(0)
    bb = Builder()
    x = bb.input((1, 3, 8, 8))
    w = bb.const(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    b = bb.const(rng.standard_normal(4).astype(np.float32))
    g = bb.build(bb.emit("relu", bb.emit("conv2d", x, w, b, pads=(1, 1, 1, 1))))
    path = tmp_path_factory.mktemp("run_errors") / "m.so"
    vcompile.compile(g, target="host", opt_level=2).export(path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from vcompile.cli import main
    rc = main(["run", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc: int, err: str, *match: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("vcompile: error: "), (rc, err)
    for m in match:
        assert m in lines[0], lines[0]
    return lines[0]


def rewrite(src: Path, dst: Path, elf_machine: int | None = None, **meta_changes: object) -> Path:
    """A copy of library `src` with its ELF e_machine and/or metadata fields changed
    (None deletes a field), under a fresh, valid trailer."""
    from vcompile.codegen.deploy import artifact
    meta = artifact.read(src)
    elf = bytearray(src.read_bytes()[:meta["elf_size"]])
    if elf_machine is not None:
        elf[18:20] = elf_machine.to_bytes(2, "little")
    for k in ("elf_size", "elf_sha256"):
        del meta[k]
    for k, v in meta_changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    dst.write_bytes(bytes(elf))
    artifact.append_metadata(str(dst), meta)
    return dst


def x_input(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, 8, 8)).astype(np.float32)


def test_npz_input_by_name_runs(lib: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: "input 'x' must be f32[1,3,8,8], got <U1" (np.load gave an NpzFile)."""
    x = x_input()
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "named.npz", x=x)
    np.savez(tmp_path / "positional.npz", x)
    rc, _, err = run(capsys, str(lib), "--input", str(tmp_path / "x.npy"),
                     "--output", str(tmp_path / "want.npy"))
    assert rc == 0, err
    want = np.load(tmp_path / "want.npy")
    for name in ("named", "positional"):
        rc, out, err = run(capsys, str(lib), "--input", str(tmp_path / f"{name}.npz"),
                           "--output", str(tmp_path / f"{name}.npy"))
        assert rc == 0, err
        assert out.startswith("output0: float32[1, 4, 8, 8]")
        assert np.array_equal(np.load(tmp_path / f"{name}.npy"), want)


def test_npz_with_wrong_names_or_beside_npy_is_one_line(lib: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "wrong.npz", image=x_input())
    rc, _, err = run(capsys, str(lib), "--input", str(tmp_path / "wrong.npz"))
    one_line_error(rc, err, "wrong.npz lacks x and has unknown image", "named x")
    np.savez(tmp_path / "two.npz", x_input(), x_input(1))
    rc, _, err = run(capsys, str(lib), "--input", str(tmp_path / "two.npz"))
    one_line_error(rc, err, "holds 2 unnamed array(s)", "takes 1 input(s): x")
    np.save(tmp_path / "x.npy", x_input())
    rc, _, err = run(capsys, str(lib), "--input", str(tmp_path / "two.npz"), "--input",
                     str(tmp_path / "x.npy"))
    one_line_error(rc, err, "is an .npz archive: give it as the only --input")


def test_empty_npy_is_one_line(lib: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a traceback ending in EOFError: No data left in file."""
    (tmp_path / "empty.npy").write_bytes(b"")
    rc, _, err = run(capsys, str(lib), "--input", str(tmp_path / "empty.npy"))
    one_line_error(rc, err, "empty.npy: the file is empty or cut short")


def test_big_endian_input_is_converted(lib: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: "input 'x' must be f32[1,3,8,8], got f32[1,3,8,8]" (the dtype was >f4)."""
    x = x_input()
    np.save(tmp_path / "le.npy", x)
    np.save(tmp_path / "be.npy", x.astype(">f4"))
    assert np.load(tmp_path / "be.npy").dtype.byteorder == ">"
    outs = []
    for name in ("le", "be"):
        rc, _, err = run(capsys, str(lib), "--input", str(tmp_path / f"{name}.npy"),
                         "--output", str(tmp_path / f"y_{name}.npy"))
        assert rc == 0, err
        outs.append(np.load(tmp_path / f"y_{name}.npy"))
    assert outs[0].dtype == np.float32 and np.array_equal(outs[0], outs[1])
    import vcompile
    m = vcompile.load(lib)
    assert np.array_equal(m(x.astype(">f4"))[0], m(x)[0])


def test_terabyte_input_is_refused_before_allocating(lib: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Before: numpy's MemoryError (or 'array is too big') as a traceback."""
    from vcompile.codegen.deploy import artifact
    inputs = artifact.read(lib)["inputs"]
    huge = rewrite(lib, tmp_path / "huge.so", inputs=[{**inputs[0], "shape": [100000, 100000, 100]}])
    rc, _, err = run(capsys, str(huge))
    one_line_error(rc, err, "need 4.0 TB", "'x' is f32[100000,100000,100]", "more than this machine's")


def test_foreign_platform_library_names_its_target(lib: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Before (arm64 library on x86_64): "cannot load ...: No such file or directory"."""
    here = platform.machine().lower()
    on_arm = here in ("aarch64", "arm64")
    machine, name, target = (62, "x86_64", "host") if on_arm else (183, "aarch64", "arm64")
    foreign = rewrite(lib, tmp_path / "foreign.so", elf_machine=machine, target=target)
    rc, _, err = run(capsys, str(foreign))
    line = one_line_error(rc, err, f"built for target {target!r} (platform {name})",
                          "cannot load on this", "machine")
    assert "No such file" not in line


@pytest.mark.parametrize("change, match", [
    ({"inputs": None}, "has no inputs list"),
    ({"outputs": "y"}, "has no outputs list"),
    ({"inputs": [{"name": "x", "dtype": "bogus", "shape": [1, 3, 8, 8]}]}, "inputs[0] in its metadata"),
    ({"inputs": [{"name": "x", "dtype": "f32", "shape": [1, -3, 8, 8]}]}, "inputs[0] in its metadata"),
])
def test_malformed_tensor_metadata_is_one_line(lib: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               change: dict[str, object], match: str) -> None:
    """Before: KeyError / a numpy error from deep inside CompiledModel."""
    bad = rewrite(lib, tmp_path / "bad.so", **change)
    rc, _, err = run(capsys, str(bad))
    one_line_error(rc, err, "bad.so is corrupt", match)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from vcompile.cli import main
    from vcompile.version import __version__
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    out = capsys.readouterr().out.strip()
    assert e.value.code == 0
    assert out.startswith(f"vcompile {__version__} (TVM 0.") and out.count("\n") == 0, out
    assert json.dumps(out)  # one printable line
