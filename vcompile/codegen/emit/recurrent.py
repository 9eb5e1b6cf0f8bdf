"""Relax emission of the recurrent layers (`lstm`, `gru`, `rnn`).

    lstm(X, W, R, ...)  =>  xw = X[T*N, I] @ W^T[I, D*G*H]           one matmul, all steps
                            rnn_kernel(xw, pack(R^T), B?, lens?, h0?, c0?, P?) -> Y, Y_h[, Y_c]

The input projection has no time dependence, so it is one GEMM over every step (the tiled,
packed kernel when the build has CPU tiles and W is a constant). The recurrence is a
hand-written TIR kernel (`te.extern`): a parallel loop over (direction, batch element),
each running its serial time loop; a step is a matrix-vector product h @ R^T over R^T
packed as [cols/nb, H, nb] (nb = 4 vectors: four FMA chains in flight, the weights
read contiguously; at H = 256 a step streams R^T at the cache's bandwidth, and 8 vectors
measured no faster), then the gates in vectors. Biases, peepholes, clip,
sequence lengths and initial states are read inside the kernel. The kernel comes
scheduled (`tirx.is_scheduled`), so the CPU schedules leave it alone.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tvm import relax, te, tirx

from vcompile.codegen.emit import kernels
from vcompile.codegen.emit.common import const_value
from vcompile.codegen.emit.relax import TVM_DTYPE, Ctx, np_const, rule
from vcompile.ir.graph import Node
from vcompile.ir.ops.recurrent import GATES, Activation, activations, num_directions, present

R = relax.op
NB_VECTORS = 4  # vectors per packed column block: independent FMA chains per step
# Cephes' expf polynomial on [-ln2/2, ln2/2] (as topi.fast_exp): relative error ~1e-7
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
             5.0000001201e-1)


def _exp(x: Any, dt: str) -> Any:
    """exp as arithmetic the loop vectorizer keeps in vectors (LLVM scalarizes a vector
    `llvm.exp` into one libm call per lane: 3/4 of an LSTM step's time at H = 96)."""
    if dt != "float32":
        return tirx.exp(x)
    c = lambda v: tirx.const(v, dt)  # noqa: E731
    x = tirx.max(tirx.min(x, c(88.3762626647949)), c(-88.3762626647949))
    n = tirx.floor(x * c(1.4426950408889634) + c(0.5))
    r = x - n * c(0.6931471805599453)
    p = c(_EXP_POLY[0])
    for k in _EXP_POLY[1:]:
        p = p * r + c(k)
    y = p * r * r + r + c(1.0)
    bits = tirx.shift_left(tirx.Cast("int32", n) + tirx.const(127, "int32"), tirx.const(23, "int32"))
    return y * tirx.call_intrin(dt, "tirx.reinterpret", bits)


def _tanh(x: Any, dt: str) -> Any:
    one = tirx.const(1.0, dt)
    return one - tirx.const(2.0, dt) / (_exp(x + x, dt) + one)


def _act(act: Activation, x: Any, dt: str) -> Any:
    """ONNX activation of a PrimExpr `x` (a load: reading it twice costs nothing)."""
    name, al, be = act
    c = lambda v: tirx.const(v, dt)  # noqa: E731
    zero, one = c(0.0), c(1.0)
    fns = {"Sigmoid": lambda: one / (one + _exp(-x, dt)), "Tanh": lambda: _tanh(x, dt),
           "Relu": lambda: tirx.max(x, zero), "Affine": lambda: c(al) * x + c(be),
           "LeakyRelu": lambda: tirx.Select(x >= zero, x, c(al) * x),
           "ThresholdedRelu": lambda: tirx.Select(x > c(al), x, zero),
           "ScaledTanh": lambda: c(al) * _tanh(c(be) * x, dt),
           "HardSigmoid": lambda: tirx.max(zero, tirx.min(one, c(al) * x + c(be))),
           "Elu": lambda: tirx.Select(x >= zero, x, c(al) * (_exp(tirx.min(x, zero), dt) - one)),
           "Softsign": lambda: x / (one + tirx.abs(x)),
           "Softplus": lambda: tirx.max(x, zero) + tirx.log(one + _exp(-tirx.abs(x), dt))}
    return fns[name]()


def _pack_np(r: np.ndarray, col0: int, ncols: int, nb: int) -> np.ndarray:
    """R [D, G*H, H] -> R^T columns [col0, col0+ncols) packed as [D, ceil(ncols/nb), H, nb]."""
    rt = np.ascontiguousarray(r[:, col0:col0 + ncols, :].transpose(0, 2, 1))
    return kernels.pack_gemm_weight(rt, nb)


def _pack_te(r: te.Tensor, col0: int, ncols: int, nb: int) -> te.Tensor:
    d, h = r.shape[0], r.shape[2]
    chunks = kernels.ceil_to(ncols, nb) // nb
    return te.compute((d, chunks, h, nb), lambda a, jo, k, ji: tirx.if_then_else(
        jo * nb + ji < ncols, r[a, col0 + tirx.min(jo * nb + ji, ncols - 1), k],
        tirx.const(0, r.dtype)), name="rnn_pack_r")


class _Kernel:
    """Writes the TIR of one recurrent node (`build`: input name -> buffer, outputs)."""

    def __init__(self, n: Node, nb: int) -> None:
        a = n.attrs
        self.op, self.a, self.nb, self.lanes = n.op, a, nb, max(1, nb // NB_VECTORS)
        self.h, self.g = a.int("hidden_size"), GATES[n.op]
        self.nd, self.layout = num_directions(a), a.int("layout")
        self.acts, self.clip = activations(n.op, a), a.float("clip")
        self.dt = TVM_DTYPE[n.inputs[0].dtype]
        x = n.inputs[0].shape
        self.seq, self.batch = (x[1], x[0]) if self.layout else (x[0], x[1])
        self.names = present(n.op, a)

    def groups(self) -> list[tuple[int, int]]:
        """(first column, columns) of each packed R^T block: GRU's h gate is apart."""
        h = self.h
        return [(0, 2 * h), (2 * h, h)] if self.op == "gru" else [(0, self.g * h)]

    def c(self, v: float) -> Any:
        return tirx.const(v, self.dt)

    def build(self, ins: dict[str, Any], outs: list[Any]) -> Any:
        from tvm.script.ir_builder import IRBuilder
        from tvm.script.ir_builder import tirx as T
        self.T = T
        with IRBuilder() as ib:
            b = {k: T.buffer_proxy(v) for k, v in ins.items()}
            o = [T.buffer_proxy(v) for v in outs]
            with T.parallel(0, self.nd * self.batch) as dn:
                self._sequence(b, o, dn // self.batch, dn % self.batch)
            return ib.get()

    def _each(self, body: Any) -> None:
        """body(j) for j < H: whole vectors of `lanes`, then a scalar tail."""
        T, h, lanes = self.T, self.h, self.lanes
        if h // lanes:
            with T.serial(0, h // lanes) as jo:
                with T.vectorized(0, lanes) as ji:
                    body(jo * lanes + ji)
        if h % lanes:
            with T.serial(h - h % lanes, h) as j:
                body(j)

    def _alloc(self, size: int) -> Any:
        return self.T.buffer_proxy(self.T.alloc_buffer((size,), self.dt))

    def _sequence(self, b: dict[str, Any], o: list[Any], d: Any, nn: Any) -> None:
        T, h = self.T, self.h
        hs, cs = self._alloc(h), self._alloc(h)
        st = (nn, d) if self.layout else (d, nn)
        with T.serial(0, h) as j:
            hs[j] = b["initial_h"][(*st, j)] if "initial_h" in b else self.c(0.0)
            cs[j] = b["initial_c"][(*st, j)] if "initial_c" in b else self.c(0.0)
        rev = self.a["direction"] == "reverse"
        with T.serial(0, self.seq) as s:
            lens = tirx.Cast("int64", b["sequence_lens"][nn]) if "sequence_lens" in b else self.seq
            t = (self.seq - 1 - s) if rev else tirx.Select(d == 0, s, self.seq - 1 - s) \
                if self.nd == 2 else s
            y = (nn, t, d) if self.layout else (t, d, nn)
            row = nn * self.seq + t if self.layout else t * self.batch + nn
            with T.If(tirx.Cast("int64", t) < lens):
                with T.Then():
                    self._branch(b, d, row, hs, cs)
                    with T.serial(0, h) as j:
                        o[0][(*y, j)] = hs[j]
                with T.Else():
                    with T.serial(0, h) as j:
                        o[0][(*y, j)] = self.c(0.0)
        with T.serial(0, h) as j:
            o[1][(*st, j)] = hs[j]
            if self.op == "lstm":
                o[2][(*st, j)] = cs[j]

    def _branch(self, b: dict[str, Any], d: Any, row: Any, hs: Any, cs: Any) -> None:
        """One step; bidirectional layers with per-direction activations branch on d."""
        step = getattr(self, "_" + self.op)
        if self.nd == 1 or self.acts[0] == self.acts[1]:
            step(b, d, row, hs, cs, self.acts[0])
            return
        with self.T.If(d == 0):
            with self.T.Then():
                step(b, d, row, hs, cs, self.acts[0])
            with self.T.Else():
                step(b, d, row, hs, cs, self.acts[1])

    def _matvec(self, src: Any, packed: Any, d: Any, ncols: int) -> Any:
        """src[H] @ R^T block -> a new buffer of the block's columns (padded to nb)."""
        T, nb = self.T, self.nb
        chunks = kernels.ceil_to(ncols, nb) // nb
        out = self._alloc(chunks * nb)
        with T.serial(0, chunks) as jo:
            acc = T.buffer_proxy(T.alloc_buffer((nb,), self.dt, scope="local"))
            with T.vectorized(0, nb) as ji:
                acc[ji] = self.c(0.0)
            with T.serial(0, self.h) as k:
                v = src[k]
                with T.vectorized(0, nb) as ji:
                    acc[ji] = acc[ji] + v * packed[d, jo, k, ji]
            with T.vectorized(0, nb) as ji:
                out[jo * nb + ji] = acc[ji]
        return out

    def _pre(self, b: dict[str, Any], d: Any, row: Any, gate: int, j: Any) -> Any:
        """x_t W^T + Wb (+ Rb) of one gate element (GRU's h gate adds its Rb apart)."""
        col = gate * self.h + j
        v = b["xw"][row, d * self.g * self.h + col]
        if "B" in b:
            v = v + b["B"][d, col]
            if not (self.op == "gru" and gate == 2):
                v = v + b["B"][d, self.g * self.h + col]
        return v

    def _set(self, buf: Any, i: Any, act: Activation, v: Any) -> Any:
        """buf[i] = act(clip(v)), in two stores so the activation reads a load."""
        lim = self.c(self.clip)
        buf[i] = tirx.max(-lim, tirx.min(lim, v)) if self.clip > 0 else v
        buf[i] = _act(act, buf[i], self.dt)
        return buf[i]

    def _rnn(self, b: dict[str, Any], d: Any, row: Any, hs: Any, cs: Any, acts: list[Activation]) -> None:
        g = self._matvec(hs, b["r0"], d, self.h)

        def update(j: Any) -> None:
            hs[j] = self._set(g, j, acts[0], g[j] + self._pre(b, d, row, 0, j))
        self._each(update)

    def _lstm(self, b: dict[str, Any], d: Any, row: Any, hs: Any, cs: Any, acts: list[Activation]) -> None:
        h = self.h
        g = self._matvec(hs, b["r0"], d, 4 * h)
        peep = (lambda k, j, c: b["P"][d, k * h + j] * c) if "P" in b else (lambda k, j, c: self.c(0.0))

        def update(j: Any) -> None:
            c0 = cs[j]  # a load: read before the store below
            i = self._set(g, j, acts[0], g[j] + self._pre(b, d, row, 0, j) + peep(0, j, c0))
            if self.a.bool("input_forget"):
                g[2 * h + j] = self.c(1.0) - i
            else:
                self._set(g, 2 * h + j, acts[0], g[2 * h + j] + self._pre(b, d, row, 2, j)
                          + peep(2, j, c0))
            cc = self._set(g, 3 * h + j, acts[1], g[3 * h + j] + self._pre(b, d, row, 3, j))
            cs[j] = g[2 * h + j] * c0 + g[j] * cc
            o = self._set(g, h + j, acts[0], g[h + j] + self._pre(b, d, row, 1, j) + peep(1, j, cs[j]))
            hs[j] = o * _act(acts[2], cs[j], self.dt)
        self._each(update)

    def _gru(self, b: dict[str, Any], d: Any, row: Any, hs: Any, cs: Any, acts: list[Activation]) -> None:
        h, lbr = self.h, self.a.bool("linear_before_reset")
        zr = self._matvec(hs, b["r0"], d, 2 * h)
        gh = self._matvec(hs, b["r1"], d, h) if lbr else None

        def gates(j: Any) -> None:
            self._set(zr, j, acts[0], zr[j] + self._pre(b, d, row, 0, j))
            r = self._set(zr, h + j, acts[0], zr[h + j] + self._pre(b, d, row, 1, j))
            if not lbr:
                cs[j] = r * hs[j]  # GRU has no cell: its buffer holds r * h
        self._each(gates)
        ghv = gh if gh is not None else self._matvec(cs, b["r1"], d, h)
        rbh = (lambda j: b["B"][d, 5 * h + j]) if "B" in b else (lambda j: self.c(0.0))

        def update(j: Any) -> None:
            lin = zr[h + j] * (ghv[j] + rbh(j)) if lbr else ghv[j] + rbh(j)
            hh = self._set(ghv, j, acts[1], self._pre(b, d, row, 2, j) + lin)
            hs[j] = (self.c(1.0) - zr[j]) * hh + zr[j] * hs[j]
        self._each(update)


def _projection(ctx: Ctx, n: Node, x: Any, w: Any) -> Any:
    """X [T*N, I] @ W^T [I, D*G*H] over every step at once."""
    xt = n.inputs[0].type
    d, gh, i = (int(v) for v in n.inputs[1].shape)
    x2 = ctx.reshape(x, [ctx.dim(xt.shape[0]) * ctx.dim(xt.shape[1]), i])
    wv = const_value(w)
    if wv is None:
        return ctx.emit(R.matmul(x2, ctx.emit(R.permute_dims(ctx.reshape(w, [d * gh, i]), [1, 0]))))
    w2 = np.ascontiguousarray(wv.reshape(d * gh, i).T)
    if ctx.tiles is None or not xt.is_static or xt.dtype != "f32":
        return ctx.emit(R.matmul(x2, np_const(w2)))
    m = int(xt.shape[0]) * int(xt.shape[1])
    bp = np_const(kernels.pack_gemm_weight(w2, ctx.tiles.block)[None])
    y = ctx.emit_te(kernels.gemm, ctx.reshape(x2, [1, m, i]), bp, d * gh,
                    kernels.row_tile(m, ctx.tiles.rows), primfunc_name_hint="rnn_input")
    return ctx.reshape(y, [m, d * gh])


@rule("lstm", "gru", "rnn")
def emit_recurrent(ctx: Ctx, n: Node, args: list[relax.Expr]) -> tuple[relax.Expr, ...]:
    lanes = ctx.tiles.lanes if ctx.tiles is not None else 8
    k = _Kernel(n, NB_VECTORS * lanes)
    k.seq, k.batch = ctx.dim(k.seq), ctx.dim(k.batch)
    named: dict[str, relax.Expr] = {"xw": _projection(ctx, n, args[0], args[1])}
    rv = const_value(args[2])
    for g, (col0, ncols) in enumerate(k.groups()):
        if rv is not None:
            named[f"r{g}"] = np_const(_pack_np(rv, col0, ncols, k.nb))
        else:
            named[f"r{g}"] = ctx.emit_te(_pack_te, args[2], col0, ncols, k.nb)
    named.update(zip(k.names, args[3:], strict=True))
    ph = {nm: te.placeholder(tuple(e.ty.shape.values), str(e.ty.dtype), name=nm)
          for nm, e in named.items()}
    out_types = [v.type for v in n.outputs]
    ext = te.extern([ctx.shape(t.shape) for t in out_types], list(ph.values()),
                    lambda ins, outs: k.build(dict(zip(ph, ins, strict=True)), list(outs)),
                    name=n.op, dtype=[TVM_DTYPE[t.dtype] for t in out_types])
    ext = ext if isinstance(ext, list) else [ext]
    func = te.create_prim_func([*ph.values(), *ext]).without_attr("global_symbol")
    func = func.with_attr("tirx.is_scheduled", True)
    gv = ctx.bb.add_func(func, n.op)
    call = ctx.emit(relax.call_tir(gv, list(named.values()), [ctx.sinfo(t) for t in out_types]))
    return tuple(ctx.emit(relax.TupleGetItem(call, i)) for i in range(len(out_types)))

