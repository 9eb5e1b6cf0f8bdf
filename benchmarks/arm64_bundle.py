"""Run arm64 bundles under qemu-aarch64 and compare them with the x86 build.

    .venv/bin/python benchmarks/arm64_bundle.py [--models resnet18,deit_tiny_patch16_224]

For each model: `vcompile MODEL --target arm64 --bundle DIR`, then the bundle's
cross-built C++ runner under `qemu-aarch64 -L /usr/aarch64-linux-gnu` on the seeded
sample input, then the x86_64 build in this process on the same input. Prints the max
relative difference and the runner's median under qemu (an emulator: not a device
speed) and writes arm64_bundle.md.
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


def one(name: str, tmp: Path) -> str:
    import vcompile
    from tests.models import onnx_model, sample_input
    from vcompile.cli import main
    model = onnx_model(name)
    b = tmp / name
    assert main([str(model), "--target", "arm64", "-o", str(tmp / f"{name}.so"), "--bundle", str(b)]) == 0
    x = sample_input(name)
    np.save(tmp / "x.npy", x)
    r = subprocess.run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(b / "runner"), "-n", "3",
                        "-o", str(tmp), str(tmp / "x.npy")], capture_output=True, text=True,
                       env={"TVM_NUM_THREADS": "2"})
    if r.returncode != 0:
        return f"| {name} | runner failed: {r.stderr.strip()} | | |"
    median = re.search(r"median ([\d.]+) ms", r.stdout).group(1)  # type: ignore[union-attr]
    want = vcompile.compile(str(model), target="x86_64")(x)
    got = [np.load(p) for p in sorted(tmp.glob("*.npy")) if p.name != "x.npy"]
    err = max(float(np.abs(g - w).max() / np.abs(w).max()) for g, w in zip(got, want, strict=True))
    for p in tmp.glob("*.npy"):
        p.unlink()
    return f"| {name} | {err:.1e} | {median} | {(b / 'model.so').stat().st_size / 1e6:.1f} |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet18,deit_tiny_patch16_224,mobilevitv2_050")
    args = p.parse_args()
    rows = ["| model | max rel diff arm64 (qemu) vs x86_64 | runner median ms under qemu, 2 threads | "
            "model.so MB |", "| --- | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(one(name, Path(tmp)))
            print(rows[-1], flush=True)
    title = f"# arm64 bundles under qemu-aarch64 ({time.strftime('%Y-%m-%d')})\n\n"
    (HERE / "arm64_bundle.md").write_text(title + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
