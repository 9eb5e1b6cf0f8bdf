"""Export timm models *in training form* (branches and BatchNorms kept) for the
folding and re-parameterization tests, plus the same model after timm's own
`reparameterize_model()`, to compare conv counts.

BN running statistics and affine parameters are redrawn (timm initializes them to
0/1; `vcompile.models.create_timm` does it), so folding sees non-trivial values. The
legacy exporter folds Conv+BN by itself in eval mode; `training=TrainingMode.PRESERVE` (with the model in
eval mode) and `do_constant_folding=False` keep the BatchNormalization nodes.
"""
from __future__ import annotations

import fcntl
from pathlib import Path

import numpy as np

from tests.models import CACHE

# name in the issue -> timm name
MODELS = {"resnet18": "resnet18", "repvit_m0_9": "repvit_m0_9", "fastvit_t8": "fastvit_t8",
          "mobileone_s0": "mobileone_s0", "repvgg_a0": "repvgg_a0", "nextvit_small": "nextvit_small",
          "efficientvit_m0": "efficientvit_m0"}


def build(name: str, seed: int = 0):  # type: ignore[no-untyped-def]
    """The eval-mode model with seeded weights; BN statistics and the constant-initialized
    scales are redrawn by `vcompile.models.create_timm`, so folding sees real values."""
    from vcompile.models import create_timm
    return create_timm(name, seed)[0]


def export(name: str, form: str = "train", seed: int = 0) -> Path:
    """Cached ONNX file of `name` in `form` "train" (as built) or "reparam" (timm's)."""
    path = CACHE / f"{name}.{form}.s{seed}.onnx"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            _export(name, form, seed, path)
    return path


def _export(name: str, form: str, seed: int, path: Path) -> None:
    import torch
    from timm.utils import reparameterize_model
    model = build(name, seed)
    if form == "reparam":
        model = reparameterize_model(model)
    x = torch.from_numpy(sample(name, seed))
    tmp = path.with_suffix(".tmp")
    torch.onnx.export(model, (x,), str(tmp), dynamo=False, opset_version=17,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE,
                      input_names=["x"], output_names=["logits"])
    tmp.rename(path)


def sample(name: str, seed: int = 0) -> np.ndarray:
    from vcompile.models import input_size
    return np.random.default_rng(seed).standard_normal(input_size(name), dtype=np.float32)


def onnx_op_count(path: Path, op_type: str) -> int:
    import onnx
    return sum(n.op_type == op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
