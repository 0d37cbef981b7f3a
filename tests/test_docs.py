"""The docs stay true: every config key documented once with its real default, a short README, no dead links."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from config import (
    ActionConfig,
    AsyncApiConfig,
    AuthConfig,
    CloseConfig,
    ClusterConfig,
    EchoConfig,
    EndpointConfig,
    FaultsConfig,
    MatchConfig,
    ParamConfig,
    RuleConfig,
    ServerConfig,
    Settings,
    SnapshotConfig,
    SocketIoConfig,
    StreamConfig,
    SubscribeConfig,
    TlsConfig,
    UnsubscribeConfig,
)
from support import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIG_DOC = DOCS / "configuration.md"
README_MAX_LINES = 200


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's type refers to: `X`, `X | None`, `tuple[X, ...]`, ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in models_in(arg)]


def config_blocks() -> dict[str, type[BaseModel]]:
    """Every model of the config schema by the key that holds it ('' for the file's top level).

    Found by walking the fields' types from Settings, so a new nested block is checked without
    changing this test."""
    blocks: dict[str, type[BaseModel]] = {}

    def walk(model: type[BaseModel], key: str) -> None:
        if model in blocks.values():
            return
        assert key not in blocks, f"two config blocks are called {key!r}; the docs could not tell them apart"
        blocks[key] = model
        for name, field in model.model_fields.items():
            for nested in models_in(field.annotation):
                walk(nested, name)

    walk(Settings, "")
    return blocks


def prose_lines(path: Path) -> list[str]:
    """A markdown file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def documented_keys() -> list[tuple[str, str, str]]:
    """(block, key, default cell) for each table row of docs/configuration.md whose first cell is a `key`.

    A row belongs to the block named in backticks in the heading above it (`server`, `faults`, ...);
    rows under a heading without one are top-level keys."""
    rows, block = [], ""
    for line in prose_lines(CONFIG_DOC):
        if line.startswith("#"):
            named = re.search(r"`(\w+)`", line)
            block = named.group(1) if named else ""
        elif line.startswith("|"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            key = re.fullmatch(r"`(\w+)`", cells[0])
            if key:
                rows.append((block, key.group(1), cells[1]))
    return rows


def test_the_schema_walk_finds_every_config_block():
    assert set(config_blocks().values()) == {Settings, ServerConfig, TlsConfig, StreamConfig, EchoConfig,
                                             FaultsConfig, AuthConfig, EndpointConfig, RuleConfig, MatchConfig,
                                             ActionConfig, SubscribeConfig, UnsubscribeConfig, SnapshotConfig,
                                             CloseConfig, SocketIoConfig, ClusterConfig, AsyncApiConfig,
                                             ParamConfig}


def keys_of(model: type[BaseModel]) -> dict[str, Any]:
    """A block's keys as a config file spells them (a field's alias: `json`, not `subset`), with their fields."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def test_every_config_key_is_documented_exactly_once():
    expected = Counter((block, key) for block, model in config_blocks().items() for key in keys_of(model))
    documented = Counter((block, key) for block, key, _ in documented_keys())
    missing = [f"{block}.{key}".lstrip(".") for block, key in expected - documented]
    extra = [f"{block}.{key}".lstrip(".") for block, key in documented - expected]
    assert not missing, f"config keys missing from {CONFIG_DOC.name}: {missing}"
    assert not extra, f"{CONFIG_DOC.name} documents keys twice or keys the schema does not have: {extra}"


def test_documented_defaults_are_the_schema_defaults():
    """A default cell is `required`, or the default as a backticked YAML value (prose only for a nested block)."""
    blocks = config_blocks()
    for block, key, cell in documented_keys():
        field = keys_of(blocks[block]).get(key) if block in blocks else None
        if field is None:
            continue  # not a key of the schema: test_every_config_key_is_documented_exactly_once says so
        where = f"{CONFIG_DOC.name}: {block + '.' if block else ''}{key}"
        if field.is_required():
            assert cell == "required", f"{where}: is required, documented default {cell!r}"
            continue
        value = re.fullmatch(r"`([^`]*)`", cell)
        if value is None:
            assert isinstance(field.default, BaseModel), f"{where}: default must be a `value`, got {cell!r}"
            continue
        assert yaml.safe_load(value.group(1)) == to_jsonable_python(field.default), (
            f"{where}: documented default {cell}, the schema's is {to_jsonable_python(field.default)!r}")


def test_readme_stays_a_short_front_door():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference material into docs/"


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings: lower case, punctuation dropped, spaces as '-'."""
    anchors = set()
    for line in prose_lines(path):
        heading = re.match(r"#+\s+(.*)", line)
        if heading:
            text = heading.group(1).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def relative_links(path: Path) -> list[str]:
    """The targets of a markdown file's links and images that are not URLs, outside code."""
    targets = []
    for line in prose_lines(path):
        line = re.sub(r"`[^`]*`", "", line)  # code spans, e.g. [min, max]
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                targets.append(target)
    return targets


DOC_FILES = [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("doc", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_relative_links_point_to_existing_files_and_headings(doc: Path):
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: {broken}"


def test_link_checker_sees_links_images_and_anchors():
    """The checker itself: it must find what the docs link to, or the test above proves nothing."""
    readme_links = relative_links(README)
    assert "docs/screenshot.png" in readme_links
    assert "docs/configuration.md" in readme_links
    assert "#faults-per-stream" in relative_links(CONFIG_DOC)
    assert "faults-per-stream" in heading_anchors(CONFIG_DOC)


def test_the_import_graph_in_the_docs_is_current():
    """docs/development.md shows what scripts/import_graph.py reads from the code today."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from import_graph import import_graph, mermaid  # noqa: PLC0415 - a script, not a test dependency

    assert mermaid(import_graph()) in (DOCS / "development.md").read_text(encoding="utf-8"), \
        "the import graph changed: paste the output of python3 scripts/import_graph.py into docs/development.md"


def readme_yaml_blocks() -> list[str]:
    """The README's ```yaml blocks, as written."""
    return re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_readmes_whole_config_examples_load_and_render(tmp_path):
    """What a new user pastes: the realistic-data config and the AsyncAPI document serve as they are, and the
    scaling-out settings load."""
    sys.path.insert(0, str(ROOT))
    from random import Random  # noqa: PLC0415

    from streams.build import load_config  # noqa: PLC0415

    configs = [block for block in readme_yaml_blocks() if block.lstrip().startswith(("faker_locale", "streams:"))]
    documents = [block for block in readme_yaml_blocks() if block.startswith("asyncapi: 3")]
    assert len(configs) == 1 and len(documents) == 1
    (tmp_path / "config.yaml").write_text(configs[0], encoding="utf-8")
    config = load_config(tmp_path / "config.yaml")
    source = config.sources[config.streams[0].name]
    frame = source.frame(0, source.new_state(), Random(1))
    assert {"car", "face", "wifi", "alarm"} <= set(yaml.safe_load(frame.data))
    (tmp_path / "asyncapi.yaml").write_text(documents[0], encoding="utf-8")
    (tmp_path / "mock.yaml").write_text("asyncapi: {file: asyncapi.yaml, interval_ms: 200}\n", encoding="utf-8")
    assert any(s.path == "/v1/marketdata/{symbol}" for s in load_config(tmp_path / "mock.yaml").streams)
    [scaling] = [block for block in readme_yaml_blocks() if block.startswith("server:")]
    (tmp_path / "config.yaml").write_text(configs[0] + scaling, encoding="utf-8")
    settings = load_config(tmp_path / "config.yaml").settings
    assert settings.server.workers == 2 and settings.cluster.redis == "redis://127.0.0.1:6379/0"
