"""lstm, gru and rnn against onnxruntime and onnx's ReferenceEvaluator on one-node models.

`case(...)` builds the ONNX node, its feeds and the matching IR inputs and attrs; the
frontend and codegen tests reuse it. onnxruntime is the reference for what the ONNX
evaluator leaves out (activations, clip, sequence_lens); the evaluator for layout 1,
which onnxruntime refuses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from vcompile.ir.ops import OPS, ShapeError
from vcompile.ir.types import TensorType

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@dataclass
class Case:
    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]            # ONNX input name -> array
    ir_inputs: list[np.ndarray]             # X, W, R, then the present optional inputs
    ir_attrs: dict[str, Any] = field(default_factory=dict)


def case(op_type: str, *, t: int = 5, n: int = 3, i: int = 4, h: int = 3, direction: str = "forward",
         bias: bool = True, seq: list[int] | None = None, init: bool = False, peep: bool = False,
         layout: int = 0, opset: int = 14, seed: int = 0, **attrs: Any) -> Case:
    rng = np.random.default_rng(seed)
    d, g = (2 if direction == "bidirectional" else 1), GATES[op_type]

    def f(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.7).astype(np.float32)
    state = (n, d, h) if layout else (d, n, h)
    arrays: dict[str, np.ndarray | None] = {
        "X": f(n, t, i) if layout else f(t, n, i), "W": f(d, g * h, i), "R": f(d, g * h, h),
        "B": f(d, 2 * g * h) if bias else None,
        "sequence_lens": np.array(seq, np.int32) if seq is not None else None,
        "initial_h": f(*state) if init else None}
    if op_type == "LSTM":
        arrays["initial_c"] = f(*state) if init else None
        arrays["P"] = f(d, 3 * h) if peep else None
    names = [k if v is not None else "" for k, v in arrays.items()]
    while names[-1] == "":
        names.pop()
    onnx_attrs = {"hidden_size": h, "direction": direction, **attrs}
    if layout:
        onnx_attrs["layout"] = layout
    outs = ["Y", "Y_h", "Y_c"][:3 if op_type == "LSTM" else 2]
    node = helper.make_node(op_type, names, outs, **onnx_attrs)
    feeds = {k: v for k, v in arrays.items() if v is not None}
    ins = [helper.make_tensor_value_info(k, TensorProto.INT32 if k == "sequence_lens" else TensorProto.FLOAT,
                                         v.shape) for k, v in feeds.items()]
    y = (n, t, d, h) if layout else (t, d, n, h)
    out_shapes = [y, state, state][:len(outs)]
    graph = helper.make_graph([node], op_type.lower(), ins,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, s)
                               for o, s in zip(outs, out_shapes, strict=True)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    ir_attrs: dict[str, Any] = {"hidden_size": h, "direction": direction, "layout": layout,
                                "present": ",".join(k for k in list(feeds)[3:])}
    for k, v in attrs.items():
        ir_attrs[k] = (",".join(v) if k == "activations" else tuple(v) if isinstance(v, list)
                       else bool(v) if k in ("input_forget", "linear_before_reset") else v)
    return Case(model, feeds, list(feeds.values()), ir_attrs)


def run_ir(op_type: str, c: Case) -> tuple[np.ndarray, ...]:
    """Eval the IR op, checking the arrays against the types `infer` promised."""
    opdef = OPS[op_type.lower()]
    a = opdef.fill_defaults(c.ir_attrs)
    types = opdef.infer([TensorType.of(x) for x in c.ir_inputs], a)
    ys = opdef.eval(c.ir_inputs, a)
    assert len(ys) == len(types) == opdef.num_outputs(a, len(c.ir_inputs))
    for ty, y in zip(types, ys, strict=True):
        assert ty.matches(y), f"eval gave {y.dtype}{list(y.shape)}, infer said {ty}"
    return ys


def run_ort(c: Case) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(c.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, c.feeds)


def close(got: Any, want: Any, tol: float = 1e-5) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


# (op, kwargs): configurations that onnxruntime runs
ORT_CASES: list[tuple[str, dict[str, Any]]] = [
    *[(op, {"direction": dr}) for op in GATES for dr in ("forward", "reverse", "bidirectional")],
    *[(op, {"direction": dr, "seq": [5, 2, 3], "init": True})
      for op in GATES for dr in ("forward", "reverse", "bidirectional")],
    *[(op, {"bias": False, "n": 1, "t": 1}) for op in GATES],
    ("LSTM", {"peep": True, "init": True, "direction": "bidirectional"}),
    ("LSTM", {"peep": True, "seq": [1, 5, 4], "init": True, "direction": "reverse"}),
    ("LSTM", {"input_forget": 1, "peep": True}),
    ("LSTM", {"clip": 0.4, "peep": True}),
    ("GRU", {"clip": 0.3}),
    ("RNN", {"clip": 0.5}),
    ("GRU", {"linear_before_reset": 1, "init": True, "direction": "bidirectional"}),
    ("GRU", {"linear_before_reset": 1, "seq": [3, 5, 1], "direction": "reverse"}),
    ("LSTM", {"activations": ["HardSigmoid", "LeakyRelu", "Softsign"], "activation_alpha": [0.3, 0.2],
              "activation_beta": [0.4]}),
    ("LSTM", {"activations": ["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Elu"],
              "direction": "bidirectional", "activation_alpha": [0.5]}),
    ("GRU", {"activations": ["HardSigmoid", "Affine"], "activation_alpha": [0.3, 0.7],
             "activation_beta": [0.6, 0.1]}),
    ("GRU", {"activations": ["Sigmoid", "ScaledTanh"], "activation_alpha": [1.5], "activation_beta": [0.5]}),
    ("RNN", {"activations": ["Relu"]}),
    ("RNN", {"activations": ["Softplus"]}),
    ("RNN", {"activations": ["ThresholdedRelu"], "activation_alpha": [0.1]}),
    # onnxruntime reads a missing Affine/ScaledTanh/ThresholdedRelu parameter as 0, where
    # the ONNX operators of those names (what the spec points to) default to 1: give them
    ("RNN", {"activations": ["Affine"], "activation_alpha": [0.8], "activation_beta": [0.2]}),
]


@pytest.mark.parametrize(("op", "kw"), ORT_CASES, ids=[f"{o}-{i}" for i, (o, _) in enumerate(ORT_CASES)])
def test_matches_onnxruntime(op: str, kw: dict[str, Any]) -> None:
    c = case(op, **kw)
    close(run_ir(op, c), run_ort(c))


@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_matches_onnx_reference(op: str, direction: str, layout: int) -> None:
    c = case(op, direction=direction, layout=layout, init=True, peep=op == "LSTM",
             **({"linear_before_reset": 1} if op == "GRU" else {}))
    ref = ReferenceEvaluator(c.model).run(None, c.feeds)
    close(run_ir(op, c), ref)


def test_errors_are_one_line() -> None:
    c = case("LSTM")
    bad = [({**c.ir_attrs, "direction": "sideways"}, "direction must be one of"),
           ({**c.ir_attrs, "activations": "Sigmoid,Tanh"}, "needs 3 activations"),
           ({**c.ir_attrs, "activations": "Sigmoid,Tanh,Gelu"}, "unknown activation 'Gelu'"),
           ({**c.ir_attrs, "present": "P,B"}, "must list, in order"),
           ({**c.ir_attrs, "hidden_size": 4}, r"W must be \[1,16,4\]")]
    for attrs, msg in bad:
        a = OPS["lstm"].fill_defaults(attrs)
        with pytest.raises(ShapeError, match=msg):
            OPS["lstm"].infer([TensorType.of(x) for x in c.ir_inputs], a)


def test_text_form_round_trips_with_a_symbolic_batch() -> None:
    from vcompile import ir
    bb = ir.Builder("l")
    x, lens = bb.input((4, "N", 3), hint="x"), bb.input(("N",), dtype="i32", hint="lens")
    w = bb.const(np.zeros((2, 20, 3), np.float32), hint="w")
    r = bb.const(np.zeros((2, 20, 5), np.float32), hint="r")
    ys = bb.emit_multi("lstm", x, w, r, lens, hidden_size=5, direction="bidirectional",
                       present="sequence_lens", activations="Sigmoid,Tanh,Tanh,HardSigmoid,Tanh,Elu")
    g = ir.verify(bb.build(*ys))
    text = ir.print_graph(g)
    assert "f32[4,2,N,5], f32[2,N,5], f32[2,N,5]" in text
    assert ir.print_graph(ir.parse_graph(text, consts={"w": g.consts[w], "r": g.consts[r]})) == text
