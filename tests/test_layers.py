"""The layers point one way: config -> domain -> hub -> transport/handlers -> app -> CLI, with no cycle.

Read from the source (``ast``), so a new module or import is checked without changing this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

from support import ROOT

# lower layers never import higher ones; the transport knows nothing of the domain
LAYERS = {
    "config": 0,
    "streams": 1,  # the domain: templates, sources, clock, streams, faults, build
    "streams.hub": 2,
    "transport": 3,
    "handlers": 4,
    "app": 5,
    "reload": 5,
    "record": 6,
    "server": 6,
}
PACKAGES = ("streams", "transport", "handlers")


def project_modules() -> dict[str, Path]:
    """Every product module by dotted name (tests, scripts and bench are not product code)."""
    modules = {path.stem: path for path in ROOT.glob("*.py")}
    for package in PACKAGES:
        modules.update({f"{package}.{path.stem}": path for path in (ROOT / package).glob("*.py")
                        if path.stem != "__init__"})
    return modules


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports (at module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def layer(module: str) -> int:
    """The layer of a module: its own entry, else its package's."""
    return LAYERS.get(module, LAYERS.get(module.split(".")[0], -1))


def test_every_module_has_a_layer():
    assert [m for m in project_modules() if layer(m) < 0] == []


def test_no_module_imports_a_higher_layer():
    modules = project_modules()
    upward = [f"{module} -> {imported}" for module, path in modules.items()
              for imported in imports_of(path, set(modules)) if layer(imported) > layer(module)]
    assert upward == []


def test_the_config_schema_imports_nothing_else_of_the_project():
    modules = project_modules()
    assert imports_of(modules["config"], set(modules)) == set()


def test_the_transport_imports_nothing_of_the_domain_or_the_handlers():
    modules = project_modules()
    for name in (m for m in modules if m.startswith("transport.")):
        assert {i for i in imports_of(modules[name], set(modules)) if not i.startswith("transport")} == set(), name


def test_there_is_no_import_cycle():
    modules = project_modules()
    graph = {module: imports_of(path, set(modules)) for module, path in modules.items()}
    visiting, done, cycles = set(), set(), []

    def visit(module: str, trail: list[str]) -> None:
        if module in visiting:
            cycles.append(" -> ".join(trail[trail.index(module):] + [module]))
            return
        if module in done:
            return
        visiting.add(module)
        for imported in sorted(graph[module]):
            visit(imported, trail + [module])
        visiting.discard(module)
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []
