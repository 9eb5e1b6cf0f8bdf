"""Per-kernel times of a compiled model, from the Relax VM's instrumentation hook.

    time_calls(model, inputs, rounds=20) => CallTimes(calls=[("fused_conv2d_relu_2_w", s), ...],
                                                     e2e_s=..., instrumented_e2e_s=...)

TVM 0.27's VM has no profiler any more (`VirtualMachine(..., profile=True)` is gone), but
`set_instrument` calls a function before and after every Call instruction. On the CPU a
kernel runs synchronously inside its call, so the wall time between the two callbacks
is the kernel's time plus one call's overhead. Each round runs the plain VM (end-to-end
latency) and then the instrumented one; every call keeps its median over the rounds,
so the per-kernel times and the end-to-end time come from the same minutes of the
machine. VM builtins (allocation, tuple making, views) are returned too, under their
`vm.builtin.` names.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompile.runtime.tvm_import import import_tvm


@dataclass(frozen=True)
class CallTimes:
    calls: list[tuple[str, float]]   # (function symbol, median seconds), in call order
    e2e_s: float                     # median end-to-end latency without instrumentation
    instrumented_e2e_s: float        # median end-to-end latency with it
    rounds: int
    kernel_sum_s: float              # median over rounds of one round's non-builtin calls


def _vm(module: Any) -> Any:
    tvm = import_tvm()
    from tvm import relax
    return relax.VirtualMachine(module, tvm.cpu())


def _instrument(vm: Any) -> list[tuple[str, float]]:
    """Makes `vm` append (symbol, seconds) for every call to the list it returns."""
    record: list[tuple[str, float]] = []
    started = [0.0]

    def instrument(_func: Any, symbol: str, before: bool, _ret: Any, *_args: Any) -> int:
        now = time.perf_counter()
        if before:
            started[0] = time.perf_counter()
        else:
            record.append((str(symbol), now - started[0]))
        return 0  # VMInstrumentReturnKind.kNoOp
    vm.set_instrument(instrument)
    return record


def time_calls(model: Any, inputs: list[np.ndarray], rounds: int = 20, warmup: int = 3) -> CallTimes:
    """Median time of every VM call of one inference of `model` (a `CompiledModel`)."""
    tvm = import_tvm()
    module = model.vm_module()
    plain, probed = _vm(module), _vm(module)
    args = [tvm.runtime.tensor(a, tvm.cpu()) for a in model.check_inputs(tuple(inputs))]
    record = _instrument(probed)
    run_plain, run_probed = plain["main"], probed["main"]
    for _ in range(warmup):
        run_plain(*args)
        run_probed(*args)
    e2e, e2e_probed, per_round = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        run_plain(*args)
        e2e.append(time.perf_counter() - t0)
        record.clear()
        t0 = time.perf_counter()
        run_probed(*args)
        e2e_probed.append(time.perf_counter() - t0)
        per_round.append(list(record))
    names = [s for s, _ in per_round[0]]
    if any([s for s, _ in r] != names for r in per_round):
        raise RuntimeError("the VM called different functions in different rounds")
    table = np.array([[t for _, t in r] for r in per_round])
    kernel = np.array([not s.startswith("vm.builtin.") for s in names], dtype=bool)
    # NOTE: on a busy machine the sum of per-kernel medians leaves out the preemptions
    # that every whole run suffers somewhere; the median of per-run sums keeps them, as
    # the end-to-end median does, so the two are compared.
    return CallTimes(list(zip(names, (float(t) for t in np.median(table, axis=0)), strict=True)),
                     float(np.median(e2e)), float(np.median(e2e_probed)), rounds,
                     float(np.median(table[:, kernel].sum(axis=1))))
