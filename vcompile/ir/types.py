"""Tensor types: an element dtype and a shape whose dims are ints or symbols.

A symbolic dim is a name such as ``N`` (a batch size fixed only at run time).
Types print as ``f32[1,3,224,224]``, ``f32[N,1000]`` or ``i64[]`` for a scalar.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np
from numpy.typing import DTypeLike

Dim = int | str

# Short printed name -> numpy dtype. The short names are the IR's spelling.
DTYPES: dict[str, np.dtype] = {
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "i8": np.dtype(np.int8),
    "i16": np.dtype(np.int16),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "u8": np.dtype(np.uint8),
    "u16": np.dtype(np.uint16),
    "u32": np.dtype(np.uint32),
    "u64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
}
_BY_NUMPY = {v: k for k, v in DTYPES.items()}
FLOAT_DTYPES = frozenset({"f16", "bf16", "f32", "f64"})
INT_DTYPES = frozenset({"i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"})


def dtype_of(array_or_dtype: np.ndarray | np.generic | DTypeLike) -> str:
    """The IR dtype name of a numpy array or dtype."""
    # NOTE: np.float32 (a class) has a `dtype` attribute too, but it is a descriptor.
    if isinstance(array_or_dtype, (np.ndarray, np.generic)):
        dt = array_or_dtype.dtype
    else:
        dt = np.dtype(array_or_dtype)
    if dt not in _BY_NUMPY:
        raise TypeError(f"numpy dtype {dt} has no IR dtype; supported: {', '.join(DTYPES)}")
    return _BY_NUMPY[dt]


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: str
    shape: tuple[Dim, ...]

    def __post_init__(self) -> None:
        # NOTE: numpy ints (from array shapes) and lists are normalized so that equal
        # types compare and hash equal whatever the caller passed.
        shape = tuple(int(d) if isinstance(d, np.integer) else d for d in self.shape)
        object.__setattr__(self, "shape", shape)
        if self.dtype not in DTYPES:
            raise TypeError(f"unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        for d in self.shape:
            ok = (isinstance(d, int) and not isinstance(d, bool) and d >= 0) or (
                isinstance(d, str) and d.isidentifier())
            if not ok:
                raise TypeError(f"bad dim {d!r} in shape {self.shape}: dims are ints >= 0 or names")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def size(self) -> int:
        """Number of elements; only for static shapes."""
        if not self.is_static:
            raise ValueError(f"{self} has symbolic dims; its size is unknown")
        return math.prod(d for d in self.shape if isinstance(d, int))

    def with_shape(self, shape: tuple[Dim, ...]) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: str) -> TensorType:
        return TensorType(dtype, self.shape)

    def matches(self, array: np.ndarray, bindings: dict[str, int] | None = None) -> bool:
        """Whether `array` has this type; symbols bind (and must agree) via `bindings`."""
        if array.dtype != self.np_dtype or array.ndim != self.rank:
            return False
        env = {} if bindings is None else bindings
        for d, n in zip(self.shape, array.shape, strict=True):
            if isinstance(d, int):
                if d != n:
                    return False
            elif env.setdefault(d, n) != n:
                return False
        return True

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"

    @staticmethod
    def of(array: np.ndarray) -> TensorType:
        return TensorType(dtype_of(array), tuple(int(d) for d in array.shape))
