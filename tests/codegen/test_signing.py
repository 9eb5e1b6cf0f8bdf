"""Authenticity (issue 25, item 10): `--sign KEY` writes an Ed25519 signature beside the
library (m.so.sig) and the bundle's manifest (manifest.json.sig); `vcompile.load(path,
verify_key=)` and `vcompile run --verify-key` refuse a missing or bad signature before the
library is loaded (its constructors never run); unsigned libraries load as before. The
bundle runner checks manifest.json.sig with `--verify-key PUB` (or a key built in with
CMake) natively and under qemu-aarch64: a forged model or runtime library, an edited
manifest, a wrong key or no signature is one line and exit 1, and no constructor of the
bundle's libraries runs.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.codegen.test_cli import ROOT, one_line_error, tiny_onnx, vc

pytest.importorskip("tvm")
pytest.importorskip("cryptography")
pytestmark = pytest.mark.tvm


def keypair(d: Path, name: str = "key") -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    k = Ed25519PrivateKey.generate()
    key, pub = d / f"{name}.pem", d / f"{name}.pub.pem"
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    pub.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, pub


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    d = tmp_path_factory.mktemp("signed")
    key, pub = keypair(d)
    model = tiny_onnx(d / "tiny.onnx")
    r = vc(str(model), "-o", str(d / "m.so"), "--bundle", str(d / "b"), "--sign", str(key))
    assert r.returncode == 0, r.stderr
    return model, d / "m.so", d / "b", pub


def test_signed_library_loads_and_runs(signed: tuple[Path, Path, Path, Path]) -> None:
    import vcompile
    _, lib, _, pub = signed
    assert len(Path(f"{lib}.sig").read_bytes()) == 64
    y, = vcompile.load(lib, verify_key=pub)(np.ones((1, 3, 8, 8), np.float32))
    assert y.shape == (1, 4)
    r = vc("run", str(lib), "--verify-key", str(pub))
    assert r.returncode == 0 and "y: float32[1, 4]" in r.stdout, r.stderr
    vcompile.load(lib)  # without a key, as before


def test_signature_checks_with_openssl(signed: tuple[Path, Path, Path, Path]) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    _, lib, _, pub = signed
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin",
                        "-in", str(lib), "-sigfile", f"{lib}.sig"], capture_output=True, text=True)
    assert r.returncode == 0 and "Success" in r.stdout, r.stderr


def test_forged_library_is_refused_before_loading(signed: tuple[Path, Path, Path, Path],
                                                  tmp_path: Path) -> None:
    """A shared library whose constructor writes a file, with a valid trailer (sha256
    recomputed, as an attacker would): refused, and the constructor never ran."""
    import vcompile
    from vcompile.codegen.deploy import artifact
    from vcompile.codegen.deploy.signing import SignatureError
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    _, lib, _, pub = signed
    marker = tmp_path / "constructor-ran"
    src = tmp_path / "evil.c"
    src.write_text(f'#include <stdio.h>\n__attribute__((constructor)) static void f(void) '
                   f'{{ FILE* f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    evil = tmp_path / "m.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(evil), str(src)], check=True)
    artifact.append_metadata(str(evil), {k: v for k, v in artifact.read(lib).items()
                                         if k not in ("elf_size", "elf_sha256")})
    shutil.copyfile(f"{lib}.sig", f"{evil}.sig")  # the real library's signature
    with pytest.raises(SignatureError, match="does not verify"):
        vcompile.load(evil, verify_key=pub)
    one_line_error(vc("run", str(evil), "--verify-key", str(pub)), "does not verify")
    Path(f"{evil}.sig").unlink()
    one_line_error(vc("run", str(evil), "--verify-key", str(pub)), "is not signed")
    assert not marker.exists()


def test_wrong_key_and_bad_key_files(signed: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    model, lib, _, _ = signed
    _, other_pub = keypair(tmp_path, "other")
    one_line_error(vc("run", str(lib), "--verify-key", str(other_pub)), "does not verify")
    one_line_error(vc("run", str(lib), "--verify-key", str(model)), "is not a PEM public key")
    one_line_error(vc(str(model), "-o", str(tmp_path / "x.so"), "--sign", str(tmp_path / "none.pem")),
                   "cannot read the signing key")
    one_line_error(vc(str(model), "-o", str(tmp_path / "x.so"), "--sign", str(other_pub)),
                   "is not a PEM private key")
    assert not (tmp_path / "x.so").exists()


def test_signed_bundle(signed: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    from vcompile.codegen.deploy.bundle import verify_bundle
    from vcompile.codegen.deploy.signing import SignatureError
    _, _, b, pub = signed
    assert verify_bundle(b, verify_key=pub)["library"] == "model.so"
    copy = tmp_path / "b"
    shutil.copytree(b, copy)
    text = (copy / "manifest.json").read_text()
    (copy / "manifest.json").write_text(text.replace('"opt_level": 2', '"opt_level": 3'))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_bundle(copy, verify_key=pub)
    verify_bundle(copy)  # the checksums alone cannot tell


def test_unsigned_rebundle_drops_the_stale_signature(signed: tuple[Path, Path, Path, Path],
                                                     tmp_path: Path) -> None:
    model, _, b, _ = signed
    copy = tmp_path / "b"
    shutil.copytree(b, copy)
    r = subprocess.run([sys.executable, "-m", "vcompile", str(model), "-o", str(tmp_path / "m.so"),
                        "--bundle", str(copy)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not (copy / "manifest.json.sig").exists()


# ---- the bundle runner (runner.cc.j2 + ed25519.h.j2) ------------------------------------------
QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
NEEDS_QEMU = pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-g++") is None
    or shutil.which("aarch64-linux-gnu-gcc") is None,
    reason="needs qemu-user and g++-aarch64-linux-gnu (Debian packages, see Makefile APT_PACKAGES)")


def run_runner(bundle: Path, *args: str, qemu: bool = False, exe: Path | None = None
               ) -> subprocess.CompletedProcess[str]:
    cmd = [*(QEMU if qemu else []), str(exe or bundle / "runner"), "--bundle", str(bundle), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={"TVM_NUM_THREADS": "1"})


def refused(r: subprocess.CompletedProcess[str], match: str) -> None:
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("runner: error: "), r.stderr
    assert match in lines[0], lines[0]
    assert r.stdout == ""


def constructor_library(cc: str, path: Path, marker: Path) -> bytes:
    """A shared library whose constructor creates `marker`."""
    src = path.with_suffix(".c")
    src.write_text(f'#include <stdio.h>\n__attribute__((constructor)) static void f(void) '
                   f'{{ FILE* f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(path), str(src)], check=True, timeout=120)
    return path.read_bytes()


def forged(bundle: Path, dest: Path, files: dict[str, bytes], sums: bool = True) -> Path:
    """A copy of `bundle` with `files` replaced and, as an attacker would, the manifest's
    sums recomputed (json.dumps as vcompile writes it); the old signature stays."""
    shutil.copytree(bundle, dest)
    m = json.loads((dest / "manifest.json").read_text())
    for name, data in files.items():
        (dest / name).write_bytes(data)
        if sums:
            m["files"][name] = hashlib.sha256(data).hexdigest()
    (dest / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    return dest


def check_runner(b: Path, pub: Path, tmp: Path, qemu: bool, cc: str) -> None:
    """The right key runs the model; every forgery is one line, exit 1, no output, and the
    constructors of a forged model or runtime library never run."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from vcompile.codegen.deploy.bundle import verify_bundle
    from vcompile.errors import VcompileError
    x, out = tmp / "x.npy", tmp / "out"
    np.save(x, np.ones((1, 3, 8, 8), np.float32))
    out.mkdir()
    hex_key = load_pem_public_key(pub.read_bytes()).public_bytes_raw().hex()
    for key in (str(pub), hex_key):
        r = run_runner(b, "--verify-key", key, "-n", "1", "--warmup", "0", "-o", str(out), str(x), qemu=qemu)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert np.load(out / "y.npy").shape == (1, 4)
        (out / "y.npy").unlink()
    _, other = keypair(tmp, "other")
    marker = tmp / "constructor-ran"
    evil = constructor_library(cc, tmp / "evil.so", marker)
    model = bytearray((b / "model.so").read_bytes())
    model[len(model) // 2] ^= 1
    no_sig = tmp / "unsigned"
    shutil.copytree(b, no_sig)
    (no_sig / "manifest.json.sig").unlink()
    edited = tmp / "edited"
    shutil.copytree(b, edited)
    text = (edited / "manifest.json").read_text()
    (edited / "manifest.json").write_text(text.replace('"opt_level": 2', '"opt_level": 3'))
    runtime = forged(b, tmp / "runtime", {"libtvm_runtime.so": evil})
    cases = [(b, str(other), "does not verify with this public key"),
             (b, str(pub.parent / "key.pem"), "is a private key"),
             (b, str(tmp / "x.npy"), "is not an Ed25519 public key"),
             (no_sig, str(pub), "the bundle is not signed"),
             (edited, str(pub), "does not verify with this public key"),
             (forged(b, tmp / "byte", {"model.so": bytes(model)}), str(pub), "does not verify"),
             (forged(b, tmp / "byte0", {"model.so": bytes(model)}, sums=False), str(pub),
              "checksum mismatch for model.so"),
             (forged(b, tmp / "model", {"model.so": evil}), str(pub), "does not verify"),
             (runtime, str(pub), "does not verify")]
    for bundle, key, match in cases:
        refused(run_runner(bundle, "--verify-key", key, "-o", str(out), str(x), qemu=qemu), match)
        assert not (out / "y.npy").exists() and not marker.exists(), (bundle, match)
        if bundle != b:
            with pytest.raises(VcompileError):  # Python's check agrees
                verify_bundle(bundle, verify_key=pub)
    # the marker works: without a key the forged runtime library's constructor runs before main
    r = run_runner(runtime, "-o", str(out), str(x), qemu=qemu)
    assert r.returncode != 0 and marker.exists()


def test_runner_verifies_the_signed_bundle(signed: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    if shutil.which("cc") is None or not (signed[2] / "runner").exists():
        pytest.skip("no C compiler")
    check_runner(signed[2], signed[3], tmp_path, qemu=False, cc="cc")


@NEEDS_QEMU
def test_arm64_runner_verifies_under_qemu(signed: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    model, _, _, pub = signed
    b = tmp_path / "arm"
    r = vc(str(model), "--target", "arm64", "-o", str(tmp_path / "arm.so"), "--bundle", str(b),
           "--sign", str(pub.parent / "key.pem"))
    assert r.returncode == 0, r.stderr
    assert int.from_bytes((b / "runner").read_bytes()[18:20], "little") == 183  # EM_AARCH64
    check_runner(b, pub, tmp_path, qemu=True, cc="aarch64-linux-gnu-gcc")


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed (Debian package cmake)")
def test_runner_with_a_built_in_key(signed: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    """cmake -DVCOMPILE_VERIFY_KEY=pub.pem, cmake --install: a runner outside the bundle that
    always verifies, loads its own runtime libraries and refuses another key."""
    _, _, b, pub = signed
    build, prefix = tmp_path / "build", tmp_path / "inst"
    for cmd in (["cmake", "-S", str(b), "-B", str(build), f"-DVCOMPILE_VERIFY_KEY={pub}"],
                ["cmake", "--build", str(build)],
                ["cmake", "--install", str(build), "--prefix", str(prefix)]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    exe = prefix / "bin" / "runner"
    assert (prefix / "bin" / "libtvm_runtime.so").is_file()
    np.save(tmp_path / "x.npy", np.ones((1, 3, 8, 8), np.float32))
    r = run_runner(b, "-o", str(tmp_path), str(tmp_path / "x.npy"), exe=exe)
    assert r.returncode == 0, r.stderr
    unsigned = tmp_path / "unsigned"
    shutil.copytree(b, unsigned)
    (unsigned / "manifest.json.sig").unlink()
    refused(run_runner(unsigned, str(tmp_path / "x.npy"), exe=exe), "the bundle is not signed")
    _, other = keypair(tmp_path, "other")
    refused(run_runner(b, "--verify-key", str(other), str(tmp_path / "x.npy"), exe=exe),
            "built to verify with another public key")
    r = subprocess.run(["cmake", "-S", str(b), "-B", str(tmp_path / "bad"), "-DVCOMPILE_VERIFY_KEY=nokey"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "neither a readable file nor 64 hex digits" in r.stderr
