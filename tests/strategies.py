"""Hypothesis strategies for small, well-typed IR graphs, shared by the IR and pass tests.

    from tests.strategies import graphs, seeded_inputs, assert_close

    @given(graphs())
    def test_my_pass_is_sound(g):
        x = seeded_inputs(g, seed=0)
        assert_close(interp.run(my_pass(g), *x), interp.run(g, *x))

What `graphs()` makes: random DAGs of at most 12 nodes, built through
`vcompile.ir.Builder` (so every node is well-typed and carries all its attrs),
over f32 mostly plus some i64 and bool values: elementwise unary and binary ops
with broadcasting, comparisons and `where`, cast, reshape (also with a symbolic
batch dim `N`), transpose, concat, split (multi-output), slice, reductions,
softmax and matmul. Constants are small (shown inline when printed) or larger
(more than 8 elements, printed by type only). Graphs may have several outputs;
value hints repeat and some values have none, to exercise the printer's naming.
Dead nodes are possible (nothing forces every node to reach an output).

Extension point: a *node generator* is `gen(ctx: GraphContext) -> bool`. It picks
values from `ctx.values` with `ctx.pick(...)`, may add constants with
`ctx.const(...)`, emits nodes with `ctx.emit(...)` and returns False if it found
nothing to apply to. A BuildError from `ctx.emit` just skips that step, so a
generator may try shapes that sometimes do not type-check. `NODE_GENS` is the
default table; pass another to `graphs(gens=...)`, e.g. for conv patterns:

    def conv_gen(ctx: GraphContext) -> bool:
        x = ctx.pick(lambda v: v.type.rank == 4 and v.dtype == "f32")
        if x is None:
            return False
        w = ctx.const((4, x.shape[1], 3, 3), "f32", hint="w")
        ...
        ctx.emit("conv2d", x, w, b, pads=(1, 1, 1, 1))
        return True

    conv_graphs = graphs(gens={**NODE_GENS, "conv2d": conv_gen},
                         inputs=st.just([TensorType("f32", (1, 3, 8, 8))]))
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from vcompile.ir import Builder, BuildError, Graph, TensorType, Value
from vcompile.ir.ops import ShapeError, broadcast_shapes
from vcompile.ir.types import Dim

MAX_NODES = 12
# Repeated hints, a hint that collides with a `_1` suffix, empty hints (numbered),
# and hints the printer must sanitize.
HINTS = ("", "", "", "x", "y", "t", "t", "x_1", "out.0", "a-b")
FLOAT_UNARY = ("relu", "neg", "abs", "sigmoid", "tanh", "exp", "sin", "identity", "gelu",
               "silu", "hard_swish", "floor")
INT_UNARY = ("neg", "abs", "relu", "identity")
ARITH = ("add", "sub", "mul", "max", "min")
COMPARE = ("equal", "less", "greater", "less_equal", "greater_equal")
REDUCE = ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")

# Per-dtype (rtol, atol). Floats allow reassociation error; ints and bools are exact.
TOLERANCES: dict[str, tuple[float, float]] = {
    "f16": (1e-2, 1e-2), "f32": (1e-4, 1e-5), "f64": (1e-9, 1e-12)}


@dataclass
class GraphContext:
    """What a node generator sees: the builder, the values so far, and hypothesis's draw."""

    draw: Callable[[st.SearchStrategy[Any]], Any]
    bb: Builder
    values: list[Value] = field(default_factory=list)  # inputs, consts, node outputs

    def pick(self, pred: Callable[[Value], bool] = lambda v: True) -> Value | None:
        """One of the values so far that satisfies `pred`, or None if there is none."""
        ok = [v for v in self.values if pred(v)]
        return self.draw(st.sampled_from(ok)) if ok else None

    def hint(self) -> str:
        return self.draw(st.sampled_from(HINTS))

    def const(self, shape: Sequence[int], dtype: str = "f32", hint: str = "c",
              positive: bool = False) -> Value:
        """A new constant with seeded random contents (drawn seed, so it shrinks)."""
        rng = np.random.default_rng(self.draw(st.integers(0, 2**16)))
        arr = random_array(rng, TensorType(dtype, tuple(shape)))
        if positive:
            arr = np.abs(arr) + np.ones((), arr.dtype)
        v = self.bb.const(arr, hint=hint)
        self.values.append(v)
        return v

    def emit(self, op: str, *inputs: Value, **attrs: Any) -> tuple[Value, ...]:
        """Emit a node with a drawn hint; its outputs join `values`."""
        outs = self.bb.emit_multi(op, *inputs, hint=self.hint(), **attrs)
        self.values.extend(outs)
        return outs


NodeGen = Callable[[GraphContext], bool]


# ---- helpers ---------------------------------------------------------------------------

def random_array(rng: np.random.Generator, t: TensorType) -> np.ndarray:
    """Values that keep the generated ops tame: normals for floats, small ints, coin flips."""
    shape = tuple(int(d) for d in t.shape)
    if t.dtype == "bool":
        return rng.random(shape) < 0.5
    if t.np_dtype.kind == "u":
        return rng.integers(0, 8, shape).astype(t.np_dtype)
    if t.np_dtype.kind == "i":
        return rng.integers(-4, 5, shape).astype(t.np_dtype)
    return rng.standard_normal(shape).astype(t.np_dtype)


def _is_float(v: Value) -> bool:
    return v.dtype in ("f16", "f32", "f64")


def _broadcasts(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> bool:
    try:
        broadcast_shapes(a, b)
    except ShapeError:
        return False
    return True


def _static_axes(v: Value, least: int = 1) -> list[int]:
    return [i for i, d in enumerate(v.shape) if isinstance(d, int) and d >= least]


def _bcast_shape(ctx: GraphContext, shape: tuple[Dim, ...]) -> tuple[int, ...]:
    """A static shape that broadcasts against `shape`: a suffix, some dims set to 1."""
    k = ctx.draw(st.integers(0, len(shape)))
    tail = shape[len(shape) - k:]
    return tuple(d if isinstance(d, int) and ctx.draw(st.booleans()) else 1 for d in tail)


def _other(ctx: GraphContext, a: Value, positive: bool = False) -> Value:
    """A second operand for `a`: a broadcast-compatible value so far, or a new constant."""
    if not positive and ctx.draw(st.booleans()):
        b = ctx.pick(lambda v: v.dtype == a.dtype and _broadcasts(a.shape, v.shape))
        if b is not None:
            return b
    return ctx.const(_bcast_shape(ctx, a.shape), a.dtype, positive=positive)


# ---- node generators -------------------------------------------------------------------

def gen_unary(ctx: GraphContext) -> bool:
    v = ctx.pick()
    if v is None:
        return False
    if v.dtype == "bool":
        ctx.emit("logical_not", v)
    elif not _is_float(v):
        ctx.emit(ctx.draw(st.sampled_from(INT_UNARY + ("clip",))), v,
                 **({"min": -2.0, "max": 3.0} if ctx.draw(st.booleans()) else {}))
    elif ctx.draw(st.integers(0, 4)) == 4:
        lo = ctx.draw(st.sampled_from([-1.0, 0.0, -np.inf]))
        ctx.emit("clip", v, min=lo, max=ctx.draw(st.sampled_from([0.5, 6.0, np.inf])))
    else:
        ctx.emit(ctx.draw(st.sampled_from(FLOAT_UNARY)), v)
    return True


def gen_binary(ctx: GraphContext) -> bool:
    a = ctx.pick()
    if a is None:
        return False
    if a.dtype == "bool":
        ctx.emit(ctx.draw(st.sampled_from(("logical_and", "logical_or"))), a, _other(ctx, a))
    elif _is_float(a) and ctx.draw(st.integers(0, 5)) == 5:  # divide by a positive const
        ctx.emit("div", a, _other(ctx, a, positive=True))
    else:
        op = ctx.draw(st.sampled_from(ARITH + COMPARE))
        b = _other(ctx, a)
        ctx.emit(op, *((a, b) if ctx.draw(st.booleans()) else (b, a)))
    return True


def gen_where(ctx: GraphContext) -> bool:
    cond = ctx.pick(lambda v: v.dtype == "bool")
    a = ctx.pick(lambda v: v.dtype != "bool" and cond is not None
                 and _broadcasts(cond.shape, v.shape))
    if cond is None or a is None:
        return False
    ctx.emit("where", cond, a, _other(ctx, a))
    return True


def gen_cast(ctx: GraphContext) -> bool:
    v = ctx.pick()
    if v is None:
        return False
    to = "f32" if not _is_float(v) else ctx.draw(st.sampled_from(("bool", "i64")))
    if to == "i64":  # keep float -> int away from nan/inf, whose cast is undefined
        v = ctx.emit("clip", v, min=-100.0, max=100.0)[0]
        v = ctx.emit("where", ctx.emit("equal", v, v)[0], v,
                     ctx.const((), v.dtype))[0]
    ctx.emit("cast", v, to=to)
    return True


def _factor(ctx: GraphContext, n: int) -> list[int]:
    """A random factorization of n into 1 to 3 dims."""
    dims: list[int] = []
    if n == 0:  # an empty tensor (a slice can make one): no factorization to draw
        return [0]
    for _ in range(ctx.draw(st.integers(0, 2))):
        divs = [d for d in range(1, n + 1) if n % d == 0]
        d = ctx.draw(st.sampled_from(divs))
        dims.append(d)
        n //= d
    return dims + [n]


def gen_reshape(ctx: GraphContext) -> bool:
    v = ctx.pick(lambda v: all(isinstance(d, int) for d in v.shape[1:]))
    if v is None:
        return False
    lead = v.shape[:1] if v.shape and isinstance(v.shape[0], str) else ()
    rest = v.shape[len(lead):]
    dims: list[Dim] = list(lead) + _factor(ctx, int(np.prod(rest, dtype=np.int64)))
    if 0 not in dims and ctx.draw(st.booleans()):  # -1 is ambiguous for an empty tensor
        dims[ctx.draw(st.integers(len(lead), len(dims) - 1))] = -1
    ctx.emit("reshape", v, shape=tuple(dims))
    return True


def gen_transpose(ctx: GraphContext) -> bool:
    v = ctx.pick(lambda v: v.type.rank >= 2)
    if v is None:
        return False
    ctx.emit("transpose", v, perm=tuple(ctx.draw(st.permutations(range(v.type.rank)))))
    return True


def gen_concat(ctx: GraphContext) -> bool:
    v = ctx.pick(lambda v: bool(_static_axes(v)))
    if v is None:
        return False
    ax = ctx.draw(st.sampled_from(_static_axes(v)))
    parts = [v]
    for _ in range(ctx.draw(st.integers(1, 2))):
        if v.type.is_static and ctx.draw(st.booleans()):
            shape = list(v.shape)
            shape[ax] = ctx.draw(st.integers(1, 3))
            parts.append(ctx.const(tuple(shape), v.dtype))  # type: ignore[arg-type]
        else:
            parts.append(ctx.pick(lambda u: u.type == v.type) or v)
    ctx.emit("concat", *parts, axis=ax - v.type.rank * ctx.draw(st.integers(0, 1)))
    return True


def gen_split(ctx: GraphContext) -> bool:
    v = ctx.pick(lambda v: bool(_static_axes(v, 2)))
    if v is None:
        return False
    ax = ctx.draw(st.sampled_from(_static_axes(v, 2)))
    n = int(v.shape[ax])
    cut = sorted(set(ctx.draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=2))))
    sizes = [b - a for a, b in zip([0, *cut], [*cut, n], strict=True)]
    ctx.emit("split", v, axis=ax, sizes=tuple(sizes))
    return True


def gen_slice(ctx: GraphContext) -> bool:
    v = ctx.pick(lambda v: bool(_static_axes(v, 2)))
    if v is None:
        return False
    ax = ctx.draw(st.sampled_from(_static_axes(v, 2)))
    n = int(v.shape[ax])
    start = ctx.draw(st.integers(-n, n - 1))
    end = ctx.draw(st.sampled_from([n, 2**31 - 1, -1, (start % n) + 1]))
    step = ctx.draw(st.sampled_from([1, 1, 2]))
    ctx.emit("slice", v, starts=(start,), ends=(end,), axes=(ax,), steps=(step,))
    return True


def gen_reduce(ctx: GraphContext) -> bool:
    v = ctx.pick(lambda v: v.dtype != "bool" and v.type.rank >= 1)
    if v is None:
        return False
    r = v.type.rank
    axes = ctx.draw(st.lists(st.integers(-r, r - 1), max_size=2, unique_by=lambda a: a % r))
    ctx.emit(ctx.draw(st.sampled_from(REDUCE)), v, axes=tuple(axes),
             keepdims=ctx.draw(st.booleans()))
    return True


def gen_softmax(ctx: GraphContext) -> bool:
    v = ctx.pick(lambda v: _is_float(v) and v.type.rank >= 1)
    if v is None:
        return False
    r = v.type.rank
    ctx.emit(ctx.draw(st.sampled_from(("softmax", "log_softmax"))), v,
             axis=ctx.draw(st.integers(-r, r - 1)))
    return True


def gen_matmul(ctx: GraphContext) -> bool:
    a = ctx.pick(lambda v: _is_float(v) and v.type.rank >= 1 and isinstance(v.shape[-1], int))
    if a is None:
        return False
    k = int(a.shape[-1])
    b = ctx.pick(lambda v: v.dtype == a.dtype and v.type.rank == 2 and v.shape[0] == k)
    if b is None or ctx.draw(st.booleans()):
        shape = (k,) if ctx.draw(st.integers(0, 4)) == 4 else (k, ctx.draw(st.integers(1, 4)))
        b = ctx.const(shape, a.dtype, hint="w")
    ctx.emit("matmul", a, b)
    return True


NODE_GENS: Mapping[str, NodeGen] = {
    "unary": gen_unary, "binary": gen_binary, "where": gen_where, "cast": gen_cast,
    "reshape": gen_reshape, "transpose": gen_transpose, "concat": gen_concat,
    "split": gen_split, "slice": gen_slice, "reduce": gen_reduce, "softmax": gen_softmax,
    "matmul": gen_matmul,
}


# ---- graphs ----------------------------------------------------------------------------

@st.composite
def tensor_types(draw: Callable[..., Any], dtypes: Sequence[str] = ("f32",) * 6 + ("i64", "bool"),
                 max_rank: int = 3, symbolic: bool = True) -> TensorType:
    """Small tensor types; a leading dim may be the symbol N (a batch size)."""
    dims: list[Dim] = draw(st.lists(st.integers(1, 4), max_size=max_rank))
    if symbolic and dims and draw(st.integers(0, 3)) == 3:
        dims[0] = "N"
    return TensorType(draw(st.sampled_from(list(dtypes))), tuple(dims))


@st.composite
def graphs(draw: Callable[..., Any], *, max_nodes: int = MAX_NODES,
           gens: Mapping[str, NodeGen] = NODE_GENS,
           inputs: st.SearchStrategy[list[TensorType]] | None = None,
           name: str = "g") -> Graph:
    """A random well-typed graph of 1 to `max_nodes` nodes (see the module docstring).

    `gens` is the table of node generators; `inputs` draws the input types
    (default: one to three small types, f32 mostly)."""
    bb = Builder(name)
    ctx = GraphContext(draw, bb)
    types = draw(inputs if inputs is not None else st.lists(tensor_types(), min_size=1, max_size=3))
    ctx.values.extend(bb.input(t, hint=draw(st.sampled_from(("x", "x", "y", "")))) for t in types)
    for _ in range(draw(st.integers(0, 2))):
        t = draw(tensor_types(symbolic=False))
        ctx.const(t.shape, t.dtype)  # type: ignore[arg-type]
    for _ in range(draw(st.integers(1, max_nodes))):
        if len(bb.nodes) >= max_nodes - 3:  # a generator emits at most 4 nodes
            break
        gen = gens[draw(st.sampled_from(sorted(gens)))]
        try:
            gen(ctx)
        except BuildError:
            pass  # the generator tried something ill-typed; skip this step
    if not bb.nodes:
        ctx.emit("identity", ctx.values[0])
    last = bb.nodes[-1].outputs
    extra = draw(st.lists(st.sampled_from(ctx.values), max_size=2))
    return bb.build(*last, *extra)


@st.composite
def fused_graphs(draw: Callable[..., Any], max_nodes: int = 6) -> Graph:
    """A graph whose one node `fused` holds a generated graph as its region, so that
    region handling (print, parse, verify, interp) is exercised."""
    body = draw(graphs(max_nodes=max_nodes, name="body"))
    bb = Builder("outer")
    xs = [bb.input(v.type, hint=v.hint or "x") for v in body.inputs]
    outs = bb.emit_multi("fused", *xs, hint="f", region=body, loc="fused_0")
    return bb.build(*outs)


# ---- inputs and comparison -------------------------------------------------------------

def seeded_inputs(g: Graph, seed: int = 0, sizes: Mapping[str, int] | None = None
                  ) -> list[np.ndarray]:
    """One array per graph input, the same for the same graph types and seed.

    Symbolic dims take their size from `sizes`, or else 1 to 3 from the seed;
    a symbol shared by several inputs gets one size."""
    rng = np.random.default_rng(seed)
    bound: dict[str, int] = dict(sizes or {})
    out = []
    for v in g.inputs:
        for d in v.shape:
            if isinstance(d, str) and d not in bound:
                bound[d] = int(rng.integers(1, 4))
        shape = tuple(bound[d] if isinstance(d, str) else d for d in v.shape)
        out.append(random_array(rng, TensorType(v.dtype, shape)))
    return out


def assert_close(actual: Any, expected: Any, dtype: str | None = None, *,
                 rtol: float | None = None, atol: float | None = None) -> None:
    """Compare arrays (or equal-length sequences of arrays) with per-dtype tolerances.

    Tolerances come from TOLERANCES by `dtype` (default: each array's own dtype);
    ints and bools must match exactly; nan matches nan and inf matches inf.
    Shapes and dtypes must match exactly."""
    if isinstance(actual, (list, tuple)):
        assert isinstance(expected, (list, tuple)) and len(actual) == len(expected), (
            f"{len(actual)} results vs {len(expected)} expected")
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            try:
                assert_close(a, e, dtype, rtol=rtol, atol=atol)
            except AssertionError as err:
                raise AssertionError(f"result {i}: {err}") from None
        return
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape and a.dtype == e.dtype, (
        f"got {a.dtype}{list(a.shape)}, expected {e.dtype}{list(e.shape)}")
    name = dtype or _dtype_name(e)
    if name not in TOLERANCES:
        np.testing.assert_array_equal(a, e)
        return
    rt, at = TOLERANCES[name]
    np.testing.assert_allclose(a, e, rtol=rt if rtol is None else rtol,
                               atol=at if atol is None else atol, equal_nan=True)


def _dtype_name(a: np.ndarray) -> str:
    from vcompile.ir.types import dtype_of
    return dtype_of(a)
