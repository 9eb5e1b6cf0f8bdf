"""The one op table. Importing this package registers every op in `OPS`.

Op modules by family: `elementwise` (unary/binary math, where, cast), `shape`
(reshape, transpose, concat, split, slice, pad, gather, ...), `linalg` (matmul,
gemm, einsum, reductions, softmax), `nn` (conv, pooling, normalization, resize)
and `quant` (quantize_linear, dequantize_linear).
"""
from vcompile.ir.ops import elementwise, linalg, nn, pool, quant, resize, shape  # noqa: F401  (registers ops)
from vcompile.ir.ops.registry import (
                                      OPS,
                                      REQUIRED,
                                      AttrError,
                                      AttrSpec,
                                      OpDef,
                                      ShapeError,
                                      broadcast_shapes,
                                      register_op,
)
from vcompile.ir.ops.shape import VIEW_OPS

__all__ = ["OPS", "REQUIRED", "VIEW_OPS", "AttrError", "AttrSpec", "OpDef", "ShapeError",
           "broadcast_shapes", "register_op"]
