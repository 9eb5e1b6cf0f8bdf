"""The vcompile artifact: one ELF shared library with a metadata trailer.

    model.so = <ELF library TVM exported> <metadata JSON, utf-8> <u64 LE: JSON length> b"VCOMPILE"

Why a trailer: the library stays one file that both `vcompile.load` and the C++ runner
(which ignores the trailer: the dynamic loader only reads what the ELF headers point
at) can use, and the metadata is readable without TVM, so a wrong file fails in
milliseconds with a precise message. The JSON holds the format tag, input/output
names, shapes and dtypes, the target, the passes run, and the size and sha256 of the
ELF part, which `read` checks before anything hands the file to dlopen (a truncated
or altered library would otherwise crash the process or load garbage).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import sys
from collections.abc import Iterator
from typing import Any

from vcompile.errors import VcompileError

FORMAT = "vcompile-artifact-1"
MAGIC = b"VCOMPILE"
_TAIL = struct.Struct("<Q8s")


class ArtifactError(VcompileError, ValueError):
    """A file that is not a (complete) vcompile library."""


def sha256(path: str | os.PathLike[str], size: int | None = None) -> str:
    """Hex sha256 of a file's first `size` bytes (all of it when None)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = os.path.getsize(path) if size is None else size
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def append_metadata(path: str, meta: dict[str, Any]) -> None:
    """Append the trailer to a freshly exported library (adds elf_size and elf_sha256)."""
    size = os.path.getsize(path)
    full = {**meta, "elf_size": size, "elf_sha256": sha256(path, size)}
    blob = json.dumps(full, sort_keys=True).encode()
    with open(path, "ab") as f:
        f.write(blob + _TAIL.pack(len(blob), MAGIC))


def _elf_end(head: bytes) -> int | None:
    """Where an ELF64 file's section header table ends (its minimal complete size)."""
    if len(head) < 64 or head[4] != 2:  # only ELF64 carries e_shoff at this offset
        return None
    end = "<" if head[5] == 1 else ">"
    shoff = struct.unpack_from(end + "Q", head, 0x28)[0]
    shentsize, shnum = struct.unpack_from(end + "HH", head, 0x3A)
    return shoff + shentsize * shnum


def _starts_json(path: str, offset: int) -> bool:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(2) == b'{"'


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a vcompile library; raises ArtifactError saying what is wrong."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(64)
            f.seek(max(size - _TAIL.size, 0))
            tail = f.read(_TAIL.size)
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from e
    if head[:4] != b"\x7fELF":
        raise ArtifactError(f"{path} is not a vcompile library (not an ELF shared library)")
    if len(tail) < _TAIL.size or _TAIL.unpack(tail)[1] != MAGIC:
        elf_end = _elf_end(head)
        if elf_end is not None and size < elf_end:
            raise ArtifactError(f"{path} is truncated ({size} bytes; its ELF headers need "
                                f"{elf_end}); rebuild it")
        if elf_end is not None and size > elf_end and _starts_json(path, elf_end):
            raise ArtifactError(f"{path} is truncated (its vcompile metadata is cut off); rebuild it")
        raise ArtifactError(f"{path} is a shared library but not a vcompile library "
                            "(no vcompile metadata); build it with `vcompile MODEL -o FILE`")
    n = _TAIL.unpack(tail)[0]
    if n > size - _TAIL.size:
        raise ArtifactError(f"{path} is corrupt: metadata length {n} exceeds the file")
    with open(path, "rb") as f:
        f.seek(size - _TAIL.size - n)
        blob = f.read(n)
    try:
        meta = json.loads(blob)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly nested JSON
        raise ArtifactError(f"{path} is corrupt: its metadata is not valid JSON") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ArtifactError(f"{path} has metadata format {found!r}; "
                            f"this vcompile reads {FORMAT!r}: rebuild it")
    elf = meta.get("elf_size")
    if not isinstance(elf, int) or isinstance(elf, bool):
        raise ArtifactError(f"{path} is corrupt: its metadata's elf_size is {elf!r:.40}, not a "
                            "byte count; rebuild it")
    if elf != size - _TAIL.size - n:
        raise ArtifactError(f"{path} is truncated or corrupt: library part is "
                            f"{size - _TAIL.size - n} bytes, metadata says {elf}")
    if sha256(path, elf) != meta.get("elf_sha256"):
        raise ArtifactError(f"{path} is corrupt: the library's checksum does not match its metadata")
    return meta


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C++ log lines on fd 2 (TVM's 'Scope Saving' warnings) during a call."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
