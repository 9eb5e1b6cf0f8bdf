"""Contractions and reductions: matmul, gemm, linear, attention, einsum, reduce_*, softmax.

`matmul` follows numpy (batch dims broadcast; 1-D operands promoted then dropped).
`gemm` is ONNX Gemm: alpha * op(A) @ op(B) + beta * C with optional transposes.
`linear(x, w, b?)` is `x @ w + b` over the last axis of x (x: [..., K], w: [K, N],
b: [N]); the `recognize` pass makes it from MatMul + Add and canonical Gemm.
`attention(q, k, v, bias?) {scale}` is softmax(scale * q @ kT + bias) @ v over the
last two axes (q: [..., N, D], k: [..., M, D], v: [..., M, E] with equal batch dims;
bias broadcasts to [..., N, M]) -> [..., N, E]; `recognize` makes it from the
MatMul/Mul/Add/Softmax/MatMul spellings of scaled-dot-product attention.
Reductions take explicit `axes` (an empty tuple reduces every axis).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vcompile.ir.graph import Attrs
from vcompile.ir.ops import flops
from vcompile.ir.ops.registry import ShapeError, broadcast_shapes, norm_axis, register_op, same_dtype
from vcompile.ir.types import Dim, TensorType


def matmul_shape(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """The result shape of numpy's matmul(a, b): batch dims broadcast, 1-d operands promoted."""
    if not a or not b:
        raise ShapeError("matmul: operands must have rank >= 1")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ShapeError(f"matmul: inner dims differ: [{','.join(map(str, a))}] @ "
                         f"[{','.join(map(str, b))}]")
    out = broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _matmul_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    return (TensorType(same_dtype(ts, "matmul"), matmul_shape(ts[0].shape, ts[1].shape)),)


register_op("matmul", 2, _matmul_infer, lambda xs, a: (np.asarray(np.matmul(xs[0], xs[1])),),
            kind="anchor", category="matmul", flops=flops.matmul)


def _gemm_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    dt = same_dtype(ts, "gemm")
    if ts[0].rank != 2 or ts[1].rank != 2:
        raise ShapeError(f"gemm: A and B must be 2-D, got {ts[0]} and {ts[1]}")
    m, k = ts[0].shape[::-1] if a["trans_a"] else ts[0].shape
    k2, n = ts[1].shape[::-1] if a["trans_b"] else ts[1].shape
    if k != k2:
        raise ShapeError(f"gemm: inner dims differ ({k} vs {k2})")
    if len(ts) == 3:
        broadcast_shapes((m, n), ts[2].shape)
    return (TensorType(dt, (m, n)),)


def _gemm_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    A = xs[0].T if a["trans_a"] else xs[0]
    B = xs[1].T if a["trans_b"] else xs[1]
    y = np.asarray(a["alpha"], A.dtype) * (A @ B)
    if len(xs) == 3:
        y = y + np.asarray(a["beta"], A.dtype) * xs[2]
    return (y.astype(A.dtype),)


register_op("gemm", (2, 3), _gemm_infer, _gemm_eval, kind="anchor", category="matmul", flops=flops.gemm,
            attrs={"alpha": ("float", 1.0), "beta": ("float", 1.0),
                   "trans_a": ("bool", False), "trans_b": ("bool", False)})


def _linear_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    dt = same_dtype(ts, "linear")
    x, w = ts[0], ts[1]
    if x.rank < 1 or w.rank != 2:
        raise ShapeError(f"linear: x must have rank >= 1 and w rank 2, got {x} and {w}")
    if x.shape[-1] != w.shape[0]:
        raise ShapeError(f"linear: x's last dim {x.shape[-1]} differs from w's first {w.shape[0]}")
    if len(ts) == 3 and (ts[2].rank != 1 or ts[2].shape[0] != w.shape[1]):
        raise ShapeError(f"linear: bias must be [{w.shape[1]}], got {ts[2]}")
    return (TensorType(dt, x.shape[:-1] + (w.shape[1],)),)


def _linear_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    y = np.matmul(xs[0], xs[1])
    return ((y + xs[2] if len(xs) == 3 else y).astype(xs[0].dtype),)


register_op("linear", (2, 3), _linear_infer, _linear_eval, kind="anchor", category="matmul",
            flops=flops.linear,
            doc="x @ w + b over the last axis: x [..., K], w [K, N], b [N]")


def _attention_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    dt = same_dtype(ts, "attention")
    q, k, v = ts[:3]
    if not q.rank == k.rank == v.rank or q.rank < 2:
        raise ShapeError(f"attention: q, k and v must have one rank >= 2, got {q}, {k}, {v}")
    if q.shape[:-2] != k.shape[:-2] or q.shape[:-2] != v.shape[:-2]:
        raise ShapeError(f"attention: batch dims differ: {q}, {k}, {v}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"attention: q [..., N, D], k [..., M, D], v [..., M, E] expected, "
                         f"got {q}, {k}, {v}")
    scores = q.shape[:-1] + (k.shape[-2],)
    if len(ts) == 4:
        try:
            fits = ts[3].rank <= len(scores) and broadcast_shapes(scores, ts[3].shape) == scores
        except ShapeError:
            fits = False
        if not fits:
            raise ShapeError(f"attention: bias {ts[3]} does not broadcast to the scores "
                             f"[{','.join(map(str, scores))}]")
    return (TensorType(dt, q.shape[:-1] + (v.shape[-1],)),)


def _attention_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    q, k, v = xs[:3]
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * np.asarray(a["scale"], q.dtype)
    if len(xs) == 4:
        s = s + xs[3]
    return (np.matmul(_softmax(s, -1, False), v).astype(q.dtype),)


register_op("attention", (3, 4), _attention_infer, _attention_eval, kind="anchor",
            category="attention", flops=flops.attention,
            attrs={"scale": ("float", 1.0)},
            doc="softmax(scale * q @ kT + bias) @ v over the last two axes")


def _einsum_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    dt = same_dtype(ts, "einsum")
    eq = a.str("equation").replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ts) or "..." in eq:
        if len(terms) != len(ts):
            raise ShapeError(f"einsum: {len(terms)} operands in {eq!r} but {len(ts)} inputs")
        # ellipsis: let numpy work it out on zero-size stand-ins when static
        shapes = [t.shape for t in ts]
        if not all(isinstance(d, int) for s in shapes for d in s):
            raise ShapeError("einsum: ellipsis with symbolic dims is not supported")
        dummy = [np.empty([d for d in s if isinstance(d, int)], dtype=np.float32) for s in shapes]
        return (TensorType(dt, np.einsum(eq, *dummy).shape),)
    size: dict[str, Dim] = {}
    for term, t in zip(terms, ts, strict=True):
        if len(term) != t.rank:
            raise ShapeError(f"einsum: term {term!r} has {len(term)} letters for {t}")
        for c, d in zip(term, t.shape, strict=True):
            if size.setdefault(c, d) != d and d != 1:
                if size[c] == 1:
                    size[c] = d
                else:
                    raise ShapeError(f"einsum: letter {c!r} has sizes {size[c]} and {d}")
    if not _:
        rhs = "".join(sorted(c for c in size if sum(t.count(c) for t in terms) == 1))
    return (TensorType(dt, tuple(size[c] for c in rhs)),)


def _einsum_eval(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
    dt = xs[0].dtype
    if dt.kind == "V":  # extension floats (ml_dtypes bfloat16) that einsum rejects: f32
        xs = [x.astype(np.float32) for x in xs]
    return (np.asarray(np.einsum(a.str("equation"), *xs)).astype(dt),)


register_op("einsum", (1, None), _einsum_infer, _einsum_eval,
            attrs={"equation": ("str",)}, kind="anchor", category="matmul", flops=flops.einsum)


def _reduce_axes(t: TensorType, a: Attrs, op: str) -> tuple[int, ...]:
    axes = a.ints("axes")
    if not axes:
        return tuple(range(t.rank))
    return tuple(sorted({norm_axis(x, t.rank, op) for x in axes}))


def _lowest(dt: np.dtype) -> object:
    return False if dt.kind == "b" else (-np.inf if dt.kind == "f" else np.iinfo(dt).min)


def _highest(dt: np.dtype) -> object:
    return True if dt.kind == "b" else (np.inf if dt.kind == "f" else np.iinfo(dt).max)


_EMPTY_INITIAL = {"reduce_max": _lowest, "reduce_min": _highest}


def _register_reduce(name: str, fn) -> None:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        axes = _reduce_axes(ts[0], a, name)
        if a["keepdims"]:
            dims = tuple(1 if i in axes else d for i, d in enumerate(ts[0].shape))
        else:
            dims = tuple(d for i, d in enumerate(ts[0].shape) if i not in axes)
        return (ts[0].with_shape(dims),)

    def ev(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
        x = xs[0]
        # NOTE: (0, -2) on rank 2 names one axis twice; normalize as infer does.
        axes = tuple(sorted({ax % max(x.ndim, 1) for ax in a.ints("axes")})) or tuple(range(x.ndim))
        kw = {}
        if x.size == 0 and name in _EMPTY_INITIAL:  # ONNX: max of nothing is the lowest value
            kw["initial"] = _EMPTY_INITIAL[name](x.dtype)
        return (np.asarray(fn(x, axis=axes, keepdims=a.bool("keepdims"), **kw)).astype(x.dtype),)
    register_op(name, 1, infer, ev, attrs={"axes": ("ints", ()), "keepdims": ("bool", True)},
                kind="reduce", flops=flops.per_in(1))


_register_reduce("reduce_sum", np.sum)
_register_reduce("reduce_mean", np.mean)
_register_reduce("reduce_max", np.max)
_register_reduce("reduce_min", np.min)
_register_reduce("reduce_prod", np.prod)


def _softmax(x: np.ndarray, axis: int, log: bool) -> np.ndarray:
    if x.size == 0:  # np.max has no identity on an empty axis
        return x.copy()
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    s = np.sum(e, axis=axis, keepdims=True)
    return (x - m - np.log(s)) if log else e / s


def _softmax_infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
    norm_axis(a.int("axis"), ts[0].rank, "softmax")
    return (ts[0],)


register_op("softmax", 1, _softmax_infer,
            lambda xs, a: (_softmax(xs[0], a.int("axis"), False).astype(xs[0].dtype),),
            attrs={"axis": ("int", -1)}, kind="reduce", flops=flops.per_out(5))
register_op("log_softmax", 1, _softmax_infer,
            lambda xs, a: (_softmax(xs[0], a.int("axis"), True).astype(xs[0].dtype),),
            attrs={"axis": ("int", -1)}, kind="reduce", flops=flops.per_out(5))
