"""Export timm models (random weights) to ONNX, for the demo, the tests and the benchmarks.

    python -m vcompile.models export resnet18 -o .cache/models/resnet18.onnx [--exporter dynamo]

Models are built with `pretrained=False` (no hub access), in eval mode, batch 1, at
the default input size of their pretrained config. Two exporters:

- `legacy`: the TorchScript exporter, `torch.onnx.export(..., dynamo=False)`, opset 17.
  It folds BatchNorm into Conv and leaves Shape/Gather/Concat chains behind.
- `dynamo`: `torch.export` + onnxscript, opset 18, one self-contained file
  (`external_data=False`), with its progress output and warnings silenced.

NOTE: weights are seeded (`torch.manual_seed(seed)`), and every parameter or buffer
that timm initializes to one repeated value (zero-init last BatchNorm gamma, 1e-6 layer
scales, zero biases, unit running variances) is redrawn from the same seed. Without
this, whole residual branches of a random-weight model contribute nothing, and a
frontend bug inside them could not change the output a test compares.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vcompile.errors import VcompileError
from vcompile.files import atomic_path

EXPORTERS = ("legacy", "dynamo")
OPSETS = {"legacy": 17, "dynamo": 18}
INPUT_NAME, OUTPUT_NAME = "x", "logits"
_INSTALL = "install the torch extra: pip install -e '.[torch]'"
# Suffixes of parameters that scale their input: redrawn near 1, the others near 0.
_MULTIPLICATIVE = ("weight", "gamma", "scale", "running_var")


def _import_timm() -> tuple[Any, Any]:
    try:
        import timm
        import torch
    except ImportError as e:
        raise VcompileError(f"exporting timm models needs torch and timm ({e}); {_INSTALL}") from e
    return torch, timm


def _check_name(timm: Any, name: str) -> None:
    if timm.is_model(name):
        return
    base = name.split(".")[0]
    close = timm.list_models(f"*{base}*")
    if not close:
        close = difflib.get_close_matches(base, timm.list_models(), n=8, cutoff=0.6)
    hint = f"; close matches: {', '.join(close[:8])}" if close else "; see timm.list_models()"
    more = f" (and {len(close) - 8} more)" if len(close) > 8 else ""
    raise VcompileError(f"unknown timm model {name!r}{hint}{more}")


def input_size(name: str) -> tuple[int, ...]:
    """The model's default input shape with batch 1, e.g. (1, 3, 224, 224), without building it."""
    _, timm = _import_timm()
    _check_name(timm, name)
    cfg = timm.models.get_pretrained_cfg(name)
    size = getattr(cfg, "input_size", None) or (3, 224, 224)
    return (1, *(int(d) for d in size))


def _redraw_constant_tensors(torch: Any, model: Any, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed + 1)
    state = dict(model.named_parameters())
    # Other buffers (attention masks, position indices) are structure, not weights.
    state.update((k, b) for k, b in model.named_buffers() if k.endswith(("running_mean", "running_var")))
    with torch.no_grad():
        for key, t in state.items():
            if not t.is_floating_point() or t.numel() < 2 or not bool((t == t.flatten()[0]).all()):
                continue
            r = torch.rand(t.shape, generator=gen, dtype=t.dtype)
            if key.endswith(_MULTIPLICATIVE):
                t.copy_(0.5 + r)          # U(0.5, 1.5): keeps activations at their scale
            else:
                t.copy_(0.2 * (r - 0.5))  # U(-0.1, 0.1)


def create_timm(name: str, seed: int = 0) -> tuple[Any, tuple[int, ...]]:
    """The eval-mode model with seeded random weights, and its input shape (batch 1)."""
    torch, timm = _import_timm()
    _check_name(timm, name)
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False).eval()
    _redraw_constant_tensors(torch, model, seed)
    cfg = timm.data.resolve_data_config({}, model=model)
    return model, (1, *(int(d) for d in cfg["input_size"]))


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Silence exporter chatter (prints, warnings, logging); the text is kept for errors."""
    import logging
    buf = io.StringIO()
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield buf
    finally:
        root.setLevel(old_level)


def _export(torch: Any, model: Any, x: Any, tmp: Path, exporter: str) -> None:
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    with torch.no_grad():
        if exporter == "legacy":
            torch.onnx.export(model, (x,), str(tmp), dynamo=False, opset_version=OPSETS[exporter],
                              **names)
        else:
            prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=OPSETS[exporter],
                                     external_data=False, verbose=False, **names)
            prog.save(str(tmp), external_data=False)


def export_timm(name: str, path: str | os.PathLike[str], exporter: str = "legacy",
                seed: int = 0) -> Path:
    """Export timm model `name` to one ONNX file at `path`; returns the path.

    The file appears atomically (written to a temporary file, then renamed), so a
    reader never sees half a model and parallel exports of one path do not clash.
    """
    if exporter not in EXPORTERS:
        raise VcompileError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    torch, _ = _import_timm()
    model, shape = create_timm(name, seed)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, _quiet() as log:
        try:
            _export(torch, model, x, tmp, exporter)
        except Exception as e:
            last = [ln for ln in log.getvalue().splitlines() if ln.strip()][-1:]
            detail = f" (exporter said: {last[0].strip()})" if last else ""
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise VcompileError(f"{exporter} ONNX export of {name} failed: "
                                f"{type(e).__name__}: {msg}{detail}") from e
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vcompile.models",
                                description="export timm models (random weights) to ONNX")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ex = sub.add_parser("export", help="export one timm model to an ONNX file")
    ex.add_argument("name", help="timm model name, e.g. resnet18")
    ex.add_argument("-o", "--output", required=True, type=Path, help="the .onnx file to write")
    ex.add_argument("--exporter", choices=EXPORTERS, default="legacy",
                    help="legacy: TorchScript, opset 17 (default); dynamo: torch.export, opset 18")
    ex.add_argument("--seed", type=int, default=0, help="seed for the random weights (default 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        path = export_timm(args.name, args.output, args.exporter, args.seed)
    except VcompileError as e:
        print(f"vcompile: error: {e}", file=sys.stderr)
        return 1
    mib = path.stat().st_size / 2**20
    print(f"wrote {path} ({args.name}, {args.exporter} exporter, opset {OPSETS[args.exporter]}, "
          f"{mib:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
