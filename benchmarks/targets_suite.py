"""Build the timm suite for the cross targets and record what was built.

    .venv/bin/python benchmarks/targets_suite.py                        # arm64 + cuda sm_80/87/90
    .venv/bin/python benchmarks/targets_suite.py --targets cuda:sm_90 --models resnet18

For each model (the suite of tests/models.py, legacy ONNX export, random weights) and
each target, compiles at -O2, exports the library and records the build time, the
library size, the kernel count and, for CUDA, the sm_XX of the cubin found inside the
library (`codegen.gpu.embedded_arches`). Writes targets_suite.md / .json. On a machine
with an NVIDIA GPU, `benchmarks/run.py`-style timing of the CUDA builds is the next
step; this script only builds (no GPU here).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def build_one(model: str, target: str, arch: str | None, tmp: str) -> dict:
    import vcompile
    from tests.models import onnx_model
    from vcompile.codegen.gpu import embedded_arches
    path = onnx_model(model)
    t0 = time.perf_counter()
    row: dict = {"model": model, "target": target, "arch": arch}
    try:
        m = vcompile.compile(str(path), target=target, opt_level=2, arch=arch)
        lib = m.export(os.path.join(tmp, f"{model}.{target}.so"))
    except Exception as e:  # record the failure, go on with the suite
        row.update(ok=False, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return row
    row.update(ok=True, seconds=round(time.perf_counter() - t0, 1), mb=round(os.path.getsize(lib) / 1e6, 1),
               kernels=m.meta.get("kernels"))
    if arch is not None:
        row["embedded"] = embedded_arches(lib)
    os.unlink(lib)
    return row


def main() -> int:
    from tests.models import SUITE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(SUITE))
    p.add_argument("--targets", default="arm64,cuda:sm_80,cuda:sm_87,cuda:sm_90",
                   help="comma-separated TARGET or TARGET:ARCH")
    p.add_argument("--out", default=str(HERE / "targets_suite"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.targets.split(","):
            target, _, arch = spec.partition(":")
            for model in args.models.split(","):
                row = build_one(model, target, arch or None, tmp)
                print(json.dumps(row), flush=True)
                rows.append(row)
    write(rows, args.out)
    return 0 if all(r["ok"] for r in rows) else 1


def write(rows: list[dict], out: str) -> None:
    Path(out + ".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| model | target | arch | built | seconds | MB | kernels | cubin arch inside |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['target']} | {r['arch'] or '-'} | "
                     f"{'yes' if r['ok'] else 'no: ' + r['error']} | {r.get('seconds', '-')} | "
                     f"{r.get('mb', '-')} | {r.get('kernels', '-')} | "
                     f"{', '.join(r.get('embedded', [])) or '-'} |")
    title = f"# The suite built for cross targets ({time.strftime('%Y-%m-%d')}, -O2)\n\n"
    Path(out + ".md").write_text(title + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
