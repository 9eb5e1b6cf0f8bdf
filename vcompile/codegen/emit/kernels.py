"""Tensor-expression kernels in the layouts the CPU schedules want.

    gemm(A[B,M,K], Bp[B|1, N/nb, K, nb])              => C[B,M,N]
    conv2d(x[N,C,H,W], wp[O/ob, C/g, KH, KW, ob], b)   => y[N,O,OH,OW]   (NCHW in and out)
    depthwise_conv2d(x[N,C,H,W], w[C,KH,KW], b)        => y[N,C,OH,OW]
    depthwise_conv2d_nhwc(x[N,H,W,C], w[KH,KW,C], b)   => y[N,OH,OW,C]
    attention(q[G,N,D], k[G,M,D], v[G,M,E], bias[G|1,N,M]?) => o[G,N,E]

Each kernel computes a *padded* result (rows up to a multiple of the row tile, columns up
to a multiple of the vector block) so that the register tile of `schedules.gemm` divides
every loop exactly, then a last elementwise block ("..._out") cuts it back to the real
shape and adds the bias. The padding costs a copy of the activations at most; the
contraction it makes branch-free is O(K) times larger.

Weights that are constants are packed here, in numpy, at compile time: `pack_gemm_weight`
turns [K, N] into [N/nb, K, nb] (zero-filled), `pack_conv_weight` turns OIHW into
[O/ob, I, KH, KW, ob]. Activations used as the right operand of a matmul (attention) are
packed at run time by a block of their own ("gemm_pack_b").

Block names are the contract with `codegen/cpu/schedules/`: a rule claims the blocks named
"gemm", "conv2d", "depthwise_conv2d", "depthwise_conv2d_nhwc" and "attention_out"; a
block annotated `KEEP` is never inlined by the generic rules.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tvm import te, tirx

GEMM_BLOCK, CONV_BLOCK, DW_BLOCK = "gemm", "conv2d", "depthwise_conv2d"
ATTN_BLOCK = "attention_out"
DW_NHWC_BLOCK = "depthwise_conv2d_nhwc"
KEEP = "vcompile.keep"  # block annotation: the schedules place it, never inline it


def ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


def row_tile(n: int, target_tile: int) -> int:
    """The row tile in [target/2, target] that best trades padded rows against a short
    tile: score = useful fraction of rows x sqrt(tile / target). 49 rows -> 13 (4 rows
    of padding, 13 accumulators) rather than 7 (none, but too few FMAs in flight)."""
    if n <= target_tile:
        return n
    return max(range(max(1, target_tile // 2), target_tile + 1),
               key=lambda t: (n / ceil_to(n, t) * (t / target_tile) ** 0.5, t))


def pack_gemm_weight(w: np.ndarray, nb: int) -> np.ndarray:
    """[..., K, N] -> [..., ceil(N/nb), K, nb], zero-filled past N."""
    *lead, k, n = w.shape
    npad = ceil_to(n, nb)
    wpad = np.zeros((*lead, k, npad), w.dtype)
    wpad[..., :n] = w
    return np.ascontiguousarray(
        wpad.reshape(*lead, k, npad // nb, nb).swapaxes(-3, -2))


def pack_conv_weight(w: np.ndarray, ob: int) -> np.ndarray:
    """OIHW -> [ceil(O/ob), I, KH, KW, ob], zero-filled past O."""
    o = w.shape[0]
    opad = ceil_to(o, ob)
    wpad = np.zeros((opad, *w.shape[1:]), w.dtype)
    wpad[:o] = w
    return np.ascontiguousarray(wpad.reshape(opad // ob, ob, *w.shape[1:]).transpose(0, 2, 3, 4, 1))


def _int(x: Any) -> int:
    return int(x)


def gemm(a: te.Tensor, bp: te.Tensor, n: int, mt: int) -> te.Tensor:
    """C[b, m, j] = sum_k A[b, m, k] * Bp[b, j // nb, k, j % nb]; Bp may have batch 1."""
    bt, m, k = (_int(d) for d in a.shape)
    nb = _int(bp.shape[-1])
    mp, npad = ceil_to(m, mt), _int(bp.shape[-3]) * nb
    if mp != m:
        a = te.compute((bt, mp, k), lambda b, i, r: tirx.if_then_else(
            i < m, a[b, tirx.min(i, m - 1), r], tirx.const(0, a.dtype)), name="gemm_pad_a")
    shared = _int(bp.shape[0]) == 1
    r = te.reduce_axis((0, k), "k")
    c = te.compute((bt, mp, npad), lambda b, i, j: te.sum(
        a[b, i, r] * bp[0 if shared else b, j // nb, r, j % nb], axis=[r]), name=GEMM_BLOCK)
    return te.compute((bt, m, n), lambda b, i, j: c[b, i, j], name="gemm_out")


def pack_b(b: te.Tensor, nb: int) -> te.Tensor:
    """Run-time packing of an activation right operand: [B, K, N] -> [B, N/nb, K, nb]."""
    bt, k, n = (_int(d) for d in b.shape)
    no = ceil_to(n, nb) // nb
    return te.compute((bt, no, k, nb), lambda x, jo, r, ji: tirx.if_then_else(
        jo * nb + ji < n, b[x, r, tirx.min(jo * nb + ji, n - 1)], tirx.const(0, b.dtype)),
        name="gemm_pack_b")


def _pad_input(x: te.Tensor, top: int, left: int, hp: int, wp: int, name: str,
               channels_last: bool = False) -> te.Tensor:
    """x zero-padded to [N, C, hp, wp] ([N, hp, wp, C] when `channels_last`) with
    (top, left) before the data."""
    ha, wa = (1, 2) if channels_last else (2, 3)
    h, w = _int(x.shape[ha]), _int(x.shape[wa])
    if top == 0 and left == 0 and hp == h and wp == w:
        return x

    def at(*idx: Any) -> Any:
        ii, jj = idx[ha] - top, idx[wa] - left
        inside = tirx.all(ii >= 0, ii < h, jj >= 0, jj < w)
        src = list(idx)
        src[ha], src[wa] = tirx.max(tirx.min(ii, h - 1), 0), tirx.max(tirx.min(jj, w - 1), 0)
        return tirx.if_then_else(inside, x[tuple(src)], tirx.const(0, x.dtype))
    shape = [_int(d) for d in x.shape]
    shape[ha], shape[wa] = hp, wp
    return te.compute(tuple(shape), at, name=name)


def conv_out_size(size: int, k: int, stride: int, dil: int, before: int, after: int) -> int:
    return (size + before + after - dil * (k - 1) - 1) // stride + 1


def _window_input(x: te.Tensor, kh: int, kw: int, strides: Sequence[int], pads: Sequence[int],
                  dils: Sequence[int], wt: int, name: str,
                  channels_last: bool = False) -> tuple[te.Tensor, int, int, int]:
    """x (NCHW, or NHWC when `channels_last`) padded for a kh x kw window whose output
    columns are padded to a multiple of `wt`; returns (padded x, output rows, output
    columns, padded output columns)."""
    h, w = (_int(x.shape[1]), _int(x.shape[2])) if channels_last else (_int(x.shape[2]), _int(x.shape[3]))
    (sh, sw), (dh, dw) = strides, dils
    oh = conv_out_size(h, kh, sh, dh, pads[0], pads[2])
    ow = conv_out_size(w, kw, sw, dw, pads[1], pads[3])
    owp = ceil_to(ow, wt)
    hp = (oh - 1) * sh + dh * (kh - 1) + 1
    wpd = (owp - 1) * sw + dw * (kw - 1) + 1
    return _pad_input(x, pads[0], pads[1], hp, wpd, name, channels_last), oh, ow, owp


def conv2d(x: te.Tensor, wp: te.Tensor, bias: te.Tensor, out_channels: int,
           strides: Sequence[int], pads: Sequence[int], dils: Sequence[int], groups: int,
           wt: int) -> te.Tensor:
    """Direct NCHW convolution over packed weights; `wt` output columns per register tile."""
    n = _int(x.shape[0])
    oco, cg, kh, kw, ob = (_int(d) for d in wp.shape)
    (sh, sw), (dh, dw) = strides, dils
    xp, oh, ow, owp = _window_input(x, kh, kw, strides, pads, dils, wt, "conv2d_pad")
    ocg = out_channels // groups
    rc, rh, rw = te.reduce_axis((0, cg), "rc"), te.reduce_axis((0, kh), "rh"), te.reduce_axis((0, kw), "rw")

    def chan(o: Any) -> Any:
        return rc if groups == 1 else (o // ocg) * cg + rc
    y = te.compute((n, oco * ob, oh, owp), lambda b, o, i, j: te.sum(
        xp[b, chan(o), i * sh + rh * dh, j * sw + rw * dw] * wp[o // ob, rc, rh, rw, o % ob],
        axis=[rc, rh, rw]), name=CONV_BLOCK)
    return te.compute((n, out_channels, oh, ow), lambda b, o, i, j: y[b, o, i, j] + bias[o],
                      name="conv2d_out")


def depthwise_conv2d(x: te.Tensor, w: te.Tensor, bias: te.Tensor, strides: Sequence[int],
                     pads: Sequence[int], dils: Sequence[int], wt: int) -> te.Tensor:
    """One filter per channel (groups == channels, multiplier 1), NCHW in and out."""
    n, c = _int(x.shape[0]), _int(x.shape[1])
    _, kh, kw = (_int(d) for d in w.shape)
    (sh, sw), (dh, dw) = strides, dils
    xp, oh, ow, owp = _window_input(x, kh, kw, strides, pads, dils, wt, "depthwise_pad")
    rh, rw = te.reduce_axis((0, kh), "rh"), te.reduce_axis((0, kw), "rw")
    y = te.compute((n, c, oh, owp), lambda b, ch, i, j: te.sum(
        xp[b, ch, i * sh + rh * dh, j * sw + rw * dw] * w[ch, rh, rw], axis=[rh, rw]),
        name=DW_BLOCK)
    return te.compute((n, c, oh, ow), lambda b, ch, i, j: y[b, ch, i, j] + bias[ch],
                      name="depthwise_out")


def depthwise_conv2d_nhwc(x: te.Tensor, w: te.Tensor, bias: te.Tensor, strides: Sequence[int],
                          pads: Sequence[int], dils: Sequence[int], wt: int) -> te.Tensor:
    """One filter per channel, channels last: x [N, H, W, C], w [KH, KW, C]. Channels
    are the vectors (contiguous in x, w and y); output columns are padded to a multiple
    of `wt`, the register tile's rows."""
    n, c = _int(x.shape[0]), _int(x.shape[3])
    kh, kw = _int(w.shape[0]), _int(w.shape[1])
    (sh, sw), (dh, dw) = strides, dils
    xp, oh, ow, owp = _window_input(x, kh, kw, strides, pads, dils, wt, "depthwise_nhwc_pad",
                                    channels_last=True)
    rh, rw = te.reduce_axis((0, kh), "rh"), te.reduce_axis((0, kw), "rw")
    y = te.compute((n, oh, owp, c), lambda b, i, j, ch: te.sum(
        xp[b, i * sh + rh * dh, j * sw + rw * dw, ch] * w[rh, rw, ch], axis=[rh, rw]),
        name=DW_NHWC_BLOCK)
    return te.compute((n, oh, ow, c), lambda b, i, j, ch: y[b, i, j, ch] + bias[ch],
                      name="depthwise_nhwc_out")


# Rows of at most this many vectors fold in a tree of vector ops (below); longer rows are
# reductions, which the schedule sums in lane partials.
TREE_VECTORS = 16


def _tree(op: Any, xs: list[Any]) -> Any:
    while len(xs) > 1:
        xs = [op(xs[k], xs[k + 1]) if k + 1 < len(xs) else xs[k] for k in range(0, len(xs), 2)]
    return xs[0]


def _row_fold(x: te.Tensor, op: Any, reducer: Any, lanes: int, name: str) -> te.Tensor:
    """The max or sum of each row of x [G, N, M] (M a multiple of `lanes`).

    A short row (Swin's 49 keys padded to 64: 4 vectors) folds as plain arithmetic:
    first its vectors elementwise ([G, N, lanes], one vector op per vector), then the
    lanes in a tree. As a reduction, each row was one scalar chain (or lane partials the
    schedule cannot vectorize), 40% of the attention kernel's instructions on Swin."""
    g, n, m = (_int(d) for d in x.shape)
    chunks = m // lanes
    if chunks > TREE_VECTORS:
        r = te.reduce_axis((0, m), name + "_r")
        return te.compute((g, n), lambda b, i: reducer(x[b, i, r], axis=r), name=name)
    part = te.compute((g, n, lanes),
                      lambda b, i, k: _tree(op, [x[b, i, c * lanes + k] for c in range(chunks)]),
                      name=name + "_lanes")
    return te.compute((g, n), lambda b, i: _tree(op, [part[b, i, k] for k in range(lanes)]), name=name)


def attention(q: te.Tensor, k: te.Tensor, v: te.Tensor, bias: te.Tensor | None, scale: float,
              rt: int, lanes: int) -> te.Tensor:
    """softmax(scale * q @ kT + bias) @ v per group g, computed `rt` query rows at a time.

    Rows are padded to a multiple of `rt` (a padded row repeats the last query; it is
    cut off at the end) and the transposed keys to a multiple of `lanes` (a padded key
    repeats the last), so that a row of scores is whole vectors; padded keys get a
    logit of -inf (weight 0). The row max and sum run over whole rows (whole vectors);
    P @ V reduces over the M real keys only and reads V as it is.
    `schedules.anchors.attention` computes every block below "attention_out" inside its
    row-tile loop, so each thread holds the scores of one tile of rows ([rt, M]), never
    the [N, M] matrix.
    """
    from tvm import topi
    g, n, d = (_int(x) for x in q.shape)
    m, e = _int(k.shape[1]), _int(v.shape[2])
    npad, mpad = ceil_to(n, rt), ceil_to(m, lanes)
    dt = q.dtype
    qp = q if npad == n else te.compute((g, npad, d), lambda b, i, c: q[b, tirx.min(i, n - 1), c],
                                        name="attn_q")
    # padded keys repeat the last key (any finite value would do: their logits are
    # masked below); a zero fill made the transposition branch per element
    kt = te.compute((g, d, mpad), lambda b, c, j: k[b, tirx.min(j, m - 1), c], name="attn_kt")
    rd = te.reduce_axis((0, d), "rd")
    s = te.compute((g, npad, mpad), lambda b, i, j: te.sum(qp[b, i, rd] * kt[b, rd, j], axis=rd),
                   name="attn_score")

    def logit(b: Any, i: Any, j: Any) -> Any:
        x = s[b, i, j] * tirx.const(scale, dt)
        if bias is not None:
            bb = 0 if _int(bias.shape[0]) == 1 else b
            x = x + bias[bb, tirx.min(i, n - 1), tirx.min(j, m - 1)]
        return tirx.if_then_else(j < m, x, tirx.const(-np.inf, dt))
    lg = te.compute((g, npad, mpad), logit, name="attn_logit")
    mx = _row_fold(lg, tirx.max, te.max, lanes, "attn_max")
    z = te.compute((g, npad, mpad), lambda b, i, j: lg[b, i, j] - mx[b, i], name="attn_z")
    p = topi.fast_exp(z)
    sm = _row_fold(p, tirx.Add, te.sum, lanes, "attn_sum")
    r3 = te.reduce_axis((0, m), "r3")
    o = te.compute((g, npad, e), lambda b, i, c: te.sum(p[b, i, r3] * v[b, r3, c], axis=r3),
                   name="attn_pv")
    out = te.compute((g, npad, e), lambda b, i, c: o[b, i, c] / sm[b, i], name=ATTN_BLOCK,
                     attrs={"rows": rt})
    if npad == n:
        return out
    return te.compute((g, n, e), lambda b, i, c: out[b, i, c], name="attention_slice")
