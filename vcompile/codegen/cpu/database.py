"""The persistent MetaSchedule database of tuned CPU kernels (`codegen.tune` fills it,
the CPU backend applies its records at build time).

    open_db(default_db_dir()) => JSONDatabase over DIR/workloads.json, DIR/records.json
    commit(DIR, records)      => the records appended, their workloads found or appended

The files are MetaSchedule's: one JSON line per workload, one per record, a record naming
its workload by line index. MetaSchedule's JSONDatabase keeps the workloads it loaded in
memory and numbers a new one after them, so two processes appending to one directory
both write index N for different kernels, and from then on no records load ("parallel_for
_dynamic error"), for every model. The default directory is shared by all of a user's
runs, so here every access holds an exclusive `fcntl.flock` on DIR/.lock:

- `open_db` checks and loads the files under the lock (a reader never sees a half
  written line of a live writer);
- `commit` (what `tune` calls once, at the end: it searches into a private in-memory
  database) re-reads workloads.json under the lock, finds each record's workload there
  (same JSON line, else the same structural hash and a structurally equal module) or
  appends it, and appends the records with those line indices.

A line torn by a killed process (the last line, unterminated) is dropped with a
`TuningDatabaseWarning`; blank lines are dropped (MetaSchedule crashes on them); anything
else that is not a record of the right shape is a `TuneError` that names the file and
the line.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vcompile.cache import cache_dir
from vcompile.errors import VcompileError, VcompileWarning

WORKLOADS, RECORDS, LOCK = "workloads.json", "records.json", ".lock"


class TuneError(VcompileError, RuntimeError):
    """Tuning could not run (bad database directory, builder or runner failure)."""


class TuningDatabaseWarning(VcompileWarning):
    """The tuning database was repaired (a torn last line dropped) while loading it."""


def default_db_dir() -> Path:
    """$VCOMPILE_TUNING_DB, else `tuning/` in vcompile's cache (`vcompile.cache`)."""
    if os.environ.get("VCOMPILE_TUNING_DB"):
        return Path(os.environ["VCOMPILE_TUNING_DB"])
    return cache_dir() / "tuning"


def _usable_dir(db_dir: str | os.PathLike[str]) -> Path:
    d = Path(db_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TuneError(f"cannot use tuning database {d}: {e.strerror}; pass --tuning-db DIR") from e
    if not os.access(d, os.W_OK):
        raise TuneError(f"cannot use tuning database {d}: not writable; pass --tuning-db DIR")
    return d


@contextmanager
def locked(db_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the database's lock (exclusive, DIR/.lock); yields the directory. Blocks while
    another process (or thread) holds it; released by the kernel if the holder dies."""
    import fcntl
    d = _usable_dir(db_dir)
    try:
        fd = os.open(d / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise TuneError(f"cannot lock tuning database {d}: {e.strerror}; pass --tuning-db DIR") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield d
    finally:
        os.close(fd)  # releases the lock


def _corrupt(path: Path, why: str) -> TuneError:
    return TuneError(f"tuning database {path} is corrupt ({why}); move it away or pass --tuning-db DIR")


def _well_formed(kind: str, obj: Any) -> bool:
    if not (isinstance(obj, list) and len(obj) == 2):
        return False
    if kind == WORKLOADS:
        return all(isinstance(x, str) for x in obj)
    return isinstance(obj[0], int) and not isinstance(obj[0], bool) and isinstance(obj[1], list)


def _checked_lines(path: Path, kind: str) -> tuple[list[bytes], list[Any]]:
    """The file's lines (without newlines) and their parsed JSON; repairs the file in place
    (the caller holds the lock) when it ends in a torn line or holds blank lines."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as e:
        raise TuneError(f"cannot read tuning database {path}: {e.strerror}; pass --tuning-db DIR") from e
    chunks = data.split(b"\n")
    tail = chunks.pop()  # b"" when the file ends with a newline
    lines: list[bytes] = []
    objs: list[Any] = []
    dropped_blank = dropped_torn = False
    for n, line in enumerate([*chunks, tail] if tail else chunks, start=1):
        if not line.strip():
            dropped_blank = True
            continue
        try:
            obj = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            obj = None
        if not _well_formed(kind, obj):
            if n == len(chunks) + 1 and line.startswith(b"["):  # unterminated: torn by a kill
                dropped_torn = True
                continue
            what = "is not JSON" if obj is None else "is not a " + kind[:-6].rstrip("s") + " entry"
            raise _corrupt(path, f"line {n} {what}")
        lines.append(line)
        objs.append(obj)
    if dropped_torn or dropped_blank or tail:
        _rewrite(path, lines)
    if dropped_torn:
        warnings.warn(f"tuning database {path}: dropped its incomplete last line (a tuning run was "
                      f"killed while writing it)", TuningDatabaseWarning, stacklevel=2)
    return lines, objs


def _rewrite(path: Path, lines: list[bytes]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(b"".join(line + b"\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise TuneError(f"cannot repair tuning database {path}: {e.strerror}; pass --tuning-db DIR") from e


def _check(d: Path) -> tuple[list[bytes], list[Any], list[Any]]:
    """Both files checked (under the lock): workload lines, workload JSON, record JSON."""
    wl_lines, wls = _checked_lines(d / WORKLOADS, WORKLOADS)
    _, recs = _checked_lines(d / RECORDS, RECORDS)
    for n, rec in enumerate(recs, start=1):
        if not 0 <= rec[0] < len(wls):
            raise _corrupt(d / RECORDS, f"record {n} refers to workload {rec[0]}, and "
                                        f"{d / WORKLOADS} has {len(wls)}")
    return wl_lines, wls, recs


def _load(d: Path) -> Any:
    from tvm.s_tir import meta_schedule as ms
    _, wls, recs = _check(d)
    try:
        return ms.database.JSONDatabase(path_workload=str(d / WORKLOADS),
                                        path_tuning_record=str(d / RECORDS),
                                        module_equality="structural")
    except Exception as e:  # noqa: BLE001  (TVM raises RuntimeError, ValueError, ...)
        raise _corrupt(d / RECORDS, _why_unloadable(wls, recs) or
                       f"MetaSchedule cannot load it: {str(e).strip().splitlines()[0][:200]}") from e


def _why_unloadable(wls: list[Any], recs: list[Any]) -> str | None:
    """Which record MetaSchedule failed on: the first whose schedule does not replay on
    its workload (two unlocked tuning runs wrote it, each numbering its own workloads)."""
    from tvm.s_tir import meta_schedule as ms
    loaded: dict[int, Any] = {}
    for n, (idx, rec) in enumerate(recs, start=1):
        try:
            if idx not in loaded:
                loaded[idx] = ms.database.Workload.from_json(wls[idx])
            ms.database.TuningRecord.from_json(rec, loaded[idx])
        except Exception:  # noqa: BLE001
            return (f"record {n} does not apply to workload {idx}, as when two tuning runs "
                    f"wrote it at once")
    return None


def open_db(db_dir: str | os.PathLike[str]) -> Any:
    """The database in `db_dir` (created if missing), checked and loaded under its lock.
    The object holds what was on disk then; write to it only through `commit`."""
    with locked(db_dir) as d:
        return _load(d)


def _to_json(obj: Any) -> Any:
    """TVM's JSON objects (ffi arrays, maps, strings, numbers) as plain Python."""
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if hasattr(obj, "items"):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if hasattr(obj, "value"):  # IntImm, FloatImm
        return obj.value
    return [_to_json(x) for x in obj]


def _dumps(obj: Any) -> bytes:
    return json.dumps(_to_json(obj), separators=(",", ":")).encode()


def _serialized(records: Sequence[Any]) -> tuple[list[Any], list[tuple[int, Any]]]:
    """The records' workloads and records as MetaSchedule's own JSON writer spells them
    (its C++ serializer handles every trace attribute, an IndexMap of a layout rewrite
    too, which the Python `as_json` cannot): written into a scratch JSONDatabase, read
    back as (workload JSON list, [(scratch workload index, record JSON)])."""
    import tempfile

    from tvm.s_tir import meta_schedule as ms
    with tempfile.TemporaryDirectory(prefix="vcompile-db-") as tmp:
        wl_path, rec_path = os.path.join(tmp, WORKLOADS), os.path.join(tmp, RECORDS)
        scratch = ms.database.JSONDatabase(path_workload=wl_path, path_tuning_record=rec_path,
                                           module_equality="structural")
        for rec in records:
            wl = scratch.commit_workload(rec.workload.mod)
            scratch.commit_tuning_record(ms.database.TuningRecord(
                rec.trace, wl, rec.run_secs, rec.target, rec.args_info))
        with open(wl_path) as f:
            wls = [json.loads(line) for line in f if line.strip()]
        with open(rec_path) as f:
            recs = [(int(r[0]), r[1]) for r in (json.loads(line) for line in f if line.strip())]
    return wls, recs


def commit(db_dir: str | os.PathLike[str], records: Sequence[Any]) -> int:
    """Append MetaSchedule tuning records (of any database) to the one in `db_dir`, under
    its lock: each record's workload is found in workloads.json as it is now, or appended,
    and the record written with that line's index. Returns the workloads appended."""
    if not records:
        return 0
    import tvm
    from tvm.s_tir import meta_schedule as ms
    with locked(db_dir) as d:
        wl_lines, wls, _ = _check(d)
        index = {line: i for i, line in reversed(list(enumerate(wl_lines)))}
        by_hash: dict[str, list[int]] = {}
        for i, (shash, _mod) in enumerate(wls):
            by_hash.setdefault(shash, []).append(i)
        new_wls: list[bytes] = []
        new_recs: list[bytes] = []
        scratch_wls, scratch_recs = _serialized(records)
        shared_of: dict[int, int] = {}  # scratch workload index -> index in the shared file
        for k, wl_json in enumerate(scratch_wls):
            shash = wl_json[0]
            line = _dumps(wl_json)
            i = index.get(line)
            if i is None:  # not this exact JSON: a structurally equal module with its hash?
                mod = ms.database.Workload.from_json(wl_json).mod
                i = next((j for j in by_hash.get(shash, ())
                          if tvm.ir.structural_equal(ms.database.Workload.from_json(wls[j]).mod,
                                                     mod)), None)
                if i is None:
                    i = len(wl_lines) + len(new_wls)
                    new_wls.append(line)
                index[line] = i
            shared_of[k] = i
        for k, rec_json in scratch_recs:
            new_recs.append(_dumps([shared_of[k], rec_json]))
        _append(d / WORKLOADS, new_wls)
        _append(d / RECORDS, new_recs)
        return len(new_wls)


def _append(path: Path, lines: list[bytes]) -> None:
    if not lines:
        return
    try:
        with open(path, "ab") as f:
            f.write(b"".join(line + b"\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise TuneError(f"cannot write tuning database {path}: {e.strerror}; pass --tuning-db DIR") from e
