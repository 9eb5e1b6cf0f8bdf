"""The one op table. Importing this package registers every op in `OPS`.

Op modules by family: `elementwise` (unary/binary math, where, cast), `shape`
(reshape, transpose, concat, split, slice, pad, gather, ...), `linalg` (matmul,
gemm, einsum, reductions, softmax), `nn` (conv, pooling, normalization, resize)
`quant` (quantize_linear, dequantize_linear) and `integer` (the integer-only ops that
`lower-integer` produces: qconv2d, qlinear, qmatmul, requantize, shiftmax, ...).
"""
from vcompile.ir.ops import elementwise, integer, linalg, nn, pool, quant, resize, shape  # noqa: F401  (registers ops)
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
