"""`vcompile inspect --draw`: SVGs of real models whose boxes and clusters are the IR's
ops and fusion groups, repeated blocks collapsed, and the drawing's errors."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.codegen.test_cli import one_line_error, vc
from vcompile.cli import main as cli_main
from vcompile.ir import Builder
from vcompile.report.draw import DrawError, block_key, draw

pytest.importorskip("graphviz")


def _svg_counts(svg: str) -> tuple[int, list[str]]:
    """(boxes and ellipses, cluster labels) of a Graphviz SVG."""
    nodes = len(re.findall(r'<g id="node\d+" class="node">', svg))
    labels = re.findall(r'<g id="clust\d+" class="cluster">\s*<title>[^<]*</title>\s*<path[^>]*/>\s*'
                        r'<text[^>]*>([^<]*)</text>', svg)
    return nodes, labels


def _fused(name: str) -> object:
    from tests.models import onnx_model
    from vcompile import passes
    from vcompile.cli.inspect import load_model
    return passes.run(load_model(str(onnx_model(name)), None), passes.pipeline(2))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "fastvit_t8"])
def test_svg_has_a_box_per_op_and_a_cluster_per_fusion_group(name: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from tests.models import onnx_model
    out = tmp_path / f"{name}.svg"
    assert cli_main(["inspect", str(onnx_model(name)), "-O2", "--draw", str(out),
                     "--draw-collapse", "none"]) == 0
    g = _fused(name)
    regions = [n for n in g.nodes if n.region is not None]
    ops = sum(len(n.region.nodes) if n.region is not None else 1 for n in g.nodes)
    nodes, labels = _svg_counts(out.read_text())
    assert regions and nodes == ops + len(g.inputs) + len(g.outputs)
    assert Counter(labels) == Counter(str(n.attrs["kernel"]) for n in regions)
    assert f"drawn as {ops} boxes and {len(regions)} clusters" in capsys.readouterr().out


@pytest.mark.slow
def test_deit_collapses_its_eleven_repeated_blocks(tmp_path: Path) -> None:
    g = _fused("deit_tiny_patch16_224")
    svg = draw(g, collapse="blocks").pipe(format="svg").decode()
    later = re.compile(r"blocks\.([1-9]|1[01])/")  # blocks 1..11 (blocks.0 is drawn)
    kept = [n for n in g.nodes if not any(later.search(m.loc) for m in
                                          (n.region.nodes if n.region is not None else [n]))]
    nodes, labels = _svg_counts(svg)
    assert "blocks.1 .. blocks.11" in svg and "11 block(s) like blocks.0" in svg
    assert len(labels) == sum(1 for n in kept if n.region is not None)
    kept_ops = sum(len(n.region.nodes) if n.region is not None else 1 for n in kept)
    assert nodes == kept_ops + 1 + len(g.inputs) + len(g.outputs)  # + the one repeat box


def test_block_keys_from_source_locations() -> None:
    assert block_key("/layers/layers.0/blocks/blocks.1/attn/MatMul") == "layers.0/blocks.1"
    assert block_key("/blocks/blocks.11/mlp/fc1/MatMul") == "blocks.11"
    assert block_key("blocks.3.attn.qkv") == "blocks.3"
    assert block_key("/head/Gemm") == ""


def test_small_graph_dot_has_folded_constants_and_colours(tmp_path: Path) -> None:
    import numpy as np
    bb = Builder("tiny")
    x = bb.input((1, 3, 8, 8), hint="x")
    w = bb.const(np.ones((4, 3, 3, 3), np.float32), hint="w")
    b = bb.const(np.zeros(4, np.float32), hint="b")
    y = bb.emit("relu", bb.emit("conv2d", x, w, b, pads=(1, 1, 1, 1)), hint="y")
    src = draw(bb.build(y), collapse="none").source
    assert src.count("->") == 3                      # x -> conv -> relu -> y: constants fold
    assert "w f32[4,3,3,3]" in src and "conv2d 3x3 s1" in src
    assert "#f4a261" in src and "#e9c46a" in src     # conv and elementwise colours


def test_draw_unknown_format_is_one_line(tmp_path: Path) -> None:
    vir = tmp_path / "g.vir"
    vir.write_text("graph @g(%x: f32[2]) {\n  %y = relu(%x) : f32[2]\n  return %y\n}\n")
    one_line_error(vc("inspect", str(vir), "--draw", str(tmp_path / "g.jpg")),
                   "must end in .svg, .png or .dot")
    assert not (tmp_path / "g.jpg").exists()
    r = vc("inspect", str(vir), "--draw", str(tmp_path / "g.dot"))
    assert r.returncode == 0 and "relu" in (tmp_path / "g.dot").read_text()


def test_draw_errors_are_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    vir = tmp_path / "g.vir"
    vir.write_text("graph @g(%x: f32[2]) {\n  %y = relu(%x) : f32[2]\n  return %y\n}\n")
    one_line_error(vc("inspect", str(vir), "--draw", str(tmp_path / "no" / "g.svg")),
                   f"directory {tmp_path / 'no'} does not exist")
    # without Graphviz's `dot` on PATH (the Python package alone cannot render)
    empty = tmp_path / "bin"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "vcompile", "inspect", str(vir), "--draw",
                        str(tmp_path / "g.svg")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PATH": str(empty)})
    one_line_error(r, "Graphviz's `dot` program is not installed: apt-get install graphviz")
    assert not (tmp_path / "g.svg").exists()
    with pytest.raises(DrawError, match="collapse must be auto, blocks or none, got 'all'"):
        draw(Builder("g").build(), collapse="all")
