"""Fuzzing the three files a user hands vcompile: mutated ONNX bytes (`vcompile inspect`),
mutated library trailers and ELF parts (`vcompile run`), mutated .npy inputs (`vcompile
run --input`). Every outcome must be a result (exit 0) or one line `vcompile: error: ...`
with exit 1: never a traceback, never a crash (issue 25, "What it must show").

Design. The seeds are a small valid ONNX model (conv -> relu -> reshape -> gemm, ir_version
8, opset 17, about 11 KB), one library compiled from it once per session (-O1), and one
.npy input. Mutations come from `random.Random(SEED)`, so every run replays the same
cases: byte-level ones (bit flips, byte replacements, truncation, insertions, duplicated
chunks) and structural ones (protobuf fields of the model; the trailer's JSON fields:
types, numbers, missing keys, sizes; the .npy header dict: dtype strings, shapes,
fortran_order, and the data length). A structural trailer mutation is written under a
fresh length field, so it reaches the metadata parser instead of being stopped at the
tail; the ELF part's sha256 stays that of the untouched ELF, so mutations of the ELF
itself must be refused by the checksum (asserted: the loader never sees them).

Speed: the cases of one kind run in one subprocess (this file run as a script), which
calls `vcompile.cli.main` per case with fd 2 captured and writes each outcome as a JSON
line before starting the next case. A subprocess, so that a crash (a signal) is seen
rather than killing pytest: the case that was running is then re-run alone through
`python -m vcompile` to confirm it, and the driver resumes after it. A few cases of
each kind are also run through `python -m vcompile` to check that the in-process
outcome is the command's.
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

SEED = 25
N_ONNX, N_TRAILER, N_ELF, N_NPY = 200, 100, 20, 100
PREFIX = "vcompile: error: "

pytestmark = pytest.mark.xdist_group("fuzz")  # one worker: the library is compiled once


# ---- outcomes -------------------------------------------------------------------------------

def classify(rc: int | str, err: str) -> str:
    """ok | error (exactly one `vcompile: error:` line, exit 1) | traceback | crash | other."""
    if rc == "traceback" or "Traceback (most recent call last)" in err:
        return "traceback"
    if isinstance(rc, int) and rc < 0:
        return "crash"
    if rc == "hang":
        return "hang"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if rc == 0:
        return "ok"
    if rc == 1 and len(lines) == 1 and lines[0].startswith(PREFIX):
        return "error"
    return "other"


def _run_case(argv: list[str]) -> tuple[int | str, str]:
    """`vcompile ARGV` in this process: (exit status or 'traceback', everything on fd 2)."""
    from vcompile import cli
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as errf:
        os.dup2(errf.fileno(), 2)
        rc: int | str
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    rc = cli.main(argv)
                except SystemExit as e:  # argparse; not expected here
                    rc = e.code if isinstance(e.code, int) else 1
                except BaseException:  # noqa: BLE001 - what `python -m vcompile` would print
                    traceback.print_exc()
                    rc = "traceback"
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        errf.seek(0)
        return rc, errf.read().decode(errors="replace")


def _driver(cases_path: str, results_path: str, start: int) -> None:
    cases = json.loads(Path(cases_path).read_text())
    with open(results_path, "a") as out:
        for i in range(start, len(cases)):
            out.write(json.dumps({"start": i}) + "\n")
            out.flush()
            rc, err = _run_case(cases[i]["argv"])
            out.write(json.dumps({"i": i, "rc": rc, "err": err[-2000:]}) + "\n")
            out.flush()


def _cli(argv: list[str], timeout: float = 60) -> tuple[int | str, str]:
    try:
        p = subprocess.run([sys.executable, "-m", "vcompile", *argv], capture_output=True,
                           text=True, timeout=timeout, env={**os.environ, "TVM_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return "hang", ""
    return p.returncode, p.stderr


def run_cases(cases: list[dict[str, Any]], work: Path, kind: str) -> list[dict[str, Any]]:
    """Every case's outcome; the driver runs them in a subprocess, restarted after a crash."""
    cases_path, results_path = work / f"{kind}-cases.json", work / f"{kind}-results.jsonl"
    cases_path.write_text(json.dumps(cases))
    results_path.write_text("")
    results: dict[int, dict[str, Any]] = {}
    start = 0
    env = {**os.environ, "TVM_NUM_THREADS": "1", "PYTHONFAULTHANDLER": ""}
    while start < len(cases):
        try:
            died: int | str = subprocess.run(
                [sys.executable, __file__, str(cases_path), str(results_path), str(start)],
                capture_output=True, timeout=60 + 5 * (len(cases) - start), env=env).returncode
        except subprocess.TimeoutExpired:
            died = "hang"
        running = None
        for line in results_path.read_text().splitlines():
            rec = json.loads(line)
            if "start" in rec:
                running = rec["start"]
            else:
                results[rec["i"]] = rec
                running = None
        if running is None:
            break
        rc, err = _cli(cases[running]["argv"])  # a crash or a hang: confirm it alone
        if rc in (0, 1):  # not reproduced alone: still the driver's crash
            rc, err = died, f"(the driver died: {died}; alone: {err.strip()})"
        results[running] = {"i": running, "rc": rc, "err": err}
        start = running + 1
    out = []
    for i, c in enumerate(cases):
        r = results.get(i, {"rc": "hang", "err": ""})
        out.append({**c, "rc": r["rc"], "err": r["err"], "outcome": classify(r["rc"], r["err"])})
    return out


def check(outcomes: list[dict[str, Any]], kind: str, cli_sample: int = 2) -> Counter[str]:
    counts = Counter(o["outcome"] for o in outcomes)
    by_mut = Counter(o["mutation"].split(":")[0] for o in outcomes)
    print(f"\nfuzz {kind}: {len(outcomes)} cases {dict(by_mut)}; outcomes {dict(counts)}")
    bad = [o for o in outcomes if o["outcome"] not in ("ok", "error")]
    for o in bad[:15]:
        last = (o["err"].strip().splitlines() or [""])[-1]
        print(f"  {o['outcome']}: {o['mutation']}: rc={o['rc']}: {last[:300]}")
    assert not bad, f"{len(bad)} of {len(outcomes)} {kind} cases end in a traceback or crash: " + \
        "; ".join(f"{o['mutation']} -> {o['outcome']}" for o in bad[:10])
    # the in-process outcome is the command's: a few cases through `python -m vcompile`
    rng = random.Random(SEED)
    for o in rng.sample([o for o in outcomes if o["outcome"] == "error"], min(cli_sample, counts["error"])):
        rc, err = _cli(o["argv"])
        assert classify(rc, err) == "error" and err.strip() == o["err"].strip(), (o["mutation"], rc, err)
    return counts


# ---- byte-level mutations -------------------------------------------------------------------

BYTE_MUTATIONS = ("flip", "replace", "truncate", "insert", "dup")


def mutate_bytes(data: bytes, rng: random.Random, lo: int = 0, hi: int | None = None,
                 kinds: tuple[str, ...] = BYTE_MUTATIONS) -> tuple[bytes, str]:
    """One byte-level mutation inside data[lo:hi] (1 to 4 edits for flips and replacements)."""
    hi = len(data) if hi is None else hi
    b = bytearray(data)
    kind = rng.choice(kinds)
    at = rng.randrange(lo, hi)
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(lo, hi)
            b[at] ^= 1 << rng.randrange(8)
    elif kind == "replace":
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(lo, hi)
            b[at] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    elif kind == "truncate":
        del b[at:]
    elif kind == "insert":
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    else:
        n = rng.randint(1, min(256, hi - at))
        b[at:at] = data[at:at + n]
    return bytes(b), f"{kind}:@{at}"


# ---- ONNX -----------------------------------------------------------------------------------

def onnx_seed() -> bytes:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv_w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "conv_b"),
             numpy_helper.from_array(np.array([1, -1], np.int64), "flat_shape"),
             numpy_helper.from_array(rng.standard_normal((10, 256)).astype(np.float32), "fc_w"),
             numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fc_b")]
    nodes = [helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv",
                              pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "flat_shape"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1)]
    g = helper.make_graph(nodes, "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    return m.SerializeToString()


def mutate_onnx_proto(seed: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One or two edits of the model's protobuf fields, then serialized."""
    import onnx
    m = onnx.ModelProto()
    m.ParseFromString(seed)
    g = m.graph
    done = []
    for _ in range(rng.randint(1, 2)):
        what = rng.choice(["in_dim", "in_type", "init_type", "init_dims", "init_raw", "attr",
                           "attr_type", "op_type", "node_input", "opset", "ir_version",
                           "output", "drop", "shape_vals", "dup_node", "in_rank"])
        done.append(what)
        vi = g.input[0]
        if what == "in_dim":
            d = vi.type.tensor_type.shape.dim[rng.randrange(4)]
            v = rng.choice([-5, 0, 2 ** 40, 2 ** 62, None])
            if v is None:
                d.dim_param = rng.choice(["", "N", "a b", "1"])
            else:
                d.dim_value = v
        elif what == "in_rank":
            dims = vi.type.tensor_type.shape.dim
            if rng.random() < 0.5:
                del dims[rng.randrange(len(dims))]
            else:
                dims.add().dim_value = rng.choice([1, 3])
        elif what == "in_type":
            vi.type.tensor_type.elem_type = rng.choice([0, 2, 7, 8, 9, 10, 16, 17, 23, 99])
        elif what == "init_type":
            rng.choice(g.initializer).data_type = rng.choice([0, 3, 6, 7, 8, 11, 16, 99])
        elif what == "init_dims":
            t = rng.choice(g.initializer)
            if t.dims and rng.random() < 0.5:
                t.dims[rng.randrange(len(t.dims))] = rng.choice([-1, 0, 5, 2 ** 40])
            else:
                t.dims.append(rng.choice([0, 2, 7]))
        elif what == "init_raw":
            t = rng.choice(g.initializer)
            raw = t.raw_data
            t.raw_data = raw[:rng.randrange(len(raw))] if rng.random() < 0.7 else raw + b"\0" * 3
        elif what == "attr":
            n = g.node[0]
            a = rng.choice(list(n.attribute))
            a.ints[:] = rng.choice([[], [0, 0], [-1, -1, -1, -1], [1, 1, 1], [2 ** 40] * len(a.ints)])
        elif what == "attr_type":
            n = rng.choice([g.node[0], g.node[3]])
            n.attribute.add().CopyFrom(onnx.helper.make_attribute(
                rng.choice(["strides", "group", "dilations", "transA", "alpha", "auto_pad"]),
                rng.choice([0, -3, 2.5, "SAME_UPPER", "x", [0, 0], [1.5]])))
        elif what == "op_type":
            rng.choice(g.node).op_type = rng.choice(["Foo", "Gemm", "Conv", "Relu", "MatMul",
                                                      "Reshape", "Softmax", ""])
        elif what == "node_input":
            n = rng.choice(g.node)
            ins = list(n.input)
            choice = rng.random()
            if choice < 0.3 and ins:
                ins.pop(rng.randrange(len(ins)))
            elif choice < 0.6:
                ins.append(rng.choice(["", "nope", "x"]))
            elif ins:
                ins[rng.randrange(len(ins))] = rng.choice(["", "nope", "y", "f"])
            n.ClearField("input")
            n.input.extend(ins)
        elif what == "opset":
            m.opset_import[0].version = rng.choice([1, 12, 13, 18, 99])
        elif what == "ir_version":
            m.ir_version = rng.choice([0, 1, 3, 99])
        elif what == "output":
            g.output[0].name = rng.choice(["", "nope", "x", "c"])
        elif what == "drop":
            field = rng.choice([g.node, g.initializer, g.input, g.output])
            if len(field):
                del field[rng.randrange(len(field))]
        elif what == "shape_vals":
            import numpy as np
            from onnx import numpy_helper
            t = next(t for t in g.initializer if t.name == "flat_shape")
            t.CopyFrom(numpy_helper.from_array(np.array(rng.choice(
                [[0, 0, 0], [-1, -1], [7, 7], [1, 0], [2 ** 40, -1], []]), np.int64), "flat_shape"))
        elif what == "dup_node":
            g.node.add().CopyFrom(rng.choice(g.node))
    return m.SerializeToString(), "proto:" + "+".join(done)


def onnx_cases(work: Path) -> list[dict[str, Any]]:
    seed = onnx_seed()
    rng = random.Random(SEED)
    cases = []
    for i in range(N_ONNX):
        if i % 5 < 3:
            data, what = mutate_bytes(seed, rng)
            what = "bytes-" + what
        else:
            data, what = mutate_onnx_proto(seed, rng)
        p = work / f"m{i}.onnx"
        p.write_bytes(data)
        cases.append({"argv": ["inspect", str(p), "-q"], "mutation": what})
    return cases


def test_fuzz_onnx_inspect(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    outcomes = run_cases(onnx_cases(tmp_path), tmp_path, "onnx")
    counts = check(outcomes, "onnx")
    assert counts["error"] >= N_ONNX // 2  # most mutations must be refused, with a reason


# ---- the library ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """m.onnx, m.so (compiled once, -O1) and x.npy, a valid input for it."""
    pytest.importorskip("tvm")
    import numpy as np

    import vcompile
    d = tmp_path_factory.mktemp("fuzz_seeds")
    (d / "m.onnx").write_bytes(onnx_seed())
    vcompile.compile(str(d / "m.onnx"), target="host", opt_level=1).export(d / "m.so")
    np.save(d / "x.npy", np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32))
    return d


TAIL = struct.Struct("<Q8s")


def split_library(data: bytes) -> tuple[bytes, dict[str, Any]]:
    n = TAIL.unpack(data[-TAIL.size:])[0]
    return data[:-TAIL.size - n], json.loads(data[-TAIL.size - n:-TAIL.size])


def with_trailer(elf: bytes, blob: bytes) -> bytes:
    return elf + blob + TAIL.pack(len(blob), b"VCOMPILE")


_ODD_VALUES: list[Any] = [None, True, 0, -1, 1.5, 2 ** 64, "", "x", "8", [], {}, [1], {"a": 1}]
_DTYPES = ["f33", "float32", "", "f64", "f16", "i8", "bool", "str", "<f4", "object", "f32 ", "F32"]
_DIMS: list[Any] = [-1, 0, 2 ** 40, 2 ** 64, 1.5, "8", "N", True, None, 9, [8]]


def mutate_meta(meta: dict[str, Any], rng: random.Random) -> str:
    """One edit of the trailer's JSON: a field's type or number, a missing key, a size."""
    what = rng.choice(["top_value", "top_drop", "desc_value", "desc_drop", "dtype", "dim",
                       "rank", "descs", "size", "sha", "format", "device"])
    key = rng.choice(["inputs", "outputs"])
    desc = meta[key][0]
    if what == "top_value":
        k = rng.choice(sorted(meta))
        meta[k] = rng.choice(_ODD_VALUES)
        return f"{what}:{k}"
    if what == "top_drop":
        k = rng.choice(sorted(meta))
        del meta[k]
        return f"{what}:{k}"
    if what == "desc_value":
        k = rng.choice(["name", "dtype", "shape"])
        desc[k] = rng.choice(_ODD_VALUES)
        return f"{what}:{key}.{k}"
    if what == "desc_drop":
        k = rng.choice(["name", "dtype", "shape"])
        del desc[k]
        return f"{what}:{key}.{k}"
    if what == "dtype":
        desc["dtype"] = rng.choice(_DTYPES)
        return f"{what}:{key}={desc['dtype']!r}"
    if what == "dim":
        i = rng.randrange(len(desc["shape"]))
        desc["shape"][i] = rng.choice(_DIMS)
        return f"{what}:{key}[{i}]={desc['shape'][i]!r}"
    if what == "rank":
        if rng.random() < 0.5:
            desc["shape"].pop()
        else:
            desc["shape"].append(1)
        return f"{what}:{key}"
    if what == "descs":
        meta[key] = rng.choice([[], [desc, desc], [desc, {**desc, "name": "z"}], desc, [None]])
        return f"{what}:{key}"
    if what == "size":
        meta["elf_size"] = rng.choice([meta["elf_size"] + 1, meta["elf_size"] - 1, 0, -1,
                                       str(meta["elf_size"]), float(meta["elf_size"]), None,
                                       2 ** 70, "big", [1]])
        return f"{what}:{meta['elf_size']!r:.20}"
    if what == "sha":
        meta["elf_sha256"] = rng.choice([None, 1, "", "0" * 64, meta["elf_sha256"].upper()])
        return f"{what}"
    if what == "format":
        meta["format"] = rng.choice(["vcompile-artifact-2", None, 1, ["vcompile-artifact-1"]])
        return f"{what}"
    meta["device"] = rng.choice(["cuda", "opencl", "", 7, None, "CPU"])
    return f"{what}:{meta['device']!r}"


def trailer_cases(seeds: Path, work: Path) -> list[dict[str, Any]]:
    data = (seeds / "m.so").read_bytes()
    elf, meta = split_library(data)
    rng = random.Random(SEED + 1)
    cases = []
    for i in range(N_TRAILER):
        r = i % 10
        if r < 6:  # a JSON field, under a fresh length: reaches the metadata parser
            m = json.loads(json.dumps(meta))
            what = "json-" + mutate_meta(m, rng)
            out = with_trailer(elf, json.dumps(m, sort_keys=True).encode())
        elif r < 8:  # bytes of the JSON, under a fresh length
            blob = json.dumps(meta, sort_keys=True).encode()
            blob, what = mutate_bytes(blob, rng)
            out, what = with_trailer(elf, blob), "jsonbytes-" + what
        else:  # anywhere in the trailer (JSON, length field, magic) or a cut at any point
            out, what = mutate_bytes(data, rng, lo=len(elf))
            what = "tail-" + what
        p = work / f"t{i}.so"
        p.write_bytes(out)
        argv = ["run", str(p), "-q"] + (["--input", str(seeds / "x.npy")] if i % 2 else [])
        cases.append({"argv": argv, "mutation": what})
    return cases


@pytest.mark.tvm
def test_fuzz_library_trailer(seeds: Path, tmp_path: Path) -> None:
    outcomes = run_cases(trailer_cases(seeds, tmp_path), tmp_path, "trailer")
    counts = check(outcomes, "trailer")
    assert counts["ok"] and counts["error"]


@pytest.mark.tvm
def test_fuzz_library_elf_is_refused_by_the_checksum(seeds: Path, tmp_path: Path) -> None:
    """Flipped or replaced bytes of the ELF part (same size, trailer intact): the checksum
    refuses every one before dlopen, which could crash inside the dynamic loader."""
    data = (seeds / "m.so").read_bytes()
    elf, _ = split_library(data)
    rng = random.Random(SEED + 2)
    cases = []
    for i in range(N_ELF):
        out, what = mutate_bytes(data, rng, hi=len(elf), kinds=("flip", "replace"))
        if out == data:
            continue
        p = tmp_path / f"e{i}.so"
        p.write_bytes(out)
        cases.append({"argv": ["run", str(p), "-q", "--input", str(seeds / "x.npy")],
                      "mutation": "elf-" + what})
    outcomes = run_cases(cases, tmp_path, "elf")
    check(outcomes, "elf", cli_sample=1)
    for o in outcomes:
        assert o["outcome"] == "error" and "checksum does not match" in o["err"], (o["mutation"], o["err"])


# ---- .npy -----------------------------------------------------------------------------------

def split_npy(data: bytes) -> tuple[bytes, dict[str, Any], bytes]:
    """(magic + version, header dict, array bytes) of a version 1.0 .npy file."""
    n = struct.unpack("<H", data[8:10])[0]
    return data[:8], ast.literal_eval(data[10:10 + n].decode("latin1")), data[10 + n:]


def join_npy(magic: bytes, header: str, body: bytes) -> bytes:
    text = header.encode("latin1")
    text += b" " * ((-(10 + len(text) + 1)) % 64) + b"\n"
    return magic + struct.pack("<H", len(text)) + text + body


_DESCRS: list[Any] = ["<f4", ">f4", "<f8", "<f2", "|O", "<i4", "|b1", "<c8", "<U3", "|S4", "garbage",
                      "", "<f16", [("a", "<f4")], "<M8[s]", "|V4", 4, None]
_SHAPES: list[Any] = [(), (1, 3, 8), (1, 3, 8, 9), (1, 3, 8, 8, 1), (-1, 3, 8, 8), (2 ** 40, 3, 8, 8),
                      (0, 3, 8, 8), (3, 1, 8, 8), (192,), ("a",), (1.5, 3, 8, 8), None, 5]


def mutate_npy(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    magic, header, body = split_npy(data)
    what = rng.choice(["descr", "shape", "fortran", "drop", "extra", "body", "body", "header_text",
                       "bytes", "bytes"])
    if what == "bytes":
        out, how = mutate_bytes(data, rng)
        return out, f"bytes-{how}"
    if what == "descr":
        header["descr"] = rng.choice(_DESCRS)
    elif what == "shape":
        header["shape"] = rng.choice(_SHAPES)
    elif what == "fortran":
        header["fortran_order"] = rng.choice([True, "yes", None, 1])
    elif what == "drop":
        del header[rng.choice(sorted(header))]
    elif what == "extra":
        header[rng.choice(["extra", "Descr"])] = 1
    elif what == "body":
        cut = rng.choice([0, 1, len(body) // 2, len(body) - 1, len(body) + 4, len(body) * 2])
        body = body[:cut] if cut <= len(body) else body + bytes(cut - len(body))
        return join_npy(magic, repr(header), body), f"body:{cut}"
    elif what == "header_text":
        text = rng.choice(["{", "", "{'descr': '<f4'", "[1, 2]", "{'descr': '<f4', 'fortran_order': "
                           "False, 'shape': (1, 3, 8, 8), } junk", "__import__('os')", "{1: 2}",
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 8, 8)}" * 3])
        return join_npy(magic, text, body), f"header_text:{text[:20]!r}"
    return join_npy(magic, repr(header), body), f"{what}:{header.get('descr', header.get('shape'))!r:.30}"


@pytest.mark.tvm
def test_fuzz_npy_input(seeds: Path, tmp_path: Path) -> None:
    data = (seeds / "x.npy").read_bytes()
    rng = random.Random(SEED + 3)
    cases = []
    for i in range(N_NPY):
        out, what = mutate_npy(data, rng)
        p = tmp_path / f"x{i}.npy"
        p.write_bytes(out)
        cases.append({"argv": ["run", str(seeds / "m.so"), "-q", "--input", str(p)], "mutation": what})
    outcomes = run_cases(cases, tmp_path, "npy")
    counts = check(outcomes, "npy")
    assert counts["ok"] and counts["error"]


if __name__ == "__main__":  # the driver: python tests/test_fuzz.py CASES.json RESULTS.jsonl START
    _driver(sys.argv[1], sys.argv[2], int(sys.argv[3]))
