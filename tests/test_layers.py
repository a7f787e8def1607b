"""The house rule as a contract: `lpm_zoo` imports neither `backends` nor `search`; `search` never
imports `backends`. Every import statement counts, also one inside a function."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the packages of the plugin distributions in plugins/ (found through entry points; the core never imports them)
PLUGINS = {d.parent.name for d in ROOT.glob("plugins/*/*/__init__.py")}
# package -> the top-level packages it may not import
FORBIDDEN = {"lpm_zoo": {"backends", "search"} | PLUGINS, "search": {"backends"} | PLUGINS,
             "backends": {"search"} | PLUGINS}


def forbidden_imports(root: Path) -> list[str]:
    """`file:line imports X` for every import under `root` that breaks FORBIDDEN."""
    found = []
    for package, banned in FORBIDDEN.items():
        for file in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] in banned:
                        found.append(f"{file.relative_to(root)}:{node.lineno} imports {name}")
    return found


def test_the_layers_hold():
    assert forbidden_imports(ROOT) == []


def test_the_contract_catches_a_forbidden_import(tmp_path):
    for package in FORBIDDEN:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("zoo", "data", "__pycache__"))
    bad = tmp_path / "lpm_zoo" / "space.py"
    bad.write_text(bad.read_text() + "\n\ndef _f():\n    from backends.registry import get_backend\n")
    (tmp_path / "search" / "x.py").write_text("import backends.profiler as p\n")
    (tmp_path / "backends" / "y.py").write_text("from lpm_openvino.backend import OpenVinoBackend\n")
    assert forbidden_imports(tmp_path) == [
        f"lpm_zoo/space.py:{len(bad.read_text().splitlines())} imports backends.registry",
        "search/x.py:1 imports backends.profiler",
        "backends/y.py:1 imports lpm_openvino.backend",
    ]


def test_the_plugins_in_this_repository_are_forbidden_to_the_core():
    assert "lpm_openvino" in PLUGINS
