"""Recurrent layers: `lstm`, `gru`, `rnn`, with ONNX semantics (LSTM/GRU/RNN, opset 7+).

    lstm(X, W, R, [B], [sequence_lens], [initial_h], [initial_c], [P]) -> Y, Y_h, Y_c
    gru(X, W, R, [B], [sequence_lens], [initial_h])                    -> Y, Y_h
    rnn(X, W, R, [B], [sequence_lens], [initial_h])                    -> Y, Y_h

Which optional inputs follow W and R is the attr `present` (their ONNX names, in order,
comma-separated: "B,initial_h"), so a missing input in the middle needs no placeholder.
Gates (G of them, each `hidden_size` H wide, ONNX order): lstm i, o, f, c; gru z, r, h;
rnn one. With D directions (2 when bidirectional):

    X [T, N, I]  (layout 1: [N, T, I])     W [D, G*H, I]   R [D, G*H, H]   B [D, 2*G*H]
    sequence_lens [N] (i32)   initial_h/c [D, N, H] (layout 1: [N, D, H])   P [D, 3*H]
    Y [T, D, N, H] (layout 1: [N, T, D, H])   Y_h, Y_c as initial_h

`activations` (comma-separated ONNX names, "" = the op's defaults) gives f, g[, h] per
direction; `activation_alpha`/`activation_beta` are consumed in order by the activations
that take a parameter (defaults as the ONNX operators of the same name). `clip` > 0
bounds every activation's input to [-clip, clip]. Steps at and past a batch element's
sequence length leave its state alone and write zeros to Y, so Y_h holds the last valid
step (for the reverse direction: the state after step 0).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vcompile.ir.graph import Attrs, Node
from vcompile.ir.ops.registry import ShapeError, register_op
from vcompile.ir.types import Dim, TensorType

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
OPTIONAL = {"lstm": ("B", "sequence_lens", "initial_h", "initial_c", "P"),
            "gru": ("B", "sequence_lens", "initial_h"), "rnn": ("B", "sequence_lens", "initial_h")}
DEFAULT_ACTS = {"lstm": ("Sigmoid", "Tanh", "Tanh"), "gru": ("Sigmoid", "Tanh"), "rnn": ("Tanh",)}
DIRECTIONS = ("forward", "reverse", "bidirectional")
# activation -> default (alpha, beta); None where it takes no parameter
ACTIVATIONS: dict[str, tuple[float, float] | None] = {
    "Relu": None, "Tanh": None, "Sigmoid": None, "Softsign": None, "Softplus": None,
    "Affine": (1.0, 0.0), "LeakyRelu": (0.01, 0.0), "ThresholdedRelu": (1.0, 0.0),
    "ScaledTanh": (1.0, 1.0), "HardSigmoid": (0.2, 0.5), "Elu": (1.0, 0.0)}
# the ones whose beta is a parameter too (the others consume one alpha)
_TWO_PARAMS = frozenset({"Affine", "ScaledTanh", "HardSigmoid"})
Activation = tuple[str, float, float]


def num_directions(a: Attrs) -> int:
    return 2 if a["direction"] == "bidirectional" else 1


def present(op: str, a: Attrs) -> tuple[str, ...]:
    names = tuple(s for s in a.str("present").split(",") if s)
    allowed = OPTIONAL[op]
    if any(s not in allowed for s in names) or list(names) != sorted(names, key=allowed.index) \
            or len(set(names)) != len(names):
        raise ShapeError(f"{op}: present={a['present']!r} must list, in order, some of "
                         f"{','.join(allowed)}")
    return names


def activations(op: str, a: Attrs) -> list[list[Activation]]:
    """Per direction, the (name, alpha, beta) of each activation (f, g[, h])."""
    k, d = len(DEFAULT_ACTS[op]), num_directions(a)
    names = [s for s in a.str("activations").split(",") if s] or list(DEFAULT_ACTS[op]) * d
    if len(names) == k and d == 2:
        names = names * 2
    if len(names) != k * d:
        raise ShapeError(f"{op}: needs {k * d} activations for {d} direction(s), got {len(names)}")
    alphas, betas = list(a.floats("activation_alpha")), list(a.floats("activation_beta"))
    out: list[Activation] = []
    for name in names:
        if name not in ACTIVATIONS:
            raise ShapeError(f"{op}: unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
        dflt = ACTIVATIONS[name] or (0.0, 0.0)
        alpha = alphas.pop(0) if ACTIVATIONS[name] and alphas else dflt[0]
        beta = betas.pop(0) if name in _TWO_PARAMS and betas else dflt[1]
        out.append((name, alpha, beta))
    return [out[i * k:(i + 1) * k] for i in range(d)]


def apply_activation(act: Activation, x: np.ndarray) -> np.ndarray:
    name, al, be = act
    fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "Relu": lambda v: np.maximum(v, 0), "Tanh": np.tanh,
        "Sigmoid": lambda v: 1 / (1 + np.exp(-v)), "Affine": lambda v: al * v + be,
        "LeakyRelu": lambda v: np.where(v >= 0, v, al * v),
        "ThresholdedRelu": lambda v: np.where(v > al, v, 0),
        "ScaledTanh": lambda v: al * np.tanh(be * v),
        "HardSigmoid": lambda v: np.clip(al * v + be, 0, 1),
        "Elu": lambda v: np.where(v >= 0, v, al * (np.exp(np.minimum(v, 0)) - 1)),
        "Softsign": lambda v: v / (1 + np.abs(v)), "Softplus": lambda v: np.logaddexp(v, 0)}
    with np.errstate(over="ignore"):
        return np.asarray(fns[name](x), x.dtype)


# ---- type inference ---------------------------------------------------------------------------

def _expect(op: str, what: str, t: TensorType, shape: Sequence[Dim]) -> None:
    if t.rank != len(shape) or any(isinstance(d, int) and isinstance(e, int) and d != e
                                   for d, e in zip(t.shape, shape, strict=True)):
        raise ShapeError(f"{op}: {what} must be [{','.join(map(str, shape))}], got {t}")


def _infer(op: str) -> Callable[[Sequence[TensorType], Attrs], tuple[TensorType, ...]]:
    def infer(ts: Sequence[TensorType], a: Attrs) -> tuple[TensorType, ...]:
        names = present(op, a)
        if len(ts) != 3 + len(names):
            raise ShapeError(f"{op}: present={a['present']!r} names {len(names)} optional "
                             f"input(s) but {len(ts) - 3} follow W and R")
        if a["direction"] not in DIRECTIONS:
            raise ShapeError(f"{op}: direction must be one of {', '.join(DIRECTIONS)}, "
                             f"got {a['direction']!r}")
        if a["layout"] not in (0, 1):
            raise ShapeError(f"{op}: layout must be 0 or 1, got {a['layout']}")
        activations(op, a)
        x, h, d, gh = ts[0], a.int("hidden_size"), num_directions(a), GATES[op] * a.int("hidden_size")
        if x.rank != 3 or x.dtype not in ("f16", "f32", "f64"):
            raise ShapeError(f"{op}: X must be a float [seq, batch, input] tensor, got {x}")
        seq, batch = (x.shape[1], x.shape[0]) if a["layout"] else (x.shape[0], x.shape[1])
        _expect(op, "W", ts[1], (d, gh, x.shape[2]))
        _expect(op, "R", ts[2], (d, gh, h))
        state = (batch, d, h) if a["layout"] else (d, batch, h)
        want = {"B": (d, 2 * gh), "sequence_lens": (batch,), "initial_h": state,
                "initial_c": state, "P": (d, 3 * h)}
        for name, t in zip(names, ts[3:], strict=True):
            _expect(op, name, t, want[name])
            if (t.dtype != "i32") if name == "sequence_lens" else (t.dtype != x.dtype):
                raise ShapeError(f"{op}: {name} must be {'i32' if name == 'sequence_lens' else x.dtype}, "
                                 f"got {t.dtype}")
        y = (batch, seq, d, h) if a["layout"] else (seq, d, batch, h)
        n_out = 3 if op == "lstm" else 2
        return (TensorType(x.dtype, y),) + (TensorType(x.dtype, state),) * (n_out - 1)
    return infer


# ---- numpy reference ----------------------------------------------------------------------------

def _split_inputs(op: str, xs: Sequence[np.ndarray], a: Attrs) -> dict[str, np.ndarray]:
    """Every input in layout 0, missing ones filled with their ONNX defaults, in f64."""
    got = dict(zip(("X", "W", "R", *present(op, a)), xs, strict=True))
    f = {k: np.asarray(v, np.float64) for k, v in got.items() if k != "sequence_lens"}
    if a["layout"]:
        f["X"] = f["X"].transpose(1, 0, 2)
        for k in ("initial_h", "initial_c"):
            if k in f:
                f[k] = f[k].transpose(1, 0, 2)
    (t, n, _), d, h = f["X"].shape, num_directions(a), a.int("hidden_size")
    g = GATES[op]
    f.setdefault("B", np.zeros((d, 2 * g * h)))
    f.setdefault("initial_h", np.zeros((d, n, h)))
    f.setdefault("initial_c", np.zeros((d, n, h)))
    f.setdefault("P", np.zeros((d, 3 * h)))
    f["sequence_lens"] = np.asarray(got.get("sequence_lens", np.full(n, t)), np.int64)
    return f


def _clip(x: np.ndarray, c: float) -> np.ndarray:
    return np.clip(x, -c, c) if c > 0 else x


def _step(op: str, a: Attrs, acts: list[Activation], f: dict[str, np.ndarray], d: int,
          xw: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One time step of one direction: (new h, new c); xw = x_t W^T + Wb."""
    hs, clip = a.int("hidden_size"), a.float("clip")
    r, rb = f["R"][d], f["B"][d][GATES[op] * hs:]

    def act(i: int, v: np.ndarray) -> np.ndarray:
        return apply_activation(acts[i], _clip(v, clip))
    if op == "rnn":
        return act(0, xw + h @ r.T + rb), c
    if op == "gru":
        hr = h @ r[:2 * hs].T + rb[:2 * hs]
        z, rg = act(0, xw[:, :hs] + hr[:, :hs]), act(0, xw[:, hs:2 * hs] + hr[:, hs:])
        rh, rbh = r[2 * hs:], rb[2 * hs:]
        lin = rg * (h @ rh.T + rbh) if a["linear_before_reset"] else (rg * h) @ rh.T + rbh
        return (1 - z) * act(1, xw[:, 2 * hs:] + lin) + z * h, c
    gates = xw + h @ r.T + rb
    pi, po, pf = np.split(f["P"][d], 3)
    i = act(0, gates[:, :hs] + pi * c)
    fg = 1 - i if a["input_forget"] else act(0, gates[:, 2 * hs:3 * hs] + pf * c)
    c_new = fg * c + i * act(1, gates[:, 3 * hs:])
    o = act(0, gates[:, hs:2 * hs] + po * c_new)
    return o * apply_activation(acts[2], c_new), c_new


def _eval(op: str) -> Callable[[Sequence[np.ndarray], Attrs], tuple[np.ndarray, ...]]:
    def ev(xs: Sequence[np.ndarray], a: Attrs) -> tuple[np.ndarray, ...]:
        f, acts = _split_inputs(op, xs, a), activations(op, a)
        x, lens = f["X"], f["sequence_lens"]
        t_len, n, hs = x.shape[0], x.shape[1], a.int("hidden_size")
        nd = num_directions(a)
        y = np.zeros((t_len, nd, n, hs))
        hc = [[f["initial_h"][d], f["initial_c"][d]] for d in range(nd)]
        for d in range(nd):
            rev = a["direction"] == "reverse" or d == 1
            xw = x @ f["W"][d].T + f["B"][d][:GATES[op] * hs]
            for t in (reversed(range(t_len)) if rev else range(t_len)):
                live = (t < lens)[:, None]
                h, c = _step(op, a, acts[d], f, d, xw[t], *hc[d])
                hc[d] = [np.where(live, h, hc[d][0]), np.where(live, c, hc[d][1])]
                y[t, d] = np.where(live, h, 0)
        yh, yc = np.stack([s[0] for s in hc]), np.stack([s[1] for s in hc])
        if a["layout"]:
            y, yh, yc = y.transpose(2, 0, 1, 3), yh.transpose(1, 0, 2), yc.transpose(1, 0, 2)
        dt = xs[0].dtype
        outs = (y, yh, yc) if op == "lstm" else (y, yh)
        return tuple(np.ascontiguousarray(o, dt) for o in outs)
    return ev


def _flops(n: Node) -> int:
    """2 per multiply-add of the input and recurrent projections, plus ~10 per gate
    element (bias, activation, state update)."""
    x, w = n.inputs[0].type, n.inputs[1].type
    size = [d if isinstance(d, int) else 1 for d in (*x.shape, *w.shape)]
    t, b, i, d, gh = size[0], size[1], size[2], size[3], size[4]
    hs = gh // max(GATES[n.op], 1)
    return t * b * d * gh * (2 * i + 2 * hs + 10)


def _register(op: str, extra: dict[str, tuple[str, object]]) -> None:
    n_out = 3 if op == "lstm" else 2
    register_op(op, (3, 3 + len(OPTIONAL[op])), _infer(op), _eval(op),
                attrs={"hidden_size": ("int",), "direction": ("str", "forward"),
                       "activations": ("str", ""), "activation_alpha": ("floats", ()),
                       "activation_beta": ("floats", ()), "clip": ("float", 0.0),
                       "layout": ("int", 0), "present": ("str", ""), **extra},
                kind="opaque", category="matmul", flops=_flops,
                num_outputs=lambda a, n_in, k=n_out: k,  # type: ignore[misc]
                doc=f"ONNX {op.upper()}: Y, Y_h{', Y_c' if op == 'lstm' else ''}")


_register("lstm", {"input_forget": ("bool", False)})
_register("gru", {"linear_before_reset": ("bool", False)})
_register("rnn", {})
