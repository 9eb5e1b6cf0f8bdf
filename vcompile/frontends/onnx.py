"""The ONNX frontend: `load(path_or_model, input_shapes=None) -> Graph`.

    model.onnx => checker, opset check, input shapes fixed, shape inference,
                  graphsurgeon fold_constants/cleanup/toposort => canonical IR

Canonical output: NCHW, every conv has a bias, default attrs filled, shape
tensors folded into attrs, ONNX spellings gone. Graph inputs keep their ONNX names
as hints (sanitized), symbolic dims stay symbols unless `input_shapes` fixes them,
and every node's `loc` is the ONNX node name (its first output name when unnamed).
Every failure is a `FrontendError` with a one-line message; no traceback from inside
onnx or graphsurgeon reaches the user.
"""
from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from vcompile.frontends import FrontendError, UnsupportedOp, onnx_functions
from vcompile.frontends.onnx_ctx import ConversionError, Ctx, V, sanitize, short_hint
from vcompile.frontends.onnx_ops import CONVERTERS, Node
from vcompile.ir.graph import Graph, Value
from vcompile.ir.types import DTYPES, Dim, TensorType, dtype_of

__all__ = ["ConversionError", "FrontendError", "InputShapeError", "InvalidModel", "ModelNotFound",
           "NotOnnx", "OPSET_RANGE", "UnsupportedOp", "UnsupportedOpset", "UnsupportedType",
           "load", "supported_ops"]

OPSET_RANGE = (7, 28)  # default-domain opsets whose semantics the converters follow


class ModelNotFound(FrontendError):
    """The model path does not exist."""


class NotOnnx(FrontendError):
    """The file is not an ONNX model (protobuf parsing failed)."""


class InvalidModel(FrontendError):
    """The ONNX checker or shape inference rejects the model."""


class UnsupportedOpset(FrontendError):
    """The model's default-domain opset is outside OPSET_RANGE."""


class InputShapeError(FrontendError):
    """An input shape that is missing, names no input, or contradicts the model."""


class UnsupportedType(FrontendError):
    """A value whose ONNX type has no IR dtype (sequences, strings, float8, ...)."""


def supported_ops() -> list[str]:
    return sorted([*CONVERTERS, "If"])


def load(path_or_model: str | os.PathLike[str] | onnx.ModelProto,
         input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Import an ONNX model (a path or a ModelProto) as a canonical vcompile Graph."""
    model = _read(path_or_model)
    _check_strings(model)
    opset = _check_opset(model)
    model = _fix_input_shapes(model, dict(input_shapes or {}))  # before the checker, which
    _check(model)                                               # insists on input shapes
    model = _infer_shapes(model)
    model = _cleanup(model)
    model = onnx_functions.expand(model, lambda n: _key(n) in CONVERTERS)
    _check_supported(model.graph)
    return _convert(model.graph, opset)


# ---- reading and checking -----------------------------------------------------------------

def _read(src: Any) -> onnx.ModelProto:
    if isinstance(src, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(src)
        return model
    path = Path(src)
    if path.is_dir():
        raise NotOnnx(f"{str(path)!r} is a directory; give an .onnx file")
    if not path.is_file():
        raise ModelNotFound(f"ONNX model not found: {str(path)!r}")
    if path.stat().st_size == 0:
        raise NotOnnx(f"{str(path)!r} is empty (0 bytes), not an ONNX model; give a model "
                      "written by onnx.save or torch.onnx.export")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001  (protobuf raises several kinds)
        raise NotOnnx(f"{str(path)!r} is not an ONNX model: {type(e).__name__}: "
                      f"{_one_line(e)}") from None
    if not model.HasField("graph") and not model.opset_import:
        raise NotOnnx(f"{str(path)!r} is not an ONNX model: it parses, but holds no graph and "
                      "no opset; give a model written by onnx.save or torch.onnx.export")
    return model


def _one_line(e: BaseException) -> str:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    return lines[0][:300] if lines else type(e).__name__


def _check_strings(model: onnx.ModelProto) -> None:
    """Refuse a name or other string field that is not valid UTF-8 (protobuf hands such a
    field back as bytes, which nothing downstream expects)."""
    from google.protobuf.descriptor import FieldDescriptor

    def walk(msg: Any, where: str) -> None:
        for f in msg.DESCRIPTOR.fields:
            repeated = (f.is_repeated if hasattr(f, "is_repeated")  # protobuf >= 6
                        else f.label == FieldDescriptor.LABEL_REPEATED)
            if f.type == FieldDescriptor.TYPE_STRING:
                vals = list(getattr(msg, f.name)) if repeated else [getattr(msg, f.name)]
                for i, v in enumerate(vals):
                    if isinstance(v, bytes):
                        at = f"{where}.{f.name}" + (f"[{i}]" if repeated else "")
                        raise InvalidModel(f"{at} is not valid UTF-8 ({v[:40]!r}); "
                                           "ONNX names are UTF-8 strings: fix the name (set it "
                                           "with the onnx package and onnx.save the model)")
            elif f.type == FieldDescriptor.TYPE_MESSAGE:
                if repeated:
                    for i, m in enumerate(getattr(msg, f.name)):
                        walk(m, f"{where}.{f.name}[{i}]")
                elif msg.HasField(f.name):
                    walk(getattr(msg, f.name), f"{where}.{f.name}")

    walk(model, "model")


def _check_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain opset. A model importing none can hold only ops of other
    domains (the checker refuses the rest); it converts with the newest opset's rules."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    lo, hi = OPSET_RANGE
    if not versions:
        return hi
    v = max(versions)
    if not lo <= v <= hi:
        raise UnsupportedOpset(f"the model uses opset {v} of the default domain (ai.onnx); "
                               f"supported opsets: {lo} to {hi} (convert it with "
                               f"onnx.version_converter.convert_version(model, "
                               f"{min(max(v, lo), hi)}))")
    return v


def _check(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001
        raise InvalidModel(f"the ONNX checker rejects the model: {_one_line(e)}") from None


def _graph_inputs(g: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in g.initializer}
    return [vi for vi in g.input if vi.name not in inits]


def _fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, Sequence[int]]) -> onnx.ModelProto:
    inputs = {vi.name: vi for vi in _graph_inputs(model.graph)}
    for name in shapes:
        if name not in inputs:
            raise InputShapeError(f"input_shapes names {name!r}, which is not an input of the "
                                  f"model; its inputs are: {', '.join(inputs) or 'none'}")
    empty_ok = _declares_empty(model.graph)
    for name, vi in inputs.items():
        t = vi.type
        if t.WhichOneof("value") != "tensor_type":
            continue  # reported by _input_type
        given = shapes.get(name)
        if not t.tensor_type.HasField("shape"):
            if given is None:
                raise InputShapeError(f"input {name!r} has no shape (not even a rank) in the "
                                      f"model; pass input_shapes={{{name!r}: (...)}}")
            t.tensor_type.shape.SetInParent()
            for d in given:
                t.tensor_type.shape.dim.add().dim_value = int(d)
            continue
        dims = t.tensor_type.shape.dim
        if given is not None:
            _check_given(name, dims, given, empty_ok)
        for i, d in enumerate(dims):
            g = given[i] if given is not None else None
            if isinstance(g, str):
                d.dim_param = g  # a symbolic dim (clears the dim_value)
            elif g is not None:
                d.dim_value = int(g)
            elif not _fixed(d, empty_ok) and not _named(d):
                d.dim_param = f"{sanitize(name)}_{i}"  # -1, 0, '?' or unset: unknown
    return model


def _fixed(d: Any, empty_ok: bool) -> bool:
    """Whether the model fixes this input dim to a size. Exporters write an unknown dim as
    -1 (Paddle), or 0 (old exporters); 0 is a size only when the model declares an empty
    tensor elsewhere (`_declares_empty`)."""
    return d.HasField("dim_value") and (d.dim_value > 0 or (d.dim_value == 0 and empty_ok))


def _named(d: Any) -> bool:
    """A dim_param that names a dim ('batch', 'unk__12', 'DynamicDimension.0'); '?' and
    other names without a letter or digit say only 'unknown'."""
    return d.HasField("dim_param") and bool(sanitize(d.dim_param, "").strip("_"))


def _declares_empty(g: onnx.GraphProto) -> bool:
    """Whether an output, a value_info or an initializer of the model has a dim of 0."""
    vis = list(g.output) + list(g.value_info)
    return (any(0 in t.dims for t in g.initializer) or
            any(d.HasField("dim_value") and d.dim_value == 0
                for vi in vis if vi.type.WhichOneof("value") == "tensor_type"
                for d in vi.type.tensor_type.shape.dim))


def _check_given(name: str, dims: Any, given: Sequence[Any], empty_ok: bool) -> None:
    if len(given) != len(dims):
        raise InputShapeError(f"input_shapes gives {name!r} rank {len(given)} "
                              f"{tuple(given)}, but the model says rank {len(dims)} "
                              f"{_dims_text(dims)}")
    for i, (d, g) in enumerate(zip(dims, given, strict=True)):
        fixed = _fixed(d, empty_ok)
        if isinstance(g, str):
            if fixed:
                raise InputShapeError(f"input_shapes gives {name!r} shape {tuple(given)}, "
                                      f"but the model fixes dim {i} to {d.dim_value} "
                                      f"{_dims_text(dims)}; give a size, not a name")
            continue
        if int(g) < 0:
            raise InputShapeError(f"input_shapes gives {name!r} shape {tuple(given)}: dim "
                                  f"{i} is {int(g)}; sizes are >= 0")
        if fixed and d.dim_value != int(g):
            raise InputShapeError(f"input_shapes gives {name!r} shape {tuple(given)}, but "
                                  f"the model fixes dim {i} to {d.dim_value} "
                                  f"{_dims_text(dims)}")


def _dims_text(dims: Any) -> str:
    return "(" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else
                           (d.dim_param or "?") for d in dims) + ")"


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as e:  # noqa: BLE001
        raise InvalidModel(f"ONNX shape inference rejects the model: {_one_line(e)}") from None


def _cleanup(model: onnx.ModelProto) -> onnx.ModelProto:
    """graphsurgeon's constant folding and cleanup; on any failure, the model as it was."""
    try:
        import onnx_graphsurgeon as gs
        old = gs.G_LOGGER.severity
        gs.G_LOGGER.severity = gs.G_LOGGER.CRITICAL
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                graph = gs.import_onnx(model)
                graph.fold_constants().cleanup().toposort()
                out = gs.export_onnx(graph, do_type_check=False)
        finally:
            gs.G_LOGGER.severity = old
        out.ir_version = model.ir_version
        return out
    except Exception:  # noqa: BLE001  (folding is an optimization; our converter folds too)
        return model


def _check_supported(g: onnx.GraphProto) -> None:
    bad: dict[str, list[str]] = {}

    def walk(g: onnx.GraphProto) -> None:
        for i, n in enumerate(g.node):
            if _key(n) == "If":  # converted by `_if`, branches included
                for a in n.attribute:
                    if a.HasField("g"):
                        walk(a.g)
            elif _key(n) not in CONVERTERS:
                bad.setdefault(_key(n), []).append(n.name or (n.output[0] if n.output
                                                              else f"#{i}"))
    walk(g)
    if bad:
        raise UnsupportedOp(bad, supported_ops())


def _key(n: onnx.NodeProto) -> str:
    """The converter table's key: the op type, prefixed by its domain outside ai.onnx."""
    return n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"


# ---- conversion ---------------------------------------------------------------------------

def _ir_dtype(elem_type: int, what: str) -> str:
    if elem_type not in onnx.TensorProto.DataType.values():
        raise UnsupportedType(f"{what} has data_type {elem_type}, which is no ONNX tensor type; "
                              f"fix the model (vcompile supports: {', '.join(DTYPES)})")
    name = onnx.TensorProto.DataType.Name(elem_type)
    try:
        dt = dtype_of(helper.tensor_dtype_to_np_dtype(elem_type))
    except (TypeError, KeyError, ValueError):
        dt = ""
    if dt not in DTYPES:
        raise UnsupportedType(f"{what} has ONNX type {name}, which vcompile cannot represent; "
                              f"supported: {', '.join(DTYPES)}")
    return dt


def _input_type(vi: onnx.ValueInfoProto) -> TensorType:
    t = vi.type
    if t.WhichOneof("value") != "tensor_type":
        raise UnsupportedType(f"input {vi.name!r} is a {t.WhichOneof('value')}; only tensors "
                              "are supported")
    dims: list[Dim] = []
    for i, d in enumerate(t.tensor_type.shape.dim):
        if d.HasField("dim_value") and d.dim_value >= 0:  # _fix_input_shapes named the rest
            dims.append(int(d.dim_value))
        else:
            dims.append(sanitize(d.dim_param) if _named(d) else f"{sanitize(vi.name)}_{i}")
    return TensorType(_ir_dtype(t.tensor_type.elem_type, f"input {vi.name!r}"), tuple(dims))


def _to_array(t: onnx.TensorProto) -> np.ndarray:
    _ir_dtype(t.data_type, f"tensor {t.name!r}")
    try:
        return np.array(numpy_helper.to_array(t))
    except Exception as e:  # noqa: BLE001
        raise InvalidModel(f"cannot read tensor {t.name!r}: {_one_line(e)}") from None


def _attrs(n: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in n.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = _to_array(v)
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode() for x in v]
        out[a.name] = v
    return out


def _convert(g: onnx.GraphProto, opset: int) -> Graph:
    ctx = Ctx(sanitize(g.name, "main"), opset)
    env: dict[str, V] = {}
    for t in g.initializer:
        env[t.name] = _to_array(t)
        if not t.name.startswith("onnx::"):  # exporter-made names say nothing: keep "c"
            ctx.const_hints[id(env[t.name])] = sanitize(t.name, "c")
    for vi in _graph_inputs(g):
        env[vi.name] = ctx.bb.input(_input_type(vi), hint=sanitize(vi.name, "x"))
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    _convert_nodes(ctx, g.node, env, used)
    return _outputs(ctx, g, env)


def _convert_nodes(ctx: Ctx, nodes: Any, env: dict[str, V], used: set[str]) -> None:
    """Convert `nodes` in order, binding their outputs in `env`."""
    for i, n in enumerate(nodes):
        ctx.loc = n.name or (n.output[0] if n.output else f"{n.op_type}_{i}")
        ctx.op_type = n.op_type
        ctx.hint = short_hint(n.output[0], n.op_type) if n.output else ""
        try:
            if _key(n) == "If":
                outs: Sequence[V | None] = _if(ctx, n, env, used)
            else:
                node = Node(n, [env[x] if x else None for x in n.input], _attrs(n),
                            tuple(bool(o) and o in used for o in n.output))
                outs = CONVERTERS[_key(n)](ctx, node)
        except (KeyError, IndexError, TypeError, ValueError) as e:  # malformed attrs/inputs
            raise ctx.error(f"cannot convert: {type(e).__name__}: {_one_line(e)}") from e
        for name, v in zip(n.output, outs, strict=False):  # converters may add None tails
            if name and v is not None:
                env[name] = v


def _if(ctx: Ctx, n: onnx.NodeProto, env: dict[str, V], used: set[str]) -> list[V]:
    """If: a condition known at import inlines the branch it takes (exporters test shapes:
    `if x.shape[0] == 1`); a condition computed at run time converts both branches and
    selects their outputs with `where` (if-conversion: both run, so their outputs must
    have equal types)."""
    branches = {a.name: a.g for a in n.attribute if a.name in ("then_branch", "else_branch")}
    where = (ctx.loc, ctx.op_type, ctx.hint)

    def convert(g: onnx.GraphProto) -> list[V]:
        inner = dict(env)  # a branch sees the enclosing scope
        for t in g.initializer:
            inner[t.name] = _to_array(t)
        _convert_nodes(ctx, g.node, inner, used | {i for m in g.node for i in m.input}
                       | {o.name for o in g.output})
        ctx.loc, ctx.op_type, ctx.hint = where
        return [inner[o.name] for o in g.output]

    cond = env[n.input[0]]
    known = ctx.known(cond)
    if known is not None:
        taken = bool(np.asarray(known).reshape(-1)[0])
        return convert(branches["then_branch" if taken else "else_branch"])
    then, other = convert(branches["then_branch"]), convert(branches["else_branch"])
    c = ctx.emit("reshape", cond, shape=())
    outs = []
    for k, (a, b) in enumerate(zip(then, other, strict=True)):
        if ctx.type_of(a) != ctx.type_of(b):
            raise ctx.error(f"the condition is computed at run time and output {k} differs "
                            f"between the branches ({ctx.type_of(a)} and {ctx.type_of(b)}); "
                            "vcompile compiles such an If only when both branches give the "
                            "same types")
        outs.append(ctx.emit("where", c, a, b))
    return outs


def _outputs(ctx: Ctx, g: onnx.GraphProto, env: dict[str, V]) -> Graph:
    """Graph outputs; an input, a constant or a repeated value gets an identity node so
    that every output is a distinct value defined by a node."""
    outs: list[Value] = []
    ins = set(ctx.bb.inputs)
    for o in g.output:
        if o.name not in env:
            raise InvalidModel(f"graph output {o.name!r} is not computed by any node")
        x = env[o.name]
        ctx.loc, ctx.op_type, ctx.hint = o.name, "Identity", sanitize(o.name, "y")
        v = ctx.value(x, hint=sanitize(o.name, "y"))
        if v in ins or v in ctx.bb.consts or v in outs:
            v = ctx.bb.emit("identity", v, hint=sanitize(o.name, "y"), loc=o.name)
        outs.append(v)
    return ctx.bb.build(*outs)
