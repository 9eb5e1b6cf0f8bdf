"""The ONNX backend node tests that use only ops vcompile supports, as plain data.

`node_cases()` returns one `Case` per test: the model, the input arrays, the expected
output arrays and ONNX's own tolerances. The frontend conformance test and the
codegen conformance test both run these.

Selection (exactly 502 cases with onnx 1.23):
  * every node (recursively, including subgraphs) is in the default domain and its
    op type is in `SUPPORTED_ONNX_OPS`;
  * no tensor anywhere (graph inputs, outputs, value_info, initializers, Constant
    attributes, and Cast/CastLike targets) has an element type numpy cannot hold:
    the float8 family (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E8M0), the 4-bit types
    (INT4, UINT4, FLOAT4E2M1), the 2-bit types (INT2, UINT2) or STRING.
  BFLOAT16 (numpy via ml_dtypes) and sequence/optional values are kept; they are
  what the count 502 includes.

vcompile compiles static graphs: inputs that configure an op (Reshape's shape, Slice's
starts, Resize's scales, ...; `STATIC_INPUTS` of the ONNX frontend) must be known at
import. Where a test feeds them as graph inputs, `Case.model` has them frozen into
initializers with the test's values, and `Case.inputs` lists only the remaining ones
(`Case.original` is the unmodified model).

The cases are collected once from `onnx.backend.test.case.node.collect_testcases()`
and cached under `.cache/onnx-node-tests/` (gitignored); delete it to regenerate.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

SUPPORTED_ONNX_OPS = frozenset("""
Add AveragePool BatchNormalization Cast Clip Concat Constant ConstantOfShape Conv
ConvTranspose Div Einsum Equal Erf Expand Flatten Gather Gelu Gemm GlobalAveragePool
HardSigmoid HardSwish Identity InstanceNormalization GroupNormalization
LayerNormalization MatMul Max MaxPool Min Mod Mul Neg Pad Pow ReduceMax ReduceMean
ReduceSum Relu Reshape Resize Shape Sigmoid Slice Softmax Split Sqrt Squeeze Sub Tanh
Tile Transpose Unsqueeze Where QuantizeLinear DequantizeLinear""".split())

EXCLUDED_TYPES = frozenset({
    "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT8E8M0",
    "INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2", "STRING"})

CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "onnx-node-tests"
EXPECTED_COUNT = 502


@dataclass(frozen=True)
class Case:
    name: str
    model: onnx.ModelProto  # static-configuration inputs frozen into initializers
    inputs: list[Any]  # np.ndarray, or list/None for sequence/optional values
    outputs: list[Any]
    rtol: float
    atol: float
    original: onnx.ModelProto


def freeze_static_inputs(model: onnx.ModelProto, inputs: list[Any]
                         ) -> tuple[onnx.ModelProto, list[Any]]:
    """Turn graph inputs that a static-configuration slot is computed from into initializers."""
    from vcompile.frontends.onnx_ops import STATIC_INPUTS
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    todo = [n.input[i] for n in g.node for i in STATIC_INPUTS.get(n.op_type, ())
            if i < len(n.input) and n.input[i]]
    static: set[str] = set()
    while todo:  # what a static slot is computed from, up to (not through) Shape nodes
        t = todo.pop()
        if t in static:
            continue
        static.add(t)
        n = producer.get(t)
        if n is not None and n.op_type != "Shape":
            todo.extend(x for x in n.input if x)
    names = [vi.name for vi in g.input]
    if not static & set(names):
        return model, inputs
    frozen = onnx.ModelProto()
    frozen.CopyFrom(model)
    del frozen.graph.input[:]
    rest = []
    for vi, x in zip(g.input, inputs, strict=True):
        if vi.name in static and isinstance(x, np.ndarray):
            frozen.graph.initializer.append(onnx.numpy_helper.from_array(x, vi.name))
        else:
            frozen.graph.input.append(vi)
            rest.append(x)
    return frozen, rest


def _ops(g: onnx.GraphProto):
    for n in g.node:
        yield n.domain, n.op_type
        for a in n.attribute:
            if a.HasField("g"):
                yield from _ops(a.g)
            for sub in a.graphs:
                yield from _ops(sub)


def _elem_types(t: onnx.TypeProto):
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        yield t.tensor_type.elem_type
    elif kind == "sequence_type":
        yield from _elem_types(t.sequence_type.elem_type)
    elif kind == "optional_type":
        yield from _elem_types(t.optional_type.elem_type)


def _types(g: onnx.GraphProto):
    for vi in [*g.input, *g.output, *g.value_info]:
        yield from _elem_types(vi.type)
    for t in g.initializer:
        yield t.data_type
    for n in g.node:
        for a in n.attribute:
            if a.HasField("t"):
                yield a.t.data_type
            if n.op_type == "Cast" and a.name == "to":
                yield a.i
            if a.HasField("g"):
                yield from _types(a.g)


def selected(model: onnx.ModelProto) -> bool:
    """Whether a node test belongs to the conformance set (see the module docstring)."""
    g = model.graph
    if not all(d in ("", "ai.onnx") and op in SUPPORTED_ONNX_OPS for d, op in _ops(g)):
        return False
    names = {onnx.TensorProto.DataType.Name(t) for t in _types(g)}
    return not names & EXCLUDED_TYPES


def to_numpy(x: Any) -> Any:
    if isinstance(x, onnx.TensorProto):
        return onnx.numpy_helper.to_array(x)
    if isinstance(x, np.generic):
        return np.asarray(x)
    if isinstance(x, list):
        return [to_numpy(e) for e in x]
    return x


def _collect() -> list[tuple[str, bytes, list, list, float, float]]:
    from onnx.backend.test.case import node
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = node.collect_testcases()
    out = []
    for c in cases:
        if c.model is None or not selected(c.model):
            continue
        (ins, outs), = c.data_sets  # every node test has one data set
        out.append((c.name, c.model.SerializeToString(), [to_numpy(x) for x in ins],
                    [to_numpy(x) for x in outs], float(c.rtol), float(c.atol)))
    return sorted(out)


def _cache_file() -> Path:
    return CACHE_DIR / f"cases-onnx-{onnx.__version__}.pkl"


def _write_cache(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        pickle.dump(rows, f)
    os.replace(tmp, path)  # atomic: concurrent pytest workers never read half a file
    for name, blob, *_ in rows:  # the models, for inspection with netron or onnx tools
        (path.parent / "models").mkdir(exist_ok=True)
        (path.parent / "models" / f"{name}.onnx").write_bytes(blob)


def node_cases() -> list[Case]:
    """The selected ONNX node tests, sorted by name (cached after the first call)."""
    path = _cache_file()
    if path.exists():
        with open(path, "rb") as f:
            rows = pickle.load(f)
    else:
        rows = _collect()
        _write_cache(path, rows)
    out = []
    for name, blob, ins, outs, rtol, atol in rows:
        original = onnx.load_model_from_string(blob)
        model, rest = freeze_static_inputs(original, ins)
        out.append(Case(name, model, rest, outs, rtol, atol, original))
    return out


def case_names() -> list[str]:
    return [c.name for c in node_cases()]
