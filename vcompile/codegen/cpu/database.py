"""The persistent MetaSchedule database of tuned CPU kernels (`codegen.tune` fills it,
the CPU backend applies its records at build time).

    open_db(default_db_dir()) => JSONDatabase over DIR/workloads.json, DIR/records.json
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vcompile.cache import cache_dir
from vcompile.errors import VcompileError


class TuneError(VcompileError, RuntimeError):
    """Tuning could not run (bad database directory, builder or runner failure)."""


def default_db_dir() -> Path:
    """$VCOMPILE_TUNING_DB, else `tuning/` in vcompile's cache (`vcompile.cache`)."""
    if os.environ.get("VCOMPILE_TUNING_DB"):
        return Path(os.environ["VCOMPILE_TUNING_DB"])
    return cache_dir() / "tuning"


def open_db(db_dir: str | os.PathLike[str]) -> Any:
    from tvm.s_tir import meta_schedule as ms
    d = Path(db_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TuneError(f"cannot use tuning database {d}: {e.strerror}; pass --tuning-db DIR") from e
    if not os.access(d, os.W_OK):
        raise TuneError(f"cannot use tuning database {d}: not writable; pass --tuning-db DIR")
    return ms.database.JSONDatabase(path_workload=str(d / "workloads.json"),
                                    path_tuning_record=str(d / "records.json"),
                                    module_equality="structural")
