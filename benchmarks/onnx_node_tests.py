"""Every ONNX backend node test shipped with the installed onnx, through vcompile's
frontend and reference interpreter, under two protocols:

  runtime  the model as shipped: every graph input is fed at run time, as onnxruntime
           runs the tests (an input that configures an op, such as Reshape's shape, is
           then a run-time value, which a static compiler must refuse);
  frozen   inputs that configure an op are frozen into initializers with the test's
           values (`tests.onnx_node_cases.freeze_static_inputs`), as they are constants
           in real models. Op coverage is what this protocol measures.

    python benchmarks/onnx_node_tests.py [--failures FILE] [--only SUBSTR]

Prints the two pass counts and, with --failures, writes one line per failing case (the
frozen protocol) with the first line of its error, grouped by cause: the list to work
from. Tolerances are the tests' own; dtypes and shapes must match exactly.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.onnx_node_cases import freeze_static_inputs, to_numpy  # noqa: E402

CACHE = ROOT / ".cache" / "onnx-node-tests" / f"all-onnx-{onnx.__version__}.pkl"


def collect() -> list[tuple[str, bytes, list, list, float, float]]:
    """(name, model bytes, inputs, outputs, rtol, atol) for every node test, cached."""
    if CACHE.exists():
        with open(CACHE, "rb") as f:
            return pickle.load(f)
    from onnx.backend.test.case import node
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = node.collect_testcases()
    rows = []
    for c in cases:
        if c.model is None:
            continue
        (ins, outs), = c.data_sets
        rows.append((c.name, c.model.SerializeToString(), [to_numpy(x) for x in ins],
                     [to_numpy(x) for x in outs], float(c.rtol), float(c.atol)))
    rows.sort(key=lambda r: r[0])
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=CACHE.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        pickle.dump(rows, f)
    os.replace(tmp, CACHE)
    return rows


def check(model: onnx.ModelProto, inputs: list[Any], outputs: list[Any],
          rtol: float, atol: float) -> None:
    """Raise unless vcompile's interpreter reproduces the test's outputs."""
    from vcompile.frontends import onnx as onnx_frontend
    from vcompile.ir import interp, verify
    g = verify(onnx_frontend.load(model))
    with np.errstate(all="ignore"):
        got = interp.run(g, *inputs)
    if len(got) != len(outputs):
        raise AssertionError(f"{len(got)} outputs, expected {len(outputs)}")
    for i, (y, want) in enumerate(zip(got, outputs, strict=True)):
        want = np.asarray(want)
        if y.dtype != want.dtype:
            raise AssertionError(f"output {i}: dtype {y.dtype}, expected {want.dtype}")
        if y.shape != want.shape:
            raise AssertionError(f"output {i}: shape {y.shape}, expected {want.shape}")
        np.testing.assert_allclose(y.astype(np.float64) if y.dtype.kind == "V" else y, want,
                                   rtol=rtol, atol=atol, err_msg=f"output {i}")


def first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return f"{type(e).__name__}: {s[0][:240] if s else ''}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--failures", type=Path, help="write the frozen protocol's failures here")
    ap.add_argument("--only", default="", help="only tests whose name contains this")
    args = ap.parse_args()
    rows = [r for r in collect() if args.only in r[0]]
    passed = Counter()
    failures: list[tuple[str, str]] = []
    for name, blob, ins, outs, rtol, atol in rows:
        model = onnx.load_model_from_string(blob)
        for protocol in ("runtime", "frozen"):
            m, x = (model, ins) if protocol == "runtime" else freeze_static_inputs(model, ins)
            try:
                check(m, x, outs, rtol, atol)
                passed[protocol] += 1
            except Exception as e:  # noqa: BLE001  (counting every failure kind)
                if protocol == "frozen":
                    failures.append((name, first_line(e)))
    print(f"ONNX {onnx.__version__} backend node tests: {len(rows)}")
    print(f"  runtime protocol (inputs at run time): {passed['runtime']} passed")
    print(f"  frozen protocol (configuring inputs frozen): {passed['frozen']} passed")
    if args.failures:
        causes = Counter(msg.split(":")[0] + ":" + msg.split(":")[1][:60] if ":" in msg else msg
                         for _, msg in failures)
        with open(args.failures, "w") as f:
            for cause, k in causes.most_common():
                f.write(f"# {k:4d}  {cause}\n")
            for name, msg in failures:
                f.write(f"{name}\t{msg}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
