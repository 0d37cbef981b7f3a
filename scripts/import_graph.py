#!/usr/bin/env python3
"""The project's module import graph, read from the source with ``ast``, as a mermaid diagram.

    python3 scripts/import_graph.py        # prints the diagram that docs/development.md holds

tests/test_layers.py checks the layer order and cycles with the same reading,
and tests/test_docs.py that docs/development.md shows the current graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "transport", "handlers")
TOP_LEVEL = ("config", "app", "reload", "record", "server", "workers")  # product modules; tests/scripts/bench are not


def project_modules() -> dict[str, Path]:
    """Every product module by dotted name."""
    modules = {name: ROOT / f"{name}.py" for name in TOP_LEVEL}
    for package in PACKAGES:
        modules.update({f"{package}.{path.stem}": path for path in sorted((ROOT / package).glob("*.py"))
                        if path.stem != "__init__"})
    return modules


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports (at module level, inside functions, or for type hints)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = project_modules()
    return {module: imports_of(path, set(modules)) for module, path in modules.items()}


def mermaid(graph: dict[str, set[str]]) -> str:
    """The graph as a mermaid flowchart, one subgraph per package, edges sorted."""
    node = {module: module.replace(".", "_") for module in graph}
    lines = ["flowchart TD"]
    for module in graph:
        if "." not in module:
            lines.append(f'  {node[module]}["{module}.py"]')
    for package in PACKAGES:
        lines.append(f"  subgraph {package}")
        lines += [f'    {node[m]}["{m.split(".")[1]}"]' for m in graph if m.startswith(package + ".")]
        lines.append("  end")
    for module, imported in graph.items():
        if imported:
            lines.append(f"  {node[module]} --> {' & '.join(node[i] for i in sorted(imported))}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(mermaid(import_graph()))
