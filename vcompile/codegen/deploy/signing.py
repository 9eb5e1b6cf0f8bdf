"""Ed25519 signatures for libraries and bundle manifests (`--sign KEY`, `--verify-key PUB`).

    sign_file("m.so", load_private_key("key.pem"))   => m.so.sig
    verify_file("m.so", "pub.pem")                   # raises SignatureError

A signature is a `.sig` file beside what it signs: the raw 64-byte Ed25519 signature of
the file's bytes, all of them (for a library: the ELF part and the metadata trailer). The
library's own format does not change, so unsigned and older libraries load as before and
a signed one loads on a vcompile without this module; and anyone can check a signature
with OpenSSL alone:

    openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in m.so -sigfile m.so.sig

A bundle's manifest.json lists the sha256 of every other file, so its signature
(manifest.json.sig) covers the whole bundle; the bundle's C++ runner checks it too
(`runner --verify-key pub.pem`, or a key built in with `cmake -DVCOMPILE_VERIFY_KEY=`),
with its own Ed25519 (templates/ed25519.h.j2), before any library of the bundle runs.
Keys are PEM files, made with
`openssl genpkey -algorithm ed25519 -out key.pem` and
`openssl pkey -in key.pem -pubout -out pub.pem`.

Without a signature, the sha256 sums in a library's trailer and a bundle's manifest detect
corruption, not tampering: whoever can edit the file can recompute them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vcompile.errors import VcompileError

SUFFIX = ".sig"


class SignatureError(VcompileError, ValueError):
    """A key that cannot be used, or a signature that is missing or does not verify."""


def signature_path(path: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(path) + SUFFIX)


def _read_key(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SignatureError(f"cannot read the {what} {path}: {e.strerror or e}") from e


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as e:
        raise SignatureError("signing needs the 'cryptography' package: pip install cryptography") from e
    return serialization


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 private key from a PEM file; raises SignatureError saying what is wrong."""
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    data = _read_key(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as e:
        raise SignatureError(f"signing key {path} is encrypted; give an unencrypted PEM key "
                             "(openssl genpkey -algorithm ed25519 -out key.pem)") from e
    except Exception as e:
        raise SignatureError(f"signing key {path} is not a PEM private key "
                             "(openssl genpkey -algorithm ed25519 -out key.pem)") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"signing key {path} is a {type(key).__name__.removeprefix('_')}, "
                             "not an Ed25519 key (openssl genpkey -algorithm ed25519 -out key.pem)")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 public key from a PEM file; raises SignatureError saying what is wrong."""
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    data = _read_key(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except Exception as e:
        raise SignatureError(f"public key {path} is not a PEM public key "
                             "(openssl pkey -in key.pem -pubout -out pub.pem)") from e
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"public key {path} is not an Ed25519 key")
    return key


def sign_file(path: str | os.PathLike[str], key: Any) -> Path:
    """Write PATH.sig, the Ed25519 signature of PATH's bytes; returns its path."""
    from vcompile.files import write_atomic
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SignatureError(f"cannot sign {path}: {e.strerror or e}") from e
    return write_atomic(signature_path(path), key.sign(data))


def verify_file(path: str | os.PathLike[str], public_key: str | os.PathLike[str] | Any) -> None:
    """Check PATH.sig against PATH's bytes with `public_key` (a PEM path or a loaded key);
    raises SignatureError when the signature is missing, malformed or does not verify."""
    key = load_public_key(public_key) if isinstance(public_key, (str, os.PathLike)) else public_key
    from cryptography.exceptions import InvalidSignature
    sig_path = signature_path(path)
    try:
        sig = sig_path.read_bytes()
        data = Path(path).read_bytes()
    except FileNotFoundError as e:
        which = sig_path if e.filename == os.fspath(sig_path) else path
        raise SignatureError(f"{path} is not signed: {which} not found (sign it with "
                             "`vcompile MODEL --sign KEY`)" if which == sig_path
                             else f"cannot read {path}: not found") from e
    except OSError as e:
        raise SignatureError(f"cannot read {path} or its signature: {e.strerror or e}") from e
    try:
        key.verify(sig, data)
    except InvalidSignature as e:
        raise SignatureError(f"the signature of {path} does not verify with this public key: "
                             "the file was altered or signed with another key") from e
