"""Writing files whole or not at all: a temporary sibling of the destination, renamed into
place when it is complete, so a reader never sees half a file and a failure (or Ctrl-C)
leaves the old file, or none.

    with atomic_path(out) as tmp:       # tmp: an empty file next to `out`
        write_something(tmp)            # any writer that takes a path
    write_atomic(out, data)             # str or bytes

Every temporary name starts `.vcompile-HOST-PID-` (HOST: a hash of the host name), so a
run that was killed (SIGKILL, a machine reset) leaves litter that the next run can tell
from another live writer's: `sweep_stale` removes entries whose writer was on this host
and is gone, or that are older than a day (another host's, on a shared filesystem).
`terminate_as_exit` turns SIGTERM into SystemExit, which the cleanup here already handles.

The bottom layer: imports nothing from vcompile but its errors.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vcompile.errors import VcompileError


def default_mode() -> int:
    """The mode `open` gives a new file: 0o666 less the umask (mkstemp's 0600 is for secrets)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


STALE_AFTER_S = 24 * 3600  # another host's temporaries: removed after a day
_NAME = re.compile(r"^\.?vcompile-(?:[a-z]+-)?([0-9a-f]{8})-([0-9]+)-")


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_prefix(kind: str = "", hidden: bool = True) -> str:
    """The prefix of this process's temporary names: `.vcompile-[KIND-]HOST-PID-`."""
    return f"{'.' if hidden else ''}vcompile-{kind + '-' if kind else ''}{_host_tag()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's live process
        return True
    return True


def is_stale(path: str | os.PathLike[str], *, now: float | None = None) -> bool:
    """Whether `path` is a vcompile temporary whose writer is gone: on this host and its pid
    not running, or older than STALE_AFTER_S (a writer on another host sharing the disk)."""
    m = _NAME.match(os.path.basename(path))
    if m is None:
        return False
    try:
        age = (time.time() if now is None else now) - os.lstat(path).st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    pid = int(m.group(2))
    return m.group(1) == _host_tag() and pid != os.getpid() and not _alive(pid)


def sweep_stale(directory: str | os.PathLike[str], kind: str = "") -> list[str]:
    """Remove the stale vcompile temporaries (`[.]vcompile-[KIND-]...`, files or directories)
    in `directory` left by killed runs; returns what was removed. Never raises."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    mine = re.compile(rf"^\.?vcompile-{re.escape(kind) + '-' if kind else ''}[0-9a-f]{{8}}-[0-9]+-")
    for name in names:
        if not mine.match(name):
            continue
        path = os.path.join(directory, name)
        if not is_stale(path):
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


class _Terminated(SystemExit):
    """SIGTERM, raised in the main thread so `finally` and the cleanups here run."""


@contextmanager
def terminate_as_exit() -> Iterator[None]:
    """While active (main thread only; elsewhere a no-op), SIGTERM raises SystemExit(143),
    so temporaries are removed as for Ctrl-C; the previous handler is restored after."""
    def raise_exit(signum: int, frame: Any) -> None:
        raise _Terminated(128 + signum)
    try:
        previous = signal.signal(signal.SIGTERM, raise_exit)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    if path.is_dir():
        raise error(f"cannot write {path}: it is a directory")
    sweep_stale(dest)
    try:
        fd, name = tempfile.mkstemp(prefix=f"{temp_prefix()}{path.name}.", dir=dest)
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
