"""The core's shape, read from its source with ``ast``: no import circle among the cifarmix modules (imports inside
functions count: they hide a circle, they do not break it), no Streamlit in the core, and callbacks that see a run
only through their recorder."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "cifarmix"


def module_name(path: Path) -> str:
    """``cifarmix/store/db.py`` -> ``cifarmix.store.db``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(CORE.rglob("*.py"))}


def package_of(path: Path) -> str:
    """The package a core file's relative imports start from."""
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_names(path: Path, package: str) -> list[str]:
    """Every dotted name a file imports, anywhere in it, relative imports made absolute from ``package``:
    ``from cifarmix import a`` gives ``cifarmix.a``, ``from cifarmix.store import RunStore`` ``cifarmix.store.RunStore``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..paths import y
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def import_graph() -> dict[str, set[str]]:
    """Each cifarmix module -> the cifarmix modules it imports (the longest module each imported name starts with)."""
    modules = core_modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        for target in imported_names(path, package_of(path)):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target not in (name, "cifarmix"):
                edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path (first module repeated at the end), or None."""
    done, path = set(), []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's layer: 0 imports no cifarmix module, n imports only modules below n (an acyclic graph)."""
    depth: dict[str, int] = {}

    def layer(module: str) -> int:
        if module not in depth:
            depth[module] = 1 + max((layer(target) for target in graph[module]), default=-1)
        return depth[module]

    for module in graph:
        layer(module)
    return depth


def test_the_graph_reader_sees_imports_inside_functions_and_relative_ones(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("import os\nfrom cifarmix import paths\nfrom .db import connect\n\n\n"
                      "def late():\n    from cifarmix.store import RunStore\n")
    assert imported_names(source, "cifarmix.store") == ["os", "cifarmix.paths", "cifarmix.store.db.connect",
                                                        "cifarmix.store.RunStore"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_modules_import_each_other_without_a_circle():
    graph = import_graph()
    assert {"cifarmix.training", "cifarmix.callbacks", "cifarmix.jobs", "cifarmix.config"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_lowest_layers_import_no_heavier_module():
    graph = import_graph()
    depth = layers(graph)
    for module in ("cifarmix.heads", "cifarmix.paths", "cifarmix.processes"):
        assert graph[module] <= {"cifarmix.paths"}, f"{module} imports {sorted(graph[module])}"
    assert depth["cifarmix.config"] < depth["cifarmix.callbacks"] < depth["cifarmix.training"]
    assert "cifarmix.training" not in graph["cifarmix.jobs"] and "cifarmix.jobs" not in graph["cifarmix.training"]


def test_callbacks_reach_a_run_only_through_their_recorder():
    reached = import_graph()["cifarmix.callbacks"]
    assert not reached & {"cifarmix.training", "cifarmix.store", "cifarmix.jobs"}, sorted(reached)


def test_no_core_module_imports_streamlit():
    for name, path in core_modules().items():
        names = imported_names(path, package_of(path))
        assert not any(n.split(".")[0] == "streamlit" for n in names), f"{name} imports streamlit"
