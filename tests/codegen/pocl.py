"""Run the OpenCL kernels vcompile generates on the CPU through PoCL (a test helper).

    run_on_pocl(g, "opencl-mali", [x]) => outputs of g, every kernel executed by PoCL

TVM's wheel has no OpenCL runtime, so this walks `main` of the scheduled module itself:
each `call_tir` is one PrimFunc, compiled for the target to OpenCL C, built by pyopencl
for PoCL's CPU device and launched with the grid/block extents of the PrimFunc's
thread bindings. Kernel arguments are matched by name (`<buffer>_ptr`) with the
PrimFunc's parameters. Only what small static-shape models need is supported.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

_BINDING = re.compile(r'T\.thread_binding\((?:T\.int64\()?(\d+)\)?, thread="((?:blockIdx|threadIdx)\.[xyz])"')
_KERNEL = re.compile(r"__kernel void (\w+)\(([^)]*)\)\s*\{")


def pocl_device() -> Any:
    import pyopencl as cl
    for p in cl.get_platforms():
        if "Portable Computing Language" in p.name:
            return p.get_devices()[0]
    raise RuntimeError("no PoCL platform (install pocl-opencl-icd)")


def scheduled_module(g: Any, target_name: str) -> tuple[Any, Any]:
    from vcompile.codegen import gpu, targets
    from vcompile.codegen.build import fusion_mode, io_names
    from vcompile.codegen.emit.relax import to_relax
    target = targets.resolve(target_name)
    fusion = fusion_mode(g, "tvm")
    mod = to_relax(g, io_names(g)[0], None, one_kernel_per_node=fusion == "vcompile")
    return gpu.schedule_gpu(mod, target, fusion), target


def kernel_source(prim: Any, name: str, target: Any) -> str:
    import tvm
    ex = tvm.compile(tvm.IRModule({name: prim.with_attr("global_symbol", name)}), target)
    (dev,) = [m for m in ex.mod.imports if m.kind == "opencl"]
    return str(dev.inspect_source())


def launch_size(prim: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(global size, local size) in OpenCL terms from the thread binding extents."""
    ext = {"blockIdx": [1, 1, 1], "threadIdx": [1, 1, 1]}
    for n, tag in _BINDING.findall(prim.script()):
        kind, axis = tag.split(".")
        ext[kind]["xyz".index(axis)] = int(n)
    local = tuple(ext["threadIdx"])
    return tuple(b * t for b, t in zip(ext["blockIdx"], local, strict=True)), local


def run_on_pocl(g: Any, target_name: str, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Outputs of `g` computed by its OpenCL kernels on PoCL, and the number of kernels run."""
    import pyopencl as cl
    from tvm import relax
    mod, target = scheduled_module(g, target_name)
    ctx = cl.Context(devices=[pocl_device()])
    queue = cl.CommandQueue(ctx)
    main = mod["main"]
    env: dict[Any, Any] = dict(zip(main.params, inputs, strict=True))

    def value(e: Any) -> Any:
        if isinstance(e, relax.Var):
            return env[e]
        if hasattr(e, "fields"):
            return tuple(value(f) for f in e.fields)
        return e.value.numpy()  # a constant

    launched = 0
    for block in main.body.blocks:
        for b in block.bindings:
            v = b.value
            if getattr(getattr(v, "op", None), "name", "") == "relax.call_tir":
                gv = v.args[0]
                args = [np.ascontiguousarray(value(a)) for a in v.args[1].fields]
                outs = [np.empty([int(d) for d in t.shape], str(t.dtype)) for t in v.ty_args]
                _launch(ctx, queue, mod[gv], gv.name_hint, target, args + outs)
                launched += 1
                env[b.var] = outs[0] if len(outs) == 1 else tuple(outs)
            else:
                env[b.var] = value(v)
    result = value(main.body.body)
    return list(result if isinstance(result, tuple) else (result,)), launched


def _launch(ctx: Any, queue: Any, prim: Any, name: str, target: Any, arrays: list[np.ndarray]) -> None:
    import pyopencl as cl
    src = kernel_source(prim, name, target)
    kernels = {k: sig for k, sig in _KERNEL.findall(src)}
    assert len(kernels) == 1, f"{name}: {len(kernels)} device kernels; this helper launches one"
    (kname, sig), = kernels.items()
    by_name = {p.name: a for p, a in zip(prim.params, arrays, strict=True)}
    bufs = {n: cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=a)
            for n, a in by_name.items()}
    order = [arg.split()[-1].removesuffix("_ptr") for arg in sig.split(",")]
    program = cl.Program(ctx, src).build()
    gsize, lsize = launch_size(prim)
    getattr(program, kname)(queue, gsize, lsize, *[bufs[n] for n in order])
    out = prim.params[-1].name
    cl.enqueue_copy(queue, by_name[out], bufs[out])
    queue.finish()
