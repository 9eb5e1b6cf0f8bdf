"""Wide graphs compile in linear time (issue 25, item 5): no kernel takes more than
`build.MAX_KERNEL_ARGS` arguments (LLVM's time on a kernel's entry grows with the square
of its arguments), a wide Concat's TIR grows linearly with its inputs, and a model that is
compiled and then exported generates its library once."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tvm")

import tvm  # noqa: E402
from tvm import relax, tirx  # noqa: E402

import vcompile  # noqa: E402
from vcompile.api import plan, run_passes  # noqa: E402
from vcompile.codegen import build as B  # noqa: E402
from vcompile.codegen.emit.relax import to_relax  # noqa: E402
from vcompile.ir import interp  # noqa: E402
from vcompile.ir.builder import Builder  # noqa: E402
from vcompile.ir.graph import io_names  # noqa: E402


def wide(n: int, width: int = 16):
    """x -> n branches of (mul by a constant, relu) -> one Concat on axis 1."""
    b = Builder(f"wide{n}")
    x = b.input([1, width], "f32")
    rng = np.random.default_rng(n)
    outs = [b.emit("relu", b.emit("mul", x, b.const(rng.standard_normal((1, width)).astype(np.float32))))
            for _ in range(n)]
    return b.build(b.emit("concat", *outs, axis=1))


def _prim_funcs(g, opt_level: int) -> list:
    """The PrimFuncs the graph's kernels legalize to, after the -O passes."""
    g, _ = run_passes(g, plan(vcompile.CompileOptions(target="host", opt_level=opt_level)))
    fused = any(n.region is not None for n in g.nodes)
    mod = to_relax(B.bound_kernel_args(g), io_names(g)[0], one_kernel_per_node=fused)
    mod = relax.transform.LegalizeOps()(mod)
    return [f for f in mod.functions.values() if isinstance(f, tirx.PrimFunc)]


@pytest.mark.parametrize("opt_level", [0, 2])
def test_wide_concat_tir_is_linear(opt_level):
    size = {}
    for n in (8, 64):
        funcs = _prim_funcs(wide(n), opt_level)
        assert max(len(f.params) for f in funcs) <= B.MAX_KERNEL_ARGS + 1  # + the output
        size[n] = sum(f.script().count("if_then_else") for f in funcs)
    # one select per input below the top of its Concat: about n, never n * n
    assert size[8] >= 7
    assert size[64] <= 2 * 64, size


def test_bound_kernel_args_keeps_narrow_graphs():
    g = wide(B.CONCAT_FANIN)
    g2, _ = run_passes(g, plan(vcompile.CompileOptions(target="host", opt_level=2)))
    assert B.bound_kernel_args(g) is g
    assert B.bound_kernel_args(g2) is g2


@pytest.mark.parametrize("opt_level", [0, 2])
def test_wide_concat_equals_interpreter(opt_level):
    g = wide(64)
    x = np.random.default_rng(1).standard_normal((1, 16)).astype(np.float32)
    m = vcompile.compile(g, target="host", opt_level=opt_level)
    got, want = m(x)[0], interp.run(g, x)[0]
    assert got.shape == (1, 64 * 16)
    np.testing.assert_array_equal(got, want)


def test_compile_then_export_generates_the_library_once(tmp_path, monkeypatch):
    calls = []
    real = tvm.runtime.Executable.export_library

    def counting(self, *a, **kw):
        calls.append(a[0] if a else kw.get("file_name"))
        return real(self, *a, **kw)
    monkeypatch.setattr(tvm.runtime.Executable, "export_library", counting)
    real_jit = tvm.runtime.Executable.jit

    def counting_jit(self, *a, **kw):  # TVM's JIT generates the code in process
        calls.append("jit")
        return real_jit(self, *a, **kw)
    monkeypatch.setattr(tvm.runtime.Executable, "jit", counting_jit)
    g = wide(20)
    x = np.random.default_rng(2).standard_normal((1, 16)).astype(np.float32)
    m = vcompile.compile(g, target="host", opt_level=2)
    path = m.export(tmp_path / "m.so")  # as `vcompile MODEL -o`: generated here, once
    m.export(tmp_path / "again.so")     # a copy
    out = m(x)[0]                       # runs the library just written: nothing generated
    assert len(calls) == 1 and calls[0] != "jit", calls  # one generation, no JIT
    m2 = vcompile.compile(g, target="host", opt_level=2)
    m2(x)
    assert calls[1:] == ["jit"]  # a model that is only run: one in-process generation
    assert (tmp_path / "m.so").read_bytes() == (tmp_path / "again.so").read_bytes()
    np.testing.assert_array_equal(vcompile.load(path)(x)[0], out)
    np.testing.assert_array_equal(out, interp.run(g, x)[0])
