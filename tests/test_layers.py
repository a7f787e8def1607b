"""The house rule as a contract: `lpm_zoo` imports neither `backends` nor `search`; `search` never
imports `backends`. Every import statement counts, also one inside a function or for type checkers only.

The rooms are the repository's folders; each installs under the import name setup.py's ROOMS gives it
(docs/README.md), so the rules below speak of folders and compare import names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _installed_names() -> dict[str, str]:
    """{folder: import name} of each room: `lpm_zoo/` is `lpm_zoo`; the others as setup.py's ROOMS maps them."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    rooms = next(ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "ROOMS")
    return {"lpm_zoo": "lpm_zoo", **{folder: name for name, folder in rooms.items()}}


PACKAGE = _installed_names()
BACKENDS, SEARCH = PACKAGE["backends"], PACKAGE["search"]
# the packages of the plugin distributions in plugins/ (found through entry points; the core never imports them)
PLUGINS = {d.parent.name for d in ROOT.glob("plugins/*/*/__init__.py")}
# folder -> the packages (import names) its modules may not import
FORBIDDEN = {"lpm_zoo": {BACKENDS, SEARCH} | PLUGINS, "search": {BACKENDS} | PLUGINS, "backends": {SEARCH} | PLUGINS}


def within(name: str, package: str) -> bool:
    """Whether module `name` is `package` or inside it."""
    return name == package or name.startswith(f"{package}.")


def forbidden_imports(root: Path) -> list[str]:
    """`file:line imports X` for every import under `root` that breaks FORBIDDEN."""
    found = []
    for folder, banned in FORBIDDEN.items():
        for file in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                else:
                    continue
                for name in names:
                    if any(within(name, b) for b in banned):
                        found.append(f"{file.relative_to(root)}:{node.lineno} imports {name}")
                        break
    return found


def test_the_layers_hold():
    assert forbidden_imports(ROOT) == []


def test_the_contract_catches_a_forbidden_import(tmp_path):
    for package in FORBIDDEN:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("zoo", "data", "__pycache__"))
    bad = tmp_path / "lpm_zoo" / "space.py"
    bad.write_text(bad.read_text() + f"\n\ndef _f():\n    from {BACKENDS}.registry import get_backend\n")
    (tmp_path / "search" / "x.py").write_text(f"import {BACKENDS}.profiling as p\n")
    (tmp_path / "backends" / "y.py").write_text("from lpm_openvino.backend import OpenVinoBackend\n")
    if "." in SEARCH:  # `from lpm_zoo import search` reaches the room as surely as `import lpm_zoo.search`
        (tmp_path / "lpm_zoo" / "z.py").write_text(f"from {SEARCH.rpartition('.')[0]} import {SEARCH.rpartition('.')[2]}\n")
    assert forbidden_imports(tmp_path) == [
        f"lpm_zoo/space.py:{len(bad.read_text().splitlines())} imports {BACKENDS}.registry",
        *([f"lpm_zoo/z.py:1 imports {SEARCH}"] if "." in SEARCH else []),
        f"search/x.py:1 imports {BACKENDS}.profiling",
        "backends/y.py:1 imports lpm_openvino.backend",
    ]


def test_the_plugins_in_this_repository_are_forbidden_to_the_core():
    assert "lpm_openvino" in PLUGINS


# --- inside each room: no import circle, imports at the top, public names only --------------------------------------
ROOMS = ("lpm_zoo", "backends", "search")
#: third-party modules heavy enough to import inside a function (numpy and up: `lpm --help` loads no numpy)
HEAVY = {"numpy", "torch", "onnx", "onnxruntime", "tensorrt", "ray", "sklearn", "scipy", "matplotlib", "skops",
         "safetensors", "pyarrow", "skimage", "PIL", "tqdm", "openvino", "executorch"}


def module_name(file: Path, root: Path) -> str:
    """The import name of project file `file` (a room's folder installs under its PACKAGE name)."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    parts = PACKAGE[parts[0]].split(".") + parts[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class Imports:
    """Every import statement of the project's modules under `root`: at module level, inside functions, and for
    type checkers only (`if TYPE_CHECKING:`, never run, but two modules naming each other there are still a circle)."""

    def __init__(self, root: Path):
        self.files: dict[str, Path] = {}
        for room in ROOMS:
            for file in sorted((root / room).rglob("*.py")):
                self.files[module_name(file, root)] = file
        self.top: dict[str, list[tuple[str, list[str], int]]] = {}
        self.inner: dict[str, list[tuple[str, list[str], int]]] = {}
        self.typing: dict[str, list[tuple[str, list[str], int]]] = {}
        for mod, file in self.files.items():
            tree = ast.parse(file.read_text(), str(file))
            self.top[mod], self.inner[mod], self.typing[mod] = [], [], []
            self._walk(tree, mod, inside=False)

    def _walk(self, node: ast.AST, mod: str, inside: bool | None) -> None:
        """Sort the imports below `node`: `inside` False at module level, True in a function, None type-checking."""
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                self._walk(child, mod, None)
                continue
            if isinstance(child, ast.Import):
                found = [(a.name, [], child.lineno) for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found = [(child.module, [a.name for a in child.names], child.lineno)]
            else:
                in_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                self._walk(child, mod, None if inside is None else inside or in_function)
                continue
            (self.typing if inside is None else self.inner if inside else self.top)[mod].extend(found)

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
        graph = {m: {p for name, names, _ in self.top[m] + self.inner[m] + self.typing[m]
                     for p in self.project(name, names, False) if p != m}
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
    (tmp_path / "search" / "x.py").write_text(f"from {SEARCH}.options import _SECRET\n")
    (tmp_path / "lpm_zoo" / "notes.py").write_text((ROOT / "lpm_zoo" / "notes.py").read_text()
                                                   + "\n\ndef _g():\n    from lpm_zoo.errors import clip\n")
    # a circle seen only by type checkers is a circle too (base <-> files was one)
    (tmp_path / "lpm_zoo" / "files.py").write_text((ROOT / "lpm_zoo" / "files.py").read_text()
                                                   + "\nif TYPE_CHECKING:\n    from lpm_zoo.paths import cache_dir\n")
    (tmp_path / "lpm_zoo" / "paths.py").write_text((ROOT / "lpm_zoo" / "paths.py").read_text()
                                                   + "\nfrom lpm_zoo.files import open_regular\n")
    imports = Imports(tmp_path)
    assert ["lpm_zoo.errors", "lpm_zoo.notes"] in imports.cycles()
    assert ["lpm_zoo.files", "lpm_zoo.paths"] in imports.cycles()
    errors_end = len((tmp_path / "lpm_zoo" / "errors.py").read_text().splitlines())
    assert f"lpm_zoo/errors.py:{errors_end} imports lpm_zoo.notes" in light_inner_imports(imports, tmp_path)
    assert private_imports(imports, tmp_path) == [f"search/x.py:1 imports {SEARCH}.options._SECRET"]


# --- every built-in is an entry point, and the other way round ----------------------------------------------------
def _decorated(root: Path, decorator: str) -> dict[str, str]:
    """{registered name: "module:Class"} of every class under the rooms decorated with `@decorator("name")`."""
    found = {}
    for room in ROOMS:
        for file in sorted((root / room).rglob("*.py")):
            module = module_name(file, root)
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
            module = module_name(file, root)
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
    from lpm_zoo.backends.registry import _REGISTRY as backends
    from lpm_zoo.predictors.registry import _TYPES as predictors

    for registry, group in ((predictors, "lpm_zoo.predictors"), (backends, "lpm_zoo.backends")):
        assert set(registry.builtins) == {v.split(":")[0] for v in groups[group].values()}
