"""The conversion context of the ONNX frontend: a Builder that folds what it can.

Every ONNX value is either a `Value` of the graph under construction or *known*: a
numpy array computable at import time (an initializer, a Constant, or an op whose
inputs are all known). `Ctx.emit` evaluates an op with the op table's own numpy
eval when every input is known, so shape computations (Shape -> Gather -> Concat ->
Reshape) fold into attrs. Shapes of tensors with symbolic dims are known too: they
are object arrays holding ints and symbol names, which gather/concat/slice/... move
around like numbers; arithmetic on a symbol cannot fold and is an error.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from vcompile.frontends import FrontendError
from vcompile.ir.builder import Builder, BuildError, infer_node
from vcompile.ir.graph import Value
from vcompile.ir.ops import OPS
from vcompile.ir.types import DTYPES, TensorType, dtype_of

V = Value | np.ndarray  # an ONNX value: in the graph, or known at import time

# Ops that only move elements around: the ones that may fold shapes holding symbols.
_MOVES = frozenset({"gather", "concat", "slice", "squeeze", "unsqueeze", "reshape",
                    "transpose", "split", "tile", "expand", "identity", "where"})


class ConversionError(FrontendError):
    """An ONNX node the frontend supports in general but not with these inputs or attrs."""


def sanitize(name: str, default: str = "v") -> str:
    """A name reduced to [A-Za-z0-9_] that is a valid identifier."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or default
    return s if s.isidentifier() else "_" + s


def short_hint(name: str, op_type: str) -> str:
    """A short readable hint for an ONNX output name: '/layer1/conv/Conv_output_0' -> 'conv'."""
    last = name.rstrip("/").rsplit("/", 1)[-1]
    m = re.fullmatch(r"(.*?)_output_\d+", last)
    if m:
        last = m.group(1).lower()
    s = sanitize(last, "")
    if not s or len(s) > 24 or s.strip("_").isdigit():
        s = sanitize(op_type.lower())
    return s


@functools.cache
def since_version(op_type: str, opset: int) -> int:
    """The version of default-domain `op_type` that a model of `opset` uses: its newest
    schema at or below `opset` (the opset itself for an op ONNX does not define)."""
    try:
        return int(onnx.defs.get_schema(op_type, opset, "").since_version)
    except onnx.defs.SchemaError:
        return opset


def _known_type(arr: np.ndarray) -> TensorType:
    dt = "i64" if arr.dtype == object else dtype_of(arr)
    return TensorType(dt, tuple(int(d) for d in arr.shape))


def normalize_known(arr: Any) -> np.ndarray:
    """Object arrays that hold only ints become int64 again."""
    a = np.asarray(arr)
    if a.dtype.kind in "US":  # numpy turned a lone symbol into a string array
        a = a.astype(object)
        a.flat[:] = [str(x) for x in a.flat]
    if a.dtype == object and all(isinstance(x, (int, np.integer)) for x in a.flat):
        a = a.astype(np.int64)
    return a


class Ctx:
    """Emits IR for one ONNX graph; `loc` and `hint` describe the node being converted."""

    def __init__(self, name: str, opset: int) -> None:
        self.bb = Builder(name)
        self.opset = opset
        self.loc = ""
        self.hint = ""
        self.op_type = ""
        self._consts: dict[int, tuple[np.ndarray, Value]] = {}
        self.const_hints: dict[int, str] = {}  # id(initializer array) -> its sanitized name

    def since(self) -> int:
        """The schema version of the node being converted (see `since_version`)."""
        return since_version(self.op_type, self.opset)

    # ---- values -------------------------------------------------------------------------
    def value(self, x: V, hint: str = "c") -> Value:
        """`x` as a graph Value; known arrays become constants (one per array)."""
        if isinstance(x, Value):
            return x
        arr = np.asarray(x)
        if arr.dtype == object:
            raise self.error("needs a value computed from symbolic dims "
                             f"({list(arr.flat)}); fix them with input_shapes")
        hit = self._consts.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
        v = self.bb.const(arr, hint=self.const_hints.get(id(x), hint))
        self._consts[id(x)] = (x, v)  # type: ignore[assignment]
        return v

    @staticmethod
    def known(x: V | None) -> np.ndarray | None:
        return None if x is None or isinstance(x, Value) else x

    def _known_flat(self, x: V, what: str) -> np.ndarray:
        arr = self.known(x)
        if arr is None:
            raise self.error(f"needs {what} known at import time, but it is computed at run time")
        return np.asarray(arr).reshape(-1)

    def known_ints(self, x: V | None, what: str) -> list[Any] | None:
        """A known 0-/1-D int tensor as a list (symbols allowed); error if not known."""
        if x is None:
            return None
        return [str(d) if isinstance(d, str) else int(d) for d in self._known_flat(x, what).tolist()]

    def known_floats(self, x: V | None, what: str) -> list[float] | None:
        if x is None:
            return None
        return [float(v) for v in self._known_flat(x, what).astype(np.float64)]

    @staticmethod
    def type_of(x: V) -> TensorType:
        return x.type if isinstance(x, Value) else _known_type(np.asarray(x))

    def shape(self, x: V) -> tuple:
        return self.type_of(x).shape

    def dtype(self, x: V) -> str:
        return self.type_of(x).dtype

    def error(self, msg: str) -> ConversionError:
        return ConversionError(f"ONNX node {self.loc!r} ({self.op_type}): {msg}")

    # ---- ops ----------------------------------------------------------------------------
    def emit(self, op: str, *inputs: V, hint: str = "", fold: bool = True, **attrs: Any) -> V:
        outs = self.emit_multi(op, *inputs, hint=hint, fold=fold, **attrs)
        if len(outs) != 1:
            raise self.error(f"{op} has {len(outs)} outputs")
        return outs[0]

    def emit_multi(self, op: str, *inputs: V, hint: str = "", fold: bool = True,
                   **attrs: Any) -> tuple[V, ...]:
        """`fold=False` keeps a node even when every input is known (quantized weights stay
        dequantize_linear(const int8) for the integer lowering)."""
        sym_attrs = any(isinstance(v, tuple) and any(isinstance(d, str) for d in v)
                        for v in attrs.values())  # e.g. expand to [N, 1, 192]: not foldable
        if fold and inputs and not sym_attrs and all(not isinstance(x, Value) for x in inputs):
            return self._fold(op, [np.asarray(x) for x in inputs], attrs)
        vals = [self.value(x) for x in inputs]
        try:
            return self.bb.emit_multi(op, *vals, hint=hint or self.hint, loc=self.loc, **attrs)
        except BuildError as e:
            raise self.error(f"cannot emit {op}: {e}") from None

    def _fold(self, op: str, arrays: list[np.ndarray], attrs: dict[str, Any]) -> tuple[V, ...]:
        symbolic = [list(a.flat) for a in arrays if a.dtype == object]
        if symbolic and op == "equal":
            return (self._symbolic_equal(arrays[0], arrays[1]),)
        if symbolic and op == "where":  # both branches as object arrays, so symbols survive
            arrays = [arrays[0]] + [a.astype(object) for a in arrays[1:]]
        if symbolic and op not in _MOVES:  # numpy would happily compute 'N' * 2 == 'NN'
            raise self.error(f"cannot compute {op} on symbolic dims {symbolic}; fix them "
                             "with input_shapes")
        fake = [Value(_known_type(a)) for a in arrays]
        try:
            full, types = infer_node(op, fake, attrs)
            with np.errstate(all="ignore"):
                res = OPS[op].eval(arrays, full)
        except BuildError as e:
            raise self.error(f"cannot fold {op}: {e}") from None
        except (TypeError, ValueError) as e:
            if any(a.dtype == object for a in arrays):
                raise self.error(f"cannot compute {op} on symbolic dims "
                                 f"{[list(a.flat) for a in arrays if a.dtype == object]}; "
                                 "fix them with input_shapes") from None
            raise self.error(f"evaluating {op} at import failed: {e}") from None
        out = []
        for r, t in zip(res, types, strict=True):
            r = normalize_known(r)
            if r.dtype != object and r.dtype != DTYPES[t.dtype]:
                r = r.astype(DTYPES[t.dtype])
            out.append(r)
        return tuple(out)

    def _symbolic_equal(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Dims compared where decidable: a symbol equals itself and no negative number."""
        def eq(x: Any, y: Any) -> bool:
            if isinstance(x, str) or isinstance(y, str):
                if x == y or (not isinstance(x, str) and x < 0) or (not isinstance(y, str) and y < 0):
                    return x == y
                raise self.error(f"cannot decide whether dims {x} and {y} are equal; fix "
                                 "them with input_shapes")
            return bool(x == y)
        return np.frompyfunc(eq, 2, 1)(a, b).astype(np.bool_)

    def const(self, array: Any, dtype: str) -> np.ndarray:
        """A known array of IR dtype `dtype` (becomes a graph constant only if used)."""
        return np.asarray(array, dtype=DTYPES[dtype])

    def cast(self, x: V, dtype: str) -> V:
        return x if self.dtype(x) == dtype else self.emit("cast", x, to=dtype)

    def flat(self, xs: Sequence[V | None]) -> list[V]:
        return [x for x in xs if x is not None]
