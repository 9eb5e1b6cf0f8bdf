"""Running and timing a compiled library on a remote device through TVM's RPC.

    sess = connect(rpc="192.168.1.7:9090")                       # one board
    sess = connect(tracker="10.0.0.2:9190", key="rk3588")          # a fleet behind a tracker
    timing, outputs = run_remote(sess, "m.so", [x], repeat=20)

The device runs TVM's own RPC server (`python -m tvm.exec.rpc_server`, registered with
`python -m tvm.exec.rpc_tracker` for a fleet): TVM's machinery for device farms, not a
new one. The library is uploaded as is (the vcompile trailer after the ELF part is
ignored by the device's loader), loaded into a Relax VM there, fed through the stateful
API (`set_input`, `invoke_stateful`: tuples cannot be returned through a timed call)
and timed by the device's own clock with `time_evaluator`.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from vcompile.codegen.deploy import artifact
from vcompile.errors import VcompileError
from vcompile.runtime.bench import Timing
from vcompile.runtime.tvm_import import import_tvm


class RemoteError(VcompileError, RuntimeError):
    """A bad RPC address, an unreachable server or tracker, or a failure on the device."""


def parse_addr(text: str, flag: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RemoteError(f"bad {flag} {text!r}: expected HOST:PORT such as 127.0.0.1:9090")
    return host, int(port)


def _last_line(e: Exception) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def connect(rpc: str | None = None, tracker: str | None = None, key: str | None = None,
            timeout: float = 60) -> Any:
    """An RPC session to one server (`rpc`) or to a free device of `key` behind a tracker."""
    import_tvm()
    from tvm import rpc as tvm_rpc
    if (rpc is None) == (tracker is None):
        raise RemoteError("give exactly one of --rpc HOST:PORT or --rpc-tracker HOST:PORT")
    if tracker is not None and not key:
        raise RemoteError("--rpc-tracker needs --rpc-key KEY (the device key the boards registered)")
    try:
        if rpc is not None:
            host, port = parse_addr(rpc, "--rpc")
            return tvm_rpc.connect(host, port, session_timeout=timeout)
        host, port = parse_addr(tracker, "--rpc-tracker")  # type: ignore[arg-type]
        return tvm_rpc.connect_tracker(host, port).request(key, session_timeout=timeout)
    except Exception as e:  # TVM raises RuntimeError subclasses and TimeoutError
        where = f"RPC server {rpc}" if rpc else f"RPC tracker {tracker} (key {key!r})"
        raise RemoteError(f"cannot reach the {where}: {_last_line(e)}; is the server running?") from e


def run_remote(sess: Any, library: str | os.PathLike[str], inputs: list[np.ndarray],
               warmup: int = 1, repeat: int = 20) -> tuple[Timing, list[np.ndarray]]:
    """Upload, load and time `library` on the session's device; returns (timing, outputs)."""
    import_tvm()
    from tvm import relax
    path = os.fspath(library)
    meta = artifact.read(path)
    name = f"vcompile-{os.getpid()}-{os.path.basename(path)}"
    try:
        sess.upload(path, target=name)
        dev = sess.cuda() if meta.get("device") == "cuda" else sess.cpu()
        vm = relax.VirtualMachine(sess.load_module(name), dev)
        args = [_tensor(a, dev) for a in inputs]
        vm.set_input("main", *args)
        for _ in range(warmup):
            vm.invoke_stateful("main")
        res = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=repeat)("main")
        outs = vm.get_outputs("main")
    except Exception as e:  # errors come back from the device as long traces
        raise RemoteError(f"running {os.path.basename(path)} on the remote device failed: "
                          f"{_last_line(e)}") from e
    ms = np.asarray(res.results, dtype=np.float64) * 1e3
    flat = list(outs) if isinstance(outs, tuple | list) else [outs]
    return (Timing(float(np.median(ms)), float(np.percentile(ms, 90)), len(ms)),
            [np.asarray(o.numpy()) for o in flat])


def _tensor(a: np.ndarray, dev: Any) -> Any:
    tvm = import_tvm()
    return tvm.runtime.tensor(a if a.flags.c_contiguous else np.ascontiguousarray(a), dev)
