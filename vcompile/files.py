"""Writing files whole or not at all: a temporary sibling of the destination, renamed into
place when it is complete, so a reader never sees half a file and a failure (or Ctrl-C)
leaves the old file, or none.

    with atomic_path(out) as tmp:       # tmp: an empty file next to `out`
        write_something(tmp)            # any writer that takes a path
    write_atomic(out, data)             # str or bytes

The bottom layer: imports nothing from vcompile but its errors.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vcompile.errors import VcompileError


def default_mode() -> int:
    """The mode `open` gives a new file: 0o666 less the umask (mkstemp's 0600 is for secrets)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int | None = None,
                error: type[VcompileError] = VcompileError) -> Iterator[Path]:
    """Yield a temporary path in `path`'s directory; when the block completes, give it `mode`
    (default: `default_mode()`) and rename it onto `path`. On any exception the temporary
    file is removed and `path` is left as it was. A missing directory, or an OSError from
    the block or the rename, raises `error("cannot write PATH: why")`."""
    path = Path(path)
    dest = path.absolute().parent
    if not dest.is_dir():
        raise error(f"cannot write {path}: directory {dest} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=dest)
    except OSError as e:
        raise error(f"cannot write {path}: {e.strerror or e}") from e
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, default_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise error(f"cannot write {path}: {e.strerror or e}") from e
        raise


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write `data` (str as UTF-8) to `path` through a temporary sibling; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)
