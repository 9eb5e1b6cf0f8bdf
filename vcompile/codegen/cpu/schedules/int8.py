"""int8 contractions on x86 VNNI: u8 x i8 -> i32 dot products, 16 columns x 4 deep. The
kernels (packing, compensation, the "qgemm"/"qconv" blocks) are emitted by `emit.vnni`;
this module schedules and tensorizes them.

    qlinear(x, w const, b) {x_zp}
      => A = x + 128 (i8 x) or x (u8 x) as u8 [M', K'],  Wp = w as i8 [N'/16, K'/4, 16, 4]
         C[i, j] = sum_k A[i, k] * Wp[j/16, k/4, j%16, k%4]        ("qgemm", VNNI-tensorized)
         y[i, j] = C[i, j] + comp[j],  comp = b - (x_zp + 128 or x_zp) * sum_k w[k, j]

`vpdpbusd` multiplies unsigned by signed bytes, so a signed activation is shifted by
+128 (exactly representable in u8) and the shift times the weight column sums, known at
build time, is folded into the bias: (x - zp) . w = (x + 128) . w - (zp + 128) * sum(w).
Products are at most 255 * 128 and the instruction adds them in i32 without saturation,
so every sum is exact modulo 2^32, which is also what the eval's int32 cast keeps.

The schedule: a register tile of `rows` rows x 16 columns whose i32 accumulators stay in
zmm registers through the reduction; each step broadcasts 4 activation bytes and does
one `vpdpbusd` per row; parallel over (column block, row tile). Applies when the target
has AVX-512 VNNI and the weights are a constant; otherwise the generic rules run.
"""
from __future__ import annotations

from typing import Any

from vcompile.codegen.cpu.schedules.common import (
    Sch,
    block_named,
    extent,
    fuse_epilogue,
    largest_divisor,
    try_,
)
from vcompile.codegen.emit.kernels import KEEP
from vcompile.codegen.emit.vnni import QCONV_BLOCK, QGEMM_BLOCK

INTRIN = "vcompile_dot_16x4_vnni"
_registered = False


def _register_intrin() -> None:
    """The VNNI 16x4 dot product (desc and impl as TVM's x86 intrinsics; registered here
    because importing `tvm.s_tir.tensor_intrin` costs ~20 s of CUDA intrinsics)."""
    global _registered
    if _registered:
        return
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(a: T.Buffer((4,), "uint8", offset_factor=1), b: T.Buffer((16, 4), "int8", offset_factor=1),
             c: T.Buffer((16,), "int32", offset_factor=1, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(c[0:16], a[0:4], b[0:16, 0:4])
            T.writes(c[0:16])
            for i in T.serial(0, 16):
                for k in T.serial(0, 4):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        c[vi] = c[vi] + T.cast(a[vk], "int32") * T.cast(b[vi, vk], "int32")

    @T.prim_func(s_tir=True)
    def impl(a: T.Buffer((4,), "uint8", offset_factor=1), b: T.Buffer((16, 4), "int8", offset_factor=1),
             c: T.Buffer((16,), "int32", offset_factor=1, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(c[0:16], a[0:4], b[0:16, 0:4])
            T.writes(c[0:16])
            # NOTE: this LLVM declares vpdpbusd on (<16 x i32>, <64 x i8>, <64 x i8>), not the
            # i32 vectors TVM's own x86 intrinsic passes (that one fails verification here)
            a_i32 = T.reinterpret(a.vload([0], "uint8x4"), dtype="int32")
            a_x64 = T.reinterpret(T.broadcast(a_i32, 16), dtype="int8x64")
            c[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
                c.vload([0], dtype="int32x16"), a_x64, b.vload([0, 0], dtype="int8x64"),
                dtype="int32x16")

    TensorIntrin.register(INTRIN, desc, impl)
    _registered = True


def qconv_rule(sch: Sch, tiles: Any) -> bool:
    """Claims "qconv" blocks: a tile of `rows` output columns x 16 output channels, the
    accumulators channel-innermost so that each column's 16 are one zmm register."""
    found = block_named(sch, QCONV_BLOCK)
    if found:
        _register_intrin()
    for blk in found:
        nb, o, h, w, rco, rh, rw, rci = sch.get_loops(blk)
        wt = largest_divisor(extent(sch, w), tiles.rows)
        w0, w1 = sch.split(w, [None, wt])
        o0, o1 = sch.split(o, [None, 16])
        sch.reorder(nb, h, o0, w0, rco, rh, rw, w1, o1, rci)
        local = sch.cache_write(blk, 0, "local")
        sch.transform_layout(blk, ("write", 0), lambda a, b, c, d: (a, c, d, b))
        sch.parallel(sch.fuse(nb, h, o0))
        sch.reverse_compute_at(local, w0, True)
        sch.annotate(local, KEEP, 1)
        fuse_epilogue(sch, blk, w0, 64)
        init = sch.decompose_reduction(blk, rco)
        try_(sch.vectorize, sch.get_loops(init)[-1])
    return bool(found)


def tensorize(sch: Sch) -> None:
    """Last step of a function's schedule: the (16 columns x 4 deep) inner loops of every
    claimed update block become one `vpdpbusd`. Done after the generic rules because the
    tensorized block leaves block handles that their walk over the root would trip on."""
    for name in (QGEMM_BLOCK, QCONV_BLOCK):
        for blk in block_named(sch, name + "_update"):  # (named so by decompose_reduction)
            loops = sch.get_loops(blk)
            sch.tensorize(loops[-2], INTRIN)
            sch.unroll(loops[-3])  # the rows of the tile: one zmm accumulator each


def qgemm_rule(sch: Sch, tiles: Any) -> bool:
    """Claims "qgemm" blocks (see the module doc)."""
    found = block_named(sch, QGEMM_BLOCK)
    if found:
        _register_intrin()
    for blk in found:
        b, i, j, ko, ki = sch.get_loops(blk)
        mt = largest_divisor(extent(sch, i), tiles.rows)
        i0, i1 = sch.split(i, [None, mt])
        j0, j1 = sch.split(j, [None, 16])
        sch.reorder(b, j0, i0, ko, i1, j1, ki)
        local = sch.cache_write(blk, 0, "local")
        tile = sch.fuse(b, j0, i0)
        sch.parallel(tile)
        sch.reverse_compute_at(local, tile, True)
        sch.annotate(local, KEEP, 1)
        fuse_epilogue(sch, blk, tile, 64)
        try_(sch.vectorize, sch.get_loops(local)[-1])
        init = sch.decompose_reduction(blk, ko)
        try_(sch.vectorize, sch.get_loops(init)[-1])
    return bool(found)


def describe() -> str:
    return ("VNNI vpdpbusd register tiles (u8 x i8, +128 shift folded into the bias) for qlinear, "
            "qconv2d with groups 1 and qmatmul with an i8 right operand at zero point 0")
