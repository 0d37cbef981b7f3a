"""The layers point one way: config -> domain -> hub -> transport/handlers -> app -> CLI, with no cycle.

Read from the source (``ast``), so a new module or import is checked without changing this test.
"""

from __future__ import annotations

import sys

from support import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

from import_graph import import_graph  # the same reading as the diagram in docs/development.md

# lower layers never import higher ones; the transport knows nothing of the domain
LAYERS = {
    "config": 0,
    "streams": 1,  # the domain: templates, sources, clock, streams, faults, build
    "streams.hub": 2,
    "streams.conversation": 2,  # a connection's rules and topics, run on the hub
    "streams.cluster": 2,  # the other processes of a cluster, through Redis, for the hub
    "transport": 3,
    "handlers": 4,
    "app": 5,
    "reload": 5,
    "record": 6,
    "server": 6,
    "workers": 6,  # server.workers: the processes server.py starts
}
def layer(module: str) -> int:
    """The layer of a module: its own entry, else its package's."""
    return LAYERS.get(module, LAYERS.get(module.split(".")[0], -1))


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if layer(m) < 0] == []


def test_no_module_imports_a_higher_layer():
    upward = [f"{module} -> {imported}" for module, imports in import_graph().items()
              for imported in imports if layer(imported) > layer(module)]
    assert upward == []


def test_the_config_schema_imports_nothing_else_of_the_project():
    assert import_graph()["config"] == set()


def test_the_transport_imports_nothing_of_the_domain_or_the_handlers():
    for name, imports in import_graph().items():
        if name.startswith("transport."):
            assert {i for i in imports if not i.startswith("transport")} == set(), name


def test_there_is_no_import_cycle():
    graph = import_graph()
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
