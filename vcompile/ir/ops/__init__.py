"""The one op table. Importing this package registers every op in `OPS`.

Op modules by family: `elementwise` (unary/binary math, where, cast), `shape`
(reshape, transpose, concat, split, slice, pad, gather, ...), `linalg` (matmul,
gemm, einsum, reductions, softmax), `nn` (conv, pooling, normalization, resize)
`quant` (quantize_linear, dequantize_linear) and `integer` (the integer-only ops that
`lower-integer` produces: qconv2d, qlinear, qmatmul, requantize, shiftmax, ...).
Each entry declares its traits (category, view, selection, flops; see `registry`), and
the sets here are read off the table, so adding an op edits only its own entry.
"""
from vcompile.ir.ops import (  # noqa: F401  (registers ops)
    elementwise,
    index,
    integer,
    linalg,
    math,
    nn,
    pool,
    quant,
    recurrent,
    resize,
    shape,
)
from vcompile.ir.ops.registry import (
                                      CATEGORIES,
                                      OPS,
                                      REQUIRED,
                                      AttrError,
                                      AttrSpec,
                                      OpDef,
                                      ShapeError,
                                      broadcast_shapes,
                                      register_op,
)

# Ops whose output is its input's buffer relabelled (`OpDef.view`): no kernel at run time
# (TVM makes them views), so fusion does not count them and codegen launches nothing.
VIEW_OPS = frozenset(name for name, op in OPS.items() if op.view)

__all__ = ["CATEGORIES", "OPS", "REQUIRED", "VIEW_OPS", "AttrError", "AttrSpec", "OpDef", "ShapeError",
           "broadcast_shapes", "register_op"]
