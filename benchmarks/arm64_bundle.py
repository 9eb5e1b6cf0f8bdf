"""Run arm64 bundles under qemu-aarch64 and compare them with the x86 build.

    .venv/bin/python benchmarks/arm64_bundle.py [--models resnet18,deit_tiny_patch16_224] [--int8]

For each model: `vcompile MODEL --target arm64 --bundle DIR`, then the bundle's
cross-built C++ runner under `qemu-aarch64 -L /usr/aarch64-linux-gnu` on the seeded
sample input, then the x86_64 build in this process on the same input. Prints the max
relative difference and the runner's median under qemu (an emulator: not a device
speed) and writes arm64_bundle.md. With --int8 both builds are int8 (`--int8 --calib`
on two seeded inputs that are not the sample): the integer kernels must agree bit for
bit (the outputs are the same integers dequantized), written to arm64_bundle_int8.md.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def one(name: str, tmp: Path, int8: bool = False) -> str:
    import vcompile
    from tests.models import onnx_model, sample_input
    from vcompile.cli import main
    model = onnx_model(name)
    b = tmp / name
    x = sample_input(name)
    quant: list[str] = []
    kw: dict[str, object] = {}
    if int8:
        rng = np.random.default_rng(7)
        calib = np.stack([rng.standard_normal(x.shape[1:]).astype(np.float32) for _ in range(2)])
        from vcompile.api import to_graph
        from vcompile.ir.graph import io_names
        np.savez(tmp / "calib.npz", **{io_names(to_graph(str(model)))[0][0]: calib})
        quant = ["--int8", "--calib", str(tmp / "calib.npz")]
        kw = {"quantize": "int8", "calib": str(tmp / "calib.npz")}
    assert main([str(model), "--target", "arm64", "-o", str(tmp / f"{name}.so"), "--bundle", str(b),
                 "-q", *quant]) == 0
    np.save(tmp / "x.npy", x)
    r = subprocess.run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(b / "runner"), "-n", "3",
                        "-o", str(tmp), str(tmp / "x.npy")], capture_output=True, text=True,
                       env={"TVM_NUM_THREADS": "2"})
    if r.returncode != 0:
        return f"| {name} | runner failed: {r.stderr.strip()} | | |"
    median = re.search(r"median ([\d.]+) ms", r.stdout).group(1)  # type: ignore[union-attr]
    want = vcompile.compile(str(model), target="x86_64", **kw)(x)  # type: ignore[arg-type]
    got = [np.load(p) for p in sorted(tmp.glob("*.npy")) if p.name != "x.npy"]
    err = max(float(np.abs(g - w).max() / np.abs(w).max()) for g, w in zip(got, want, strict=True))
    for p in tmp.glob("*.npy"):
        p.unlink()
    return f"| {name} | {err:.1e} | {median} | {(b / 'model.so').stat().st_size / 1e6:.1f} |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet18,deit_tiny_patch16_224,mobilevitv2_050")
    p.add_argument("--int8", action="store_true", help="compare int8 builds (bit for bit)")
    args = p.parse_args()
    rows = ["| model | max rel diff arm64 (qemu) vs x86_64 | runner median ms under qemu, 2 threads | "
            "model.so MB |", "| --- | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(one(name, Path(tmp), args.int8))
            print(rows[-1], flush=True)
    kind = "int8 " if args.int8 else ""
    title = f"# arm64 {kind}bundles under qemu-aarch64 ({time.strftime('%Y-%m-%d')})\n\n"
    out = HERE / ("arm64_bundle_int8.md" if args.int8 else "arm64_bundle.md")
    out.write_text(title + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
