"""The vcompile IR: plain-data SSA graphs, one op table, text form, verifier, interpreter.

    from vcompile import ir
    g = ir.parse_graph(text)          # or a Builder, or vcompile.frontends.onnx.load(...)
    ir.verify(g)
    print(ir.print_graph(g))
    outs = ir.interp.run(g, x)
"""
from vcompile.ir import interp
from vcompile.ir.builder import Builder, BuildError
from vcompile.ir.graph import Attrs, Graph, Node, Value, op_counts, used_consts, users
from vcompile.ir.interp import InterpError
from vcompile.ir.nx import to_networkx
from vcompile.ir.ops import OPS, OpDef, register_op
from vcompile.ir.parser import ParseError, parse_graph
from vcompile.ir.printer import print_graph, print_node
from vcompile.ir.types import DTYPES, Dim, TensorType
from vcompile.ir.verify import VerifyError, verify

__all__ = ["Attrs", "BuildError", "Builder", "DTYPES", "Dim", "Graph", "InterpError", "Node", "OPS", "OpDef",
           "ParseError", "TensorType", "Value", "VerifyError", "interp", "op_counts",
           "parse_graph", "print_graph", "print_node", "register_op", "to_networkx",
           "used_consts", "users", "verify"]
