"""Build and export: Graph -> Relax -> `tvm.compile` -> VM executable -> one .so file.

    build(g, "host") => (executable, metadata)
    export(executable, metadata, "m.so") => m.so = <ELF library><metadata trailer>

How a target compiles is its kind's `codegen.backends.Backend` (the CPU pipeline with
our schedules, or the GPU pipeline with dlight's); this module only emits, asks the
backend and records. The artifact is a single file: the library TVM exports (kernels,
VM bytecode, weights) followed by the vcompile metadata trailer that
`codegen.deploy.artifact` defines. The file is written under a temporary name in the
destination directory and renamed into place (`vcompile.files.atomic_path`), so a failed
export never leaves a partial or stale file. TVM's intermediate objects (lib0.o, as big as
the library) go to a workspace we own (`vcompile-export-HOST-PID-*` in the system temporary
directory), removed when the export ends however it ends; a killed run's workspace and
temporary library are swept by the next export (`vcompile.files.sweep_stale`), and the
linker a failed or interrupted export started is stopped so it cannot write after us.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from vcompile.codegen import targets
from vcompile.codegen.deploy import artifact
from vcompile.codegen.emit.relax import to_relax
from vcompile.codegen.options import CodegenOptions, fusion_mode
from vcompile.errors import VcompileError
from vcompile.files import atomic_path, sweep_stale, temp_prefix
from vcompile.ir.graph import Graph, Node, Value, io_names
from vcompile.version import __version__


class BuildError(VcompileError, RuntimeError):
    """TVM failed to compile or export a module."""


def metadata(g: Graph, target_name: str, target: Any, opt_level: int | None,
             passes: tuple[str, ...]) -> dict[str, Any]:
    ins, outs = io_names(g)

    def desc(names: list[str], vals: tuple) -> list[dict[str, Any]]:
        return [{"name": n, "shape": list(v.shape), "dtype": v.dtype}
                for n, v in zip(names, vals, strict=True)]
    from vcompile.ir.kernels import kernel_table
    return {"format": artifact.FORMAT, "vcompile": __version__, "graph": g.name,
            "inputs": desc(ins, g.inputs), "outputs": desc(outs, g.outputs),
            "target": target_name, "tvm_target": str(target), "opt_level": opt_level,
            "passes": list(passes),
            # lets `vcompile profile` name a loaded library's kernels without its IR
            "kernel_table": kernel_table(g)}


def build(g: Graph, options: CodegenOptions | str = "host", *,
          passes: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """Compile a verified, canonical graph as `options` (the plan's codegen half, or just
    a target name) say; returns (VM executable, metadata).

    The target's backend (`targets.spec(name).backend`, one per TVM target kind) decides
    the rest: with `options.schedules` a CPU target gets the packed kernels of `emit.tiled`
    and the rule-based schedules of `codegen.cpu.schedules`; without, TVM's plain,
    unscheduled TIR. Kernels are fused as `fusion_mode` says; the metadata records the mode
    and the number of kernels `main` launches. With `options.tuning_db`, CPU kernels that
    have records there use the best record (see `codegen.tune`), the rest the rules.
    GPU targets (CUDA, OpenCL) get TVM's GPU pipeline with dlight's schedules (`codegen.gpu`).
    """
    opts = CodegenOptions(options) if isinstance(options, str) else options
    target_name = opts.target
    target = targets.resolve(target_name, **opts.target_options())
    backend = targets.spec(target_name).backend
    tiles = backend.emit_tiles(target, opts)
    fusion = fusion_mode(g, opts.fusion)
    mod = to_relax(bound_kernel_args(g), io_names(g)[0], tiles,
                   one_kernel_per_node=fusion == "vcompile")
    kernels: list[int] = []
    try:
        ex = backend.compile(mod, target, tiles=tiles, fusion=fusion, tuning_db=opts.tuning_db,
                             kernels=kernels)
    except Exception as e:  # TVM's errors are long C++ traces: keep the last line
        msg = str(e).strip().splitlines()
        raise BuildError(f"TVM failed to compile graph @{g.name} for {target_name}: "
                         f"{msg[-1] if msg else type(e).__name__}") from e
    meta = metadata(g, target_name, target, opts.opt_level, passes)
    meta.update(fusion=fusion, kernels=kernels[0] if kernels else None,
                target_options=opts.target_options(), device=backend.device)
    return ex, meta


# A kernel's entry unpacks and checks every argument; LLVM's time on that entry grows
# with the square of the argument count (128 arguments: 5 s, 256: 23 s), so no kernel
# gets more than MAX_KERNEL_ARGS (issue 25: a Concat of 1,000 branches took minutes).
MAX_KERNEL_ARGS = 32
CONCAT_FANIN = 16  # a wider Concat becomes a tree of Concats of at most this many inputs


def bound_kernel_args(g: Graph) -> Graph:
    """`g` with no kernel of more than MAX_KERNEL_ARGS arguments, computing the same values
    bit for bit (only data movement changes): a fused node with more inputs and constants
    than that is split back into its nodes (one kernel each), and a Concat of more than
    CONCAT_FANIN inputs becomes a tree of Concats, each its own kernel. Then code size and
    compile time grow linearly with the width of the graph; the copies grow as
    log_FANIN(width)."""
    if not any(_wide(n) for n in g.nodes):
        return g
    consts = dict(g.consts)
    nodes: list[Node] = []
    for n in g.nodes:
        for m in _dissolve(n, consts) if n.region is not None and _wide(n) else [n]:
            if m.op == "concat" and m.region is None and len(m.inputs) > CONCAT_FANIN:
                nodes.extend(_concat_tree(m, consts))
            else:
                nodes.append(m)
    return Graph(g.name, g.inputs, tuple(nodes), g.outputs, consts)


def _wide(n: Node) -> bool:
    if n.region is not None:
        return len(set(n.inputs)) + len(n.region.consts) > MAX_KERNEL_ARGS
    return n.op == "concat" and len(n.inputs) > CONCAT_FANIN


def _dissolve(n: Node, consts: dict[Value, Any]) -> list[Node]:
    """A fused node's body as plain nodes over the outer values (its constants move out)."""
    body = n.region
    assert body is not None
    produced = {v for m in body.nodes for v in m.outputs}
    if not all(v in produced for v in body.outputs) or len(set(body.outputs)) != len(body.outputs):
        return [n]  # an output that is an input or a constant: keep the node as it is
    env: dict[Value, Value] = dict(zip(body.inputs, n.inputs, strict=True))
    env.update(zip(body.outputs, n.outputs, strict=True))
    consts.update(body.consts)
    return [Node(m.op, tuple(env.get(v, v) for v in m.inputs),
                 tuple(env.get(v, v) for v in m.outputs), m.attrs, m.loc, m.region)
            for m in body.nodes]


def _concat_tree(n: Node, consts: dict[Value, Any]) -> list[Node]:
    """`n` (a Concat) as Concats of at most CONCAT_FANIN inputs, the last writing n's output;
    each is a one-node fused node, so that TVM's fusion cannot join them into one kernel."""
    from vcompile.ir.builder import infer_node
    out: list[Node] = []
    level = list(n.inputs)
    while len(level) > CONCAT_FANIN:
        nxt = []
        for i in range(0, len(level), CONCAT_FANIN):
            chunk = level[i:i + CONCAT_FANIN]
            if len(chunk) == 1:
                nxt.append(chunk[0])
                continue
            attrs, (t,) = infer_node("concat", chunk, n.attrs)
            v = Value(t, n.outputs[0].hint or "concat")
            out.append(_one_node_region(Node("concat", tuple(chunk), (v,), attrs, n.loc), consts))
            nxt.append(v)
        level = nxt
    out.append(_one_node_region(Node("concat", tuple(level), n.outputs, n.attrs, n.loc), consts))
    return out


def _one_node_region(n: Node, consts: dict[Value, Any]) -> Node:
    """`n` as a fused node of its own (constant inputs move inside)."""
    ins = [v for v in dict.fromkeys(n.inputs) if v not in consts]
    fresh = {v: Value(v.type, v.hint) for v in ins}
    inner = Node(n.op, tuple(fresh.get(v, v) for v in n.inputs), n.outputs, n.attrs, n.loc)
    body = Graph(n.op, tuple(fresh[v] for v in ins), (inner,), n.outputs,
                 {v: consts[v] for v in n.inputs if v in consts})
    return Node("fused", tuple(ins), n.outputs, {"kernel": n.op}, n.loc, body)


def export(ex: Any, meta: dict[str, Any], path: str | os.PathLike[str]) -> str:
    """Write the executable plus metadata to `path` atomically; returns the path."""
    path = os.fspath(path)
    dest = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(dest):
        raise BuildError(f"cannot write {path}: directory {dest} does not exist")
    if not os.access(dest, os.W_OK):
        raise BuildError(f"cannot write {path}: directory {dest} is not writable")
    sweep_stale(tempfile.gettempdir(), "export")
    with atomic_path(path, mode=0o755, error=BuildError) as tmp:
        before = _children()
        try:
            work = tempfile.mkdtemp(prefix=temp_prefix("export", hidden=False))
        except OSError as e:
            raise BuildError(f"cannot export {path}: no temporary directory ({e.strerror or e})") from e
        try:
            with artifact.quiet_stderr():
                ex.export_library(str(tmp), workspace_dir=work, fcompile=targets.fcompile(
                    meta["target"], (meta.get("target_options") or {}).get("api_level")))
            artifact.append_metadata(str(tmp), meta)
        except VcompileError:
            raise
        except Exception as e:
            raise BuildError(f"exporting {path} failed: {type(e).__name__}: {e}") from e
        except BaseException:  # Ctrl-C, SIGTERM: stop the linker before the files go
            _stop_new_children(before)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return path


def _children() -> set[int]:
    try:
        import psutil
        return {c.pid for c in psutil.Process().children(recursive=True)}
    except Exception:  # psutil missing or /proc unreadable: nothing to stop later
        return set()


def _stop_new_children(before: set[int]) -> None:
    """Terminate the processes this export started (the compiler TVM runs): left alone, a
    linker outlives us and writes the temporary library after it was removed."""
    try:
        import psutil
        new = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
        for c in new:
            c.terminate()
        _, alive = psutil.wait_procs(new, timeout=5)
        for c in alive:
            c.kill()
    except Exception:
        pass
