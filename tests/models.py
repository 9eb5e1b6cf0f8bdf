"""Shared test helper: the timm model suite, exported once into a cache, and seeded inputs.

    from tests.models import SUITE, onnx_model, sample_input
    path = onnx_model("resnet18", "dynamo")   # exports on first use, then reuses the file
    x = sample_input("resnet18")              # f32[1,3,224,224], the same on every call

The cache is `.cache/models/` at the repository root (gitignored), or the directory in
`$VCOMPILE_MODEL_CACHE`. Files are named `<model>.<exporter>.s<seed>.onnx`; delete
them after changing `vcompile.models` or upgrading torch/timm. Parallel pytest-xdist
workers may ask for the same model: an exclusive lock file serializes the export, and
`export_timm` writes atomically, so nobody reads a half-written file.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

import numpy as np

from vcompile.models import EXPORTERS, export_timm, input_size

SUITE = [
    "resnet18", "convnext_atto", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224",
    "efficientvit_b0", "efficientvit_m0", "fastvit_t8", "levit_128s", "mobilevitv2_050",
    "repvit_m0_9", "poolformer_s12", "pvt_v2_b0",
]
__all__ = ["CACHE", "EXPORTERS", "SUITE", "onnx_model", "sample_input"]

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("VCOMPILE_MODEL_CACHE", ROOT / ".cache" / "models"))


def cached_path(name: str, exporter: str = "legacy", seed: int = 0) -> Path:
    return CACHE / f"{name}.{exporter}.s{seed}.onnx"


def onnx_model(name: str, exporter: str = "legacy", seed: int = 0) -> Path:
    """The cached ONNX export of timm model `name`, exported first if absent."""
    path = cached_path(name, exporter, seed)
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not path.exists():  # another worker may have exported it while we waited
            export_timm(name, path, exporter, seed)
    return path


def sample_input(name: str, seed: int = 0) -> np.ndarray:
    """A seeded standard-normal f32 input of the model's default shape (batch 1)."""
    return np.random.default_rng(seed).standard_normal(input_size(name), dtype=np.float32)
