"""Writing output files whole or not at all: a temporary file in the destination
directory, renamed into place."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vcompile.errors import VcompileError


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write `data` to `path` through a temporary sibling; a failure leaves no file."""
    path = Path(path)
    dest = path.resolve().parent
    if not dest.is_dir():
        raise VcompileError(f"cannot write {path}: directory {dest} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=dest)
    except OSError as e:
        raise VcompileError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is for secrets, not reports
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise VcompileError(f"cannot write {path}: {e.strerror or e}") from e
        raise
    return path
