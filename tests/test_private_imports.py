"""No vcompile module uses another module's underscore-private names.

Ruff's PLC2701 (on in `make lint`) skips imports that stay inside one top-level package,
so `from vcompile.a import _x` in vcompile.b passes it; this test covers that case:
`from M import _x` (relative imports too) and `M._x` through an imported module, for
every module under vcompile/. What several modules share gets a public name (see
ir/ops/windows.py, ir/ops/ranges.py, codegen/emit/common.py, files.py).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str, rel: Path) -> list[str]:
    """`line: module.name` for each use, in the module at `rel` (relative to the repository)
    with text `source`, of another vcompile module's private name."""
    me = _module(rel)
    pkg = me if rel.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(source, str(rel))
    modules: dict[str, str] = {}  # local name -> the vcompile module it names
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([mod] if mod else []))
            if mod.split(".")[0] != "vcompile":
                continue
            for a in node.names:
                if _private(a.name) and mod != me:
                    hits.append(f"{node.lineno}: {mod}.{a.name}")
                modules[a.asname or a.name] = f"{mod}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "vcompile":
                    modules[a.asname or "vcompile"] = a.name if a.asname else "vcompile"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain, v = [], node.value
            while isinstance(v, ast.Attribute):
                chain.append(v.attr)
                v = v.value
            if isinstance(v, ast.Name) and v.id in modules:
                mod = ".".join([modules[v.id], *reversed(chain)])
                if mod != me:
                    hits.append(f"{node.lineno}: {mod}.{node.attr}")
    return hits


def test_no_module_uses_another_modules_private_names() -> None:
    found = {}
    for path in sorted((ROOT / "vcompile").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if hits := private_uses(path.read_text(), rel):
            found[str(rel)] = hits
    assert found == {}, "import a public name (or make the helper public) instead of:\n" + "\n".join(
        f"  {path}:{hit}" for path, hits in found.items() for hit in hits)


def test_the_check_sees_each_form() -> None:
    src = ("from vcompile.ir.ops import nn\n"
           "from vcompile.ir.ops.nn import _widen\n"
           "from .ops.nn import _conv_check\n"
           "import vcompile.ir.ops.nn as m\n"
           "import vcompile.ir.ops.pool\n"
           "from vcompile.ir.__init__ import __doc__\n"
           "x = nn._IM2COL_LIMIT + m._IM2COL_LIMIT + vcompile.ir.ops.pool._lowest\n")
    assert sorted(private_uses(src, Path("vcompile/ir/probe.py"))) == [
        "2: vcompile.ir.ops.nn._widen", "3: vcompile.ir.ops.nn._conv_check",
        "7: vcompile.ir.ops.nn._IM2COL_LIMIT", "7: vcompile.ir.ops.nn._IM2COL_LIMIT",
        "7: vcompile.ir.ops.pool._lowest"]
    # a module's own private names are its business
    assert [h for h in private_uses(src, Path("vcompile/ir/ops/nn.py")) if ".nn._" in h] == [
        "3: vcompile.ir.ops.ops.nn._conv_check"]  # (".ops.nn" from inside ir/ops: another module)
