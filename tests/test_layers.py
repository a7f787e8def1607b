"""The house rule as a contract: `lpm_zoo` imports neither `backends` nor `search`; `search` never
imports `backends`. Every import statement counts, also one inside a function."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    (tmp_path / "search" / "x.py").write_text("import backends.profiling as p\n")
    (tmp_path / "backends" / "y.py").write_text("from lpm_openvino.backend import OpenVinoBackend\n")
    assert forbidden_imports(tmp_path) == [
        f"lpm_zoo/space.py:{len(bad.read_text().splitlines())} imports backends.registry",
        "search/x.py:1 imports backends.profiling",
        "backends/y.py:1 imports lpm_openvino.backend",
    ]


def test_the_plugins_in_this_repository_are_forbidden_to_the_core():
    assert "lpm_openvino" in PLUGINS


# --- inside each room: no import circle, imports at the top, public names only --------------------------------------
ROOMS = ("lpm_zoo", "backends", "search")
#: third-party modules heavy enough to import inside a function (numpy and up: `lpm --help` loads no numpy)
HEAVY = {"numpy", "torch", "onnx", "onnxruntime", "tensorrt", "ray", "sklearn", "scipy", "matplotlib", "skops",
         "safetensors", "pyarrow", "skimage", "PIL", "tqdm", "openvino", "executorch"}


class Imports:
    """Every import statement of the project's modules under `root`: at module level, and inside functions."""

    def __init__(self, root: Path):
        self.files: dict[str, Path] = {}
        for room in ROOMS:
            for file in sorted((root / room).rglob("*.py")):
                parts = list(file.relative_to(root).with_suffix("").parts)
                self.files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
        self.top: dict[str, list[tuple[str, list[str], int]]] = {}
        self.inner: dict[str, list[tuple[str, list[str], int]]] = {}
        for mod, file in self.files.items():
            tree = ast.parse(file.read_text(), str(file))
            self.top[mod], self.inner[mod] = [], []
            self._walk(tree, mod, inside=False)

    def _walk(self, node: ast.AST, mod: str, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                continue  # for type checkers only: never run
            if isinstance(child, ast.Import):
                found = [(a.name, [], child.lineno) for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found = [(child.module, [a.name for a in child.names], child.lineno)]
            else:
                self._walk(child, mod, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
                continue
            (self.inner if inside else self.top)[mod].extend(found)

    def project(self, name: str, names: list[str] = (), parents: bool = True) -> list[str]:
        """The project modules an import of `name` (and `names` from it) runs (with `parents`: its packages too)."""
        out = [f"{name}.{n}" for n in names if f"{name}.{n}" in self.files]
        while name and name not in self.files:
            name = name.rpartition(".")[0]
        above = [name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)] if name and parents else []
        return out + ([name] if name else []) + [p for p in above if p in self.files]  # a.b.c runs a and a.b too

    def heavy(self, mod: str, seen: frozenset = frozenset()) -> bool:
        """Whether importing `mod` loads a HEAVY third-party module (at module level, through any project module)."""
        for name, names, _ in self.top[mod]:
            if name.split(".")[0] in HEAVY:
                return True
            if any(m not in seen and m != mod and self.heavy(m, seen | {mod}) for m in self.project(name, names)):
                return True
        return False

    def cycles(self) -> list[list[str]]:
        """Groups of modules that import each other (directly or round a circle), any import counted."""
        graph = {m: {p for name, names, _ in self.top[m] + self.inner[m] for p in self.project(name, names, False) if p != m}
                 for m in self.files}
        reach = {m: set() for m in graph}
        for m in graph:
            todo = list(graph[m])
            while todo:
                n = todo.pop()
                if n not in reach[m]:
                    reach[m].add(n)
                    todo += graph.get(n, ())
        groups = {frozenset({m} | {n for n in reach[m] if m in reach[n]}) for m in graph if m in reach[m]}
        return sorted(sorted(g) for g in groups)


def test_no_import_circle_inside_a_room():
    assert Imports(ROOT).cycles() == []


def light_inner_imports(imports: Imports, root: Path) -> list[str]:
    """`file:line imports X` for each import inside a function of a module that loads nothing HEAVY."""
    return [f"{imports.files[m].relative_to(root)}:{line} imports {name}" for m in imports.files
            for name, names, line in imports.inner[m]
            if name.split(".")[0] not in HEAVY and not any(imports.heavy(p) for p in imports.project(name, names))]


def private_imports(imports: Imports, root: Path) -> list[str]:
    """`file:line imports X._name` for each private name one project module imports from another."""
    return [f"{imports.files[m].relative_to(root)}:{line} imports {name}.{n}" for m in imports.files
            for name, names, line in imports.top[m] + imports.inner[m] for n in names
            if n.startswith("_") and not n.startswith("__") and imports.project(name) and name != m]


def test_imports_inside_functions_are_for_heavy_modules_only():
    """An import inside a function keeps a heavy dependency out of `lpm --help`; anything else goes at the top."""
    assert light_inner_imports(Imports(ROOT), ROOT) == []


def test_lpm_help_loads_neither_numpy_nor_torch():
    """Every command module is imported to build `lpm --help`: what they import at the top must stay light."""
    code = ("import sys; from lpm_zoo.cli import build_parser, discover_commands; "
            "build_parser(discover_commands()); print(sorted(m for m in HEAVY if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", f"HEAVY = {sorted(HEAVY)!r}; {code}"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_no_private_name_is_imported_from_another_module():
    assert private_imports(Imports(ROOT), ROOT) == []


def test_the_contract_catches_a_circle_a_light_inner_import_and_a_private_name(tmp_path):
    for room in ROOMS:
        shutil.copytree(ROOT / room, tmp_path / room, ignore=shutil.ignore_patterns("zoo", "data", "__pycache__"))
    (tmp_path / "lpm_zoo" / "errors.py").write_text((ROOT / "lpm_zoo" / "errors.py").read_text()
                                                    + "\n\ndef _f():\n    from lpm_zoo.notes import note\n")
    (tmp_path / "search" / "x.py").write_text("from search.options import _SECRET\n")
    (tmp_path / "lpm_zoo" / "notes.py").write_text((ROOT / "lpm_zoo" / "notes.py").read_text()
                                                   + "\n\ndef _g():\n    from lpm_zoo.errors import clip\n")
    imports = Imports(tmp_path)
    assert ["lpm_zoo.errors", "lpm_zoo.notes"] in imports.cycles()
    errors_end = len((tmp_path / "lpm_zoo" / "errors.py").read_text().splitlines())
    assert f"lpm_zoo/errors.py:{errors_end} imports lpm_zoo.notes" in light_inner_imports(imports, tmp_path)
    assert private_imports(imports, tmp_path) == ["search/x.py:1 imports search.options._SECRET"]


# --- every built-in is an entry point, and the other way round ----------------------------------------------------
def _decorated(root: Path, decorator: str) -> dict[str, str]:
    """{registered name: "module:Class"} of every class under the rooms decorated with `@decorator("name")`."""
    found = {}
    for room in ROOMS:
        for file in sorted((root / room).rglob("*.py")):
            module = ".".join(file.relative_to(root).with_suffix("").parts)
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                for dec in getattr(node, "decorator_list", []):
                    if isinstance(dec, ast.Call) and getattr(dec.func, "id", "") == decorator:
                        found[dec.args[0].value] = f"{module}:{node.name}"
    return found


def _commands(root: Path) -> set[str]:
    """"module:name" of every module-level `lpm_zoo.cli.Command(...)` in the rooms."""
    found = set()
    for room in ROOMS:
        for file in sorted((root / room).rglob("*.py")):
            module = ".".join(file.relative_to(root).with_suffix("").parts)
            for node in ast.parse(file.read_text(), str(file)).body:
                if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                        and getattr(node.value.func, "id", "") == "Command"):
                    found |= {f"{module}:{t.id}" for t in node.targets}
    return found


def test_every_built_in_is_an_entry_point_and_every_entry_point_a_built_in():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert groups["lpm_zoo.predictors"] == _decorated(ROOT, "register_predictor")
    assert groups["lpm_zoo.backends"] == _decorated(ROOT, "register_backend")
    assert set(groups["lpm_zoo.commands"].values()) == _commands(ROOT)
    # the registries import their built-ins by module name (no pip install needed): the same modules
    from backends.registry import _REGISTRY as backends
    from lpm_zoo.predictors.registry import _TYPES as predictors

    for registry, group in ((predictors, "lpm_zoo.predictors"), (backends, "lpm_zoo.backends")):
        assert set(registry.builtins) == {v.split(":")[0] for v in groups[group].values()}
