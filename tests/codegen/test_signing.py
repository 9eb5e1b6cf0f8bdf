"""Authenticity (issue 25, item 10): `--sign KEY` writes an Ed25519 signature beside the
library (m.so.sig) and the bundle's manifest (manifest.json.sig); `vcompile.load(path,
verify_key=)` and `vcompile run --verify-key` refuse a missing or bad signature before the
library is loaded (its constructors never run); unsigned libraries load as before.
"""
from __future__ import annotations

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
