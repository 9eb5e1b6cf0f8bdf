"""ONNX ops that the converter table lacks but ONNX defines by a function body.

    node `Op(x...) {attrs}` with no converter, a function of the model (`functions`, as
    exporters write for custom modules) or the schema of Op has a function body
      => the body's nodes, renamed apart: formal inputs/outputs bound to the node's
         actuals, `ref_attr_name` attributes bound to the node's attributes (schema
         defaults filled first), body-internal values given fresh unique names

A body may use other function ops; they expand too, with the body's own opset (a body
written against opset 18 stays opset 18 inside a model that imports 22). A node expands
only when its whole expansion is convertible: otherwise it stays, so the unsupported-op
error names the op the user wrote. Context-dependent bodies (Attention, the losses,
RMSNormalization...) are built from the node's input types, so types of body-internal
values come from running shape inference on the body alone, at the body's opset.

Which body: the newest whose opset is <= the importing opset; if every body is newer
(Elu's only body is written against opset 18), the oldest. Body nodes whose opset differs
from the model's carry it as node metadata `vcompile.onnx_opset` (`node_opset`), for
converters whose semantics changed between opsets.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import onnx
from onnx import defs

OPSET_KEY = "vcompile.onnx_opset"
_MAX_DEPTH = 8  # function bodies nest 2-3 deep in practice (SoftmaxCrossEntropyLoss -> NLL)

Opsets = dict[str, int]
Types = dict[str, onnx.TypeProto]
Local = dict[tuple[str, str], onnx.FunctionProto]  # the model's own functions by (domain, name)


def expand(model: onnx.ModelProto, has_converter: Callable[[onnx.NodeProto], bool]
           ) -> onnx.ModelProto:
    opsets = _opsets(model.opset_import)
    local = {(_domain(f.domain), f.name): f for f in model.functions}
    if all(has_converter(n) or not _has_body(n, opsets, local) for n in model.graph.node):
        return model
    ctx = _Expansion(has_converter, _types(model), _Namer(_names(model.graph)),
                     opsets.get("", 0), local)
    nodes: list[onnx.NodeProto] = []
    changed = False
    for n in model.graph.node:
        body = None if has_converter(n) else ctx.expand(n, opsets, 0)
        nodes.extend([n] if body is None else body)
        changed = changed or body is not None
    if not changed:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def node_opset(n: onnx.NodeProto, default: int) -> int:
    """The default-domain opset a node was written against (a body's, once expanded)."""
    for p in n.metadata_props:
        if p.key == OPSET_KEY:
            return int(p.value)
    return default


# ---- one node -----------------------------------------------------------------------------

class _Expansion:
    def __init__(self, has_converter: Callable[[onnx.NodeProto], bool], types: Types,
                 namer: _Namer, model_opset: int, local: Local) -> None:
        self.has_converter = has_converter
        self.types = types
        self.namer = namer
        self.model_opset = model_opset
        self.local = local

    def expand(self, n: onnx.NodeProto, opsets: Opsets, depth: int
               ) -> list[onnx.NodeProto] | None:
        """The fully expanded body of `n`, or None when some part of it cannot convert."""
        if depth > _MAX_DEPTH:
            return None
        found = _function(n, opsets, self.types, self.local)
        body = None if found is None else _bind(found[1], found[0], self.namer)
        if found is None or body is None:
            return None
        fn = found[0]
        inner = {**opsets, **_opsets(fn.opset_import)}
        _infer_types(body, n, inner, self.types)
        out: list[onnx.NodeProto] = []
        for b in body:
            if inner.get("", self.model_opset) != self.model_opset:
                b.metadata_props.add(key=OPSET_KEY, value=str(inner[""]))
            if self.has_converter(b):
                out.append(b)
                continue
            sub = self.expand(b, inner, depth + 1)
            if sub is None:
                return None
            out.extend(sub)
        return out


# ---- finding the body ---------------------------------------------------------------------

def _opsets(imports: Iterable[onnx.OperatorSetIdProto]) -> Opsets:
    return {("" if o.domain == "ai.onnx" else o.domain): int(o.version) for o in imports}


def _schema(n: onnx.NodeProto, opsets: Opsets) -> defs.OpSchema | None:
    domain = _domain(n.domain)
    if domain not in opsets:
        return None
    try:
        return defs.get_schema(n.op_type, opsets[domain], domain)
    except defs.SchemaError:
        return None


def _domain(d: str) -> str:
    return "" if d == "ai.onnx" else d


def _has_body(n: onnx.NodeProto, opsets: Opsets, local: Local) -> bool:
    if (_domain(n.domain), n.op_type) in local:
        return True
    s = _schema(n, opsets)
    return s is not None and bool(s.function_opset_versions
                                  or s.context_dependent_function_opset_versions)


def _pick(versions: Iterable[int], opset: int) -> int | None:
    vs = sorted(versions)
    if not vs:
        return None
    older = [v for v in vs if v <= opset]
    return older[-1] if older else vs[0]


def _function(n: onnx.NodeProto, opsets: Opsets, types: Types, local: Local
              ) -> tuple[onnx.FunctionProto, onnx.NodeProto] | None:
    """The body for `n` (the model's own function of that name first) and `n` with its
    schema's attribute defaults filled in (a model function's are in `attribute_proto`)."""
    own = local.get((_domain(n.domain), n.op_type))
    if own is not None:
        return own, n
    s = _schema(n, opsets)
    if s is None:
        return None
    opset = opsets[_domain(n.domain)]
    filled = _with_defaults(n, s)
    fn = onnx.FunctionProto()
    v = _pick(s.function_opset_versions, opset)
    try:
        if v is not None:
            fn.ParseFromString(s.get_function_with_opset_version(v))
        elif (v := _pick(s.context_dependent_function_opset_versions, opset)) is not None:
            if any(x and x not in types for x in n.input):
                return None  # the body depends on input types that inference did not give
            tps = [(types[x] if x else onnx.TypeProto()).SerializeToString() for x in n.input]
            fn.ParseFromString(s.get_context_dependent_function_with_opset_version(
                v, filled.SerializeToString(), tps))
    except Exception:  # noqa: BLE001  (onnx refuses bodies for some attr/type combinations)
        return None
    return (fn, filled) if fn.node else None


def _with_defaults(n: onnx.NodeProto, s: defs.OpSchema) -> onnx.NodeProto:
    """The node with the schema's default attribute values filled in."""
    out = onnx.NodeProto()
    out.CopyFrom(n)
    have = {a.name for a in n.attribute}
    for name, spec in s.attributes.items():
        d = spec.default_value
        if name not in have and d.type != onnx.AttributeProto.UNDEFINED:
            a = out.attribute.add()
            a.CopyFrom(d)
            a.name = name
    return out


# ---- binding ------------------------------------------------------------------------------

class _Namer:
    """Fresh names, unique among every value and node name of the model."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name


def _names(g: onnx.GraphProto) -> set[str]:
    names = {x for n in g.node for x in (*n.input, *n.output, n.name)}
    names |= {t.name for t in g.initializer} | {v.name for v in (*g.input, *g.output)}
    return names


def _bind(n: onnx.NodeProto, fn: onnx.FunctionProto, namer: _Namer
          ) -> list[onnx.NodeProto] | None:
    """The body's nodes for node `n` (attribute defaults filled), renamed apart."""
    where = n.name or (n.output[0] if n.output else n.op_type)
    env = {f: (n.input[i] if i < len(n.input) else "") for i, f in enumerate(fn.input)}
    for i, f in enumerate(fn.output):
        actual = n.output[i] if i < len(n.output) else ""
        env[f] = actual or namer.fresh(f"{where}/{f}")
    attrs = {a.name: a for a in fn.attribute_proto} | {a.name: a for a in n.attribute}

    def name(x: str) -> str:
        if x and x not in env:
            env[x] = namer.fresh(f"{where}/{x}")
        return env.get(x, "")

    out = []
    for b in fn.node:
        m = onnx.NodeProto(op_type=b.op_type, domain=b.domain, doc_string=b.doc_string)
        m.name = namer.fresh(f"{where}/{b.name or b.op_type}")
        m.input.extend(name(x) for x in b.input)
        m.output.extend(name(x) for x in b.output)
        for a in b.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                return None  # a subgraph would need renaming inside; no body we need has one
            if not a.ref_attr_name:
                m.attribute.add().CopyFrom(a)
            elif a.ref_attr_name in attrs:
                ref = m.attribute.add()
                ref.CopyFrom(attrs[a.ref_attr_name])
                ref.name = a.name
        out.append(m)
    return out


# ---- types --------------------------------------------------------------------------------

def _types(model: onnx.ModelProto) -> Types:
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001  (the frontend inferred once already; keep what it has)
        pass
    g = model.graph
    types = {v.name: v.type for v in (*g.input, *g.value_info, *g.output) if v.type.ByteSize()}
    for t in g.initializer:
        types.setdefault(t.name, onnx.helper.make_tensor_type_proto(t.data_type, t.dims))
    return types


def _infer_types(body: list[onnx.NodeProto], n: onnx.NodeProto, opsets: Opsets,
                 types: Types) -> None:
    """Types of the body's values, from shape inference on the body alone at its opset."""
    ins = [onnx.helper.make_value_info(x, types[x]) for x in dict.fromkeys(n.input)
           if x and x in types]
    outs = [onnx.helper.make_value_info(x, onnx.TypeProto()) for x in n.output if x]
    g = onnx.helper.make_graph(body, "body", ins, outs)
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid(d, v)
                                                 for d, v in opsets.items()])
    try:
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:  # noqa: BLE001  (a nested context-dependent body then stays unexpanded)
        return
    for v in (*m.graph.value_info, *m.graph.output):
        if v.type.ByteSize() and v.name not in types:
            types[v.name] = v.type
