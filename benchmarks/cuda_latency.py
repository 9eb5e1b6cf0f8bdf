"""The suite's CUDA builds against PyTorch eager and torch.compile on an NVIDIA GPU.

    .venv/bin/python benchmarks/cuda_latency.py [--models resnet18,deit_tiny_patch16_224] [--repeat 50]

Needs an NVIDIA GPU with its driver (not the stub vcompile builds with): exits 2
saying so otherwise. For each model (timm, seeded random weights, legacy ONNX export
from tests/models.py) it builds `vcompile --target cuda --arch sm_XY` for the GPU's own
arch, then times vcompile, PyTorch eager and torch.compile (inductor) interleaved,
batch 1, fp32, after warm-up, each call synchronized. vcompile's time includes copying
the input to the GPU and the output back (its Python API takes numpy arrays); PyTorch's
input stays on the GPU. Outputs are compared with eager. Writes cuda_latency.md/.json
with the date and the GPU's name. Not yet run: the build machine has no GPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def gpu_arch(torch: object) -> str:
    major, minor = torch.cuda.get_device_capability()  # type: ignore[attr-defined]
    return f"sm_{major}{minor}"


def one(name: str, arch: str, repeat: int) -> dict:
    import torch

    import vcompile
    from tests.models import onnx_model
    from vcompile.models import create_timm
    from vcompile.runtime.bench import time_interleaved
    t0 = time.perf_counter()
    m = vcompile.compile(str(onnx_model(name)), target="cuda", arch=arch, opt_level=2)
    build_s = time.perf_counter() - t0
    model, shape = create_timm(name)
    model = model.cuda()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    xg, xn = x.cuda(), x.numpy()
    compiled = torch.compile(model)

    def synced(f):  # type: ignore[no-untyped-def]
        def g() -> None:
            f()
            torch.cuda.synchronize()
        return g
    with torch.no_grad():
        ref = model(xg).float().cpu().numpy()
        got = m(xn)[0]
        compiled(xg)  # compile outside the timing
        res = time_interleaved({"vcompile": synced(lambda: m(xn)), "eager": synced(lambda: model(xg)),
                                "torch.compile": synced(lambda: compiled(xg))}, warmup=5, repeat=repeat)
    err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))
    return {"model": name, "build_s": round(build_s, 1), "rel_err": err,
            **{k: round(v.median_ms, 3) for k, v in res.items()}}


def main() -> int:
    from tests.models import SUITE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(SUITE))
    p.add_argument("--repeat", type=int, default=50)
    args = p.parse_args()
    import torch

    from vcompile.codegen import targets
    if not torch.cuda.is_available() or not targets.spec("cuda").runs_here:
        print("cuda_latency: needs an NVIDIA GPU and driver (torch.cuda.is_available() is False "
              "or no libcuda); nothing measured", file=sys.stderr)
        return 2
    arch, gpu = gpu_arch(torch), torch.cuda.get_device_name()
    rows = [one(name, arch, args.repeat) for name in args.models.split(",")]
    (HERE / "cuda_latency.json").write_text(json.dumps({"gpu": gpu, "arch": arch, "rows": rows}, indent=1))
    lines = [f"# CUDA latency, {gpu} ({arch}), batch 1, fp32, {time.strftime('%Y-%m-%d')}", "",
             "| model | vcompile ms | PyTorch eager ms | torch.compile ms | vcompile / eager | "
             "vcompile / compile | rel err | build s |", "| --- |" + " ---: |" * 7]
    for r in rows:
        lines.append(f"| {r['model']} | {r['vcompile']} | {r['eager']} | {r['torch.compile']} | "
                     f"{r['vcompile'] / r['eager']:.2f}x | {r['vcompile'] / r['torch.compile']:.2f}x | "
                     f"{r['rel_err']:.1e} | {r['build_s']} |")
    (HERE / "cuda_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
