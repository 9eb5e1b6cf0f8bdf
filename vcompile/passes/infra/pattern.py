"""Pattern rewriting: patterns are values, rules are functions that may decline.

    CONV = P.op("conv2d", P.any("x"), P.const("w"), P.const("b"), name="conv")
    BN = P.op("batch_norm", CONV.one_use(), P.const("gamma"), ..., name="bn")

    @rule(BN)
    def fold(m: Match, bb: RewriteBuilder) -> Value | None:
        ...                       # return None to decline
        return bb.emit("conv2d", m["x"], new_w, new_b, **m.node("conv").attrs)

    g = rewrite(g, [fold])

`rewrite` sweeps the graph in order, trying the rules on each node (first rule that
returns a value wins), substitutes the replacement for the node's output, and
repeats until a sweep changes nothing; then removes dead nodes. The replacement
takes over the root's `hint` and `loc`. A name bound twice in a pattern must bind
the same Value. `P.op(("add", "sub"), ...)` matches either op; `commute=True` also
tries a binary op's inputs swapped; `any_inputs=True` lets the given inputs match
a prefix of the node's (none given: any inputs).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vcompile.errors import VcompileError
from vcompile.ir.builder import infer_node
from vcompile.ir.graph import Graph, Node, Value
from vcompile.ir.types import TensorType
from vcompile.passes.infra.registry import note
from vcompile.passes.infra.rewriter import GraphEditor

MAX_SWEEPS = 64


class RewriteError(VcompileError, RuntimeError):
    """Rewriting did not reach a fixed point, or a rule returned an ill-typed value."""


Bindings = dict[str, "Value | Node"]


@dataclass(frozen=True)
class Pattern:
    name: str = ""

    def match(self, v: Value, ed: GraphEditor, b: Bindings) -> Bindings | None:
        raise NotImplementedError

    def _bind(self, key: str, obj: Value | Node, b: Bindings) -> Bindings | None:
        if not key:
            return b
        if key in b:
            return b if b[key] is obj else None
        return {**b, key: obj}


@dataclass(frozen=True)
class AnyPat(Pattern):
    def match(self, v: Value, ed: GraphEditor, b: Bindings) -> Bindings | None:
        return self._bind(self.name, v, b)


@dataclass(frozen=True)
class ConstPat(Pattern):
    def match(self, v: Value, ed: GraphEditor, b: Bindings) -> Bindings | None:
        return self._bind(self.name, v, b) if v in ed.consts else None


@dataclass(frozen=True)
class OpPat(Pattern):
    ops: tuple[str, ...] = ()
    inputs: tuple[Pattern, ...] | None = None
    single_use: bool = False
    commute: bool = False
    pred: Callable[[Node], bool] | None = None
    prefix: bool = False  # the inputs given match the node's first inputs only

    def one_use(self) -> OpPat:
        """Match only if the value has exactly one user (graph outputs count)."""
        return replace(self, single_use=True)

    def where(self, pred: Callable[[Node], bool]) -> OpPat:
        """Match only nodes for which `pred(node)` holds."""
        return replace(self, pred=pred)

    def match(self, v: Value, ed: GraphEditor, b: Bindings) -> Bindings | None:
        n = ed.producer.get(v)
        if n is None or (self.single_use and ed.uses[v] != 1):
            return None
        return self.match_node(n, ed, b, v)

    def match_node(self, n: Node, ed: GraphEditor, b: Bindings, v: Value | None = None) -> Bindings | None:
        if n.op not in self.ops or (self.pred is not None and not self.pred(n)):
            return None
        if self.inputs is not None and (len(self.inputs) > len(n.inputs) if self.prefix
                                        else len(self.inputs) != len(n.inputs)):
            return None
        orders = [n.inputs]
        if self.commute and len(n.inputs) == 2:
            orders.append(n.inputs[::-1])
        for ins in orders:
            got = self._bind(self.name, n, b)
            if got is not None and self.name:
                got = {**got, "@" + self.name: v if v is not None else n.outputs[0]}
            for p, x in zip(self.inputs or (), ins, strict=False):
                if got is None:
                    break
                got = p.match(x, ed, got)
            if got is not None:
                return got
        return None


class P:
    """Pattern constructors."""

    @staticmethod
    def any(name: str = "") -> Pattern:
        return AnyPat(name)

    @staticmethod
    def const(name: str = "") -> Pattern:
        return ConstPat(name)

    @staticmethod
    def op(op: str | Sequence[str], *inputs: Pattern, name: str = "", commute: bool = False,
           any_inputs: bool = False) -> OpPat:
        ops = (op,) if isinstance(op, str) else tuple(op)
        return OpPat(name, ops, tuple(inputs), commute=commute, prefix=any_inputs)


@dataclass
class Match:
    """What a pattern bound: `m["x"]` a value, `m.node("conv")` a node, `m.array("w")`
    a constant's array; `m.root` is the node the rule was tried on."""
    root: Node
    bindings: Bindings
    ed: GraphEditor

    def __getitem__(self, name: str) -> Value:
        obj = self.bindings[name]
        return obj if isinstance(obj, Value) else self.bindings["@" + name]  # type: ignore[return-value]

    def node(self, name: str) -> Node:
        obj = self.bindings[name]
        if not isinstance(obj, Node):
            raise KeyError(f"{name!r} is bound to a value, not a node")
        return obj

    def array(self, name: str) -> np.ndarray:
        return self.ed.consts[self[name]]

    def arrays(self, *names: str) -> list[np.ndarray]:
        return [self.array(n) for n in names]

    def uses(self, name: str) -> int:
        return self.ed.uses[self[name]]

    def const_of(self, v: Value) -> np.ndarray | None:
        return self.ed.consts.get(v)


@dataclass
class RewriteBuilder:
    """Emits the replacement's nodes and constants; they inherit the root's loc."""
    root: Node
    ed: GraphEditor
    nodes: list[Node] = field(default_factory=list)
    consts: dict[Value, np.ndarray] = field(default_factory=dict)

    def const(self, array: Any, hint: str = "c", dtype: str | None = None) -> Value:
        arr = np.asarray(array) if dtype is None else np.asarray(array, TensorType(dtype, ()).np_dtype)
        arr = arr.copy(order="C")  # NOTE: not ascontiguousarray, which makes 0-d arrays 1-d
        v = Value(TensorType.of(arr), hint)
        self.consts[v] = arr
        return v

    def emit(self, op: str, *inputs: Value, hint: str = "", loc: str | None = None, **attrs: Any) -> Value:
        full, types = infer_node(op, inputs, attrs)
        if len(types) != 1:
            raise RewriteError(f"{op} has {len(types)} outputs; rules emit one-output ops")
        out = Value(types[0], hint)
        self.nodes.append(Node(op, tuple(inputs), (out,), full, self.root.loc if loc is None else loc))
        return out


@dataclass(frozen=True)
class Rule:
    pattern: OpPat
    fn: Callable[[Match, RewriteBuilder], Value | None]

    @property
    def name(self) -> str:
        return self.fn.__name__

    def __call__(self, m: Match, bb: RewriteBuilder) -> Value | None:
        return self.fn(m, bb)


def rule(pattern: OpPat) -> Callable[[Callable[[Match, RewriteBuilder], Value | None]], Rule]:
    """Make `f(m, bb) -> Value | None` a rewrite rule rooted at `pattern`."""
    if not isinstance(pattern, OpPat):
        raise TypeError("a rule's pattern must be rooted at an op: use P.op(...)")

    def deco(fn: Callable[[Match, RewriteBuilder], Value | None]) -> Rule:
        return Rule(pattern, fn)
    return deco


def _commit(ed: GraphEditor, root: Node, bb: RewriteBuilder, new: Value, r: Rule) -> None:
    old = root.outputs[0]
    if new.type != old.type:
        raise RewriteError(f"rule {r.name} replaced a {old.type} value with a {new.type} one")
    if bb.nodes and bb.nodes[-1].outputs[0] is new and not new.hint and old.hint:
        last = bb.nodes[-1]  # NOTE: the replacement takes over the root's name
        new = Value(new.type, old.hint)
        bb.nodes[-1] = Node(last.op, last.inputs, (new,), last.attrs, last.loc, last.region)
    for v, a in bb.consts.items():
        ed.add_const(v, a)
    for n in bb.nodes:
        ed.add(n)
    ed.drop(root)
    ed.replace(old, new)


def _sweep(g: Graph, by_op: dict[str, list[Rule]]) -> tuple[Graph, str]:
    ed = GraphEditor(g)
    last = ""
    for node in g.nodes:
        n = ed.substituted(node)
        fired = False
        if len(n.outputs) == 1:
            for r in by_op.get(n.op, ()):
                b = r.pattern.match_node(n, ed, {}, n.outputs[0])
                if b is None:
                    continue
                bb = RewriteBuilder(n, ed)
                new = r(Match(n, b, ed), bb)
                if new is not None:
                    _commit(ed, n, bb, new, r)
                    note(r.name)
                    fired, last = True, r.name
                    break
        if not fired:
            ed.keep(n)
    return ed.build(), last


def rewrite(g: Graph, rules: Sequence[Rule], *, max_sweeps: int = MAX_SWEEPS) -> Graph:
    """Apply `rules` greedily until none fires; `g` itself when none ever did."""
    by_op: dict[str, list[Rule]] = {}
    for r in rules:
        for op in r.pattern.ops:
            by_op.setdefault(op, []).append(r)
    last = ""
    for _ in range(max_sweeps):
        out, fired = _sweep(g, by_op)
        if out is g:
            return g
        g, last = out, fired or last
    raise RewriteError(f"rewriting did not converge after {max_sweeps} sweeps; the last rule "
                       f"that fired was {last!r} (does it undo another rule, or itself?)")
