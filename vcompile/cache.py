"""Where vcompile keeps files between runs: tuning records, downloaded runtimes, the CUDA stub.

    cache_dir() => $VCOMPILE_CACHE, else $XDG_CACHE_HOME/vcompile (~/.cache/vcompile)
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    env = os.environ.get("VCOMPILE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vcompile"
