"""$schema: every instance is valid (the jsonschema library checks), seeds repeat, bad schemas are config errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from random import Random

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from config import ConfigError
from reload import ConfigWatcher
from streams.build import load_config, stream_rng
from streams.pattern import PatternError, compile_pattern
from streams.schema import SchemaError, compile_schema
from support import read_json, write_config

SCHEMAS = Path(__file__).parent / "schemas"
CORPUS = {name: schema for name, schema in json.loads((SCHEMAS / "corpus.json").read_text()).items()
          if not name.startswith("$")}
FRAMES = 2000


def validator(schema) -> Draft202012Validator:
    """The jsonschema library's validator, formats checked, with shared.json resolvable as corpus.json sees it."""
    shared = Resource.from_contents(json.loads((SCHEMAS / "shared.json").read_text()),
                                    default_specification=DRAFT202012)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER,
                                registry=Registry().with_resource("shared.json", shared))


def instances(schema, n, seed=1):
    """``n`` instances as a client gets them: rendered to JSON text and parsed back."""
    generator, rng = compile_schema(schema, SCHEMAS), Random(seed)
    return [json.loads(generator.render(rng)) for _ in range(n)]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_instance_is_valid_against_its_schema(name):
    check = validator(CORPUS[name])
    invalid = [(value, next(check.iter_errors(value)).message) for value in instances(CORPUS[name], FRAMES)
               if not check.is_valid(value)]
    assert invalid == []


def test_instances_vary_and_a_seed_repeats_them():
    first = instances(CORPUS["alarm"], 50, seed=3)
    assert instances(CORPUS["alarm"], 50, seed=3) == first
    assert instances(CORPUS["alarm"], 50, seed=4) != first
    assert len({json.dumps(value, sort_keys=True) for value in first}) == 50


def test_optional_properties_come_and_go_and_required_ones_are_always_there():
    values = instances(CORPUS["alarm"], 400)
    assert all({"id", "level", "zone", "at", "source"} <= set(value) for value in values)
    for optional in ("temperature", "message", "plate", "tags", "acknowledged", "note"):
        present = sum(optional in value for value in values)
        assert 100 < present < 300, optional


def test_every_enum_value_and_every_one_of_branch_is_drawn():
    values = instances(CORPUS["alarm"], 300)
    assert {value["level"] for value in values} == {"info", "warning", "critical"}
    assert {value["source"]["kind"] for value in values} == {"camera", "sensor"}


def test_examples_and_default_are_sent_about_a_quarter_of_the_time():
    statuses = [value["status"] for value in instances(CORPUS["examples_and_default"], 800)]
    picked = sum(status in ("online", "offline", "unknown") for status in statuses)
    assert 0.15 < picked / len(statuses) < 0.35
    assert {"online", "offline", "unknown"} <= set(statuses)


def test_recursive_schemas_end():
    depths = []

    def depth(node) -> int:
        return 1 + max((depth(child) for child in node.get("children", [])), default=0)
    for value in instances(CORPUS["recursive_tree"], 300):
        depths.append(depth(value))
    assert max(depths) >= 3 and max(depths) <= 8


def test_the_public_api_generates_plain_values_and_validates():
    generator = compile_schema({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    value = generator.generate(Random(1))
    assert isinstance(value, dict) and isinstance(value["n"], int)
    assert generator.accepts({"n": 3}) and not generator.accepts({"n": "3"}) and not generator.accepts({})


@pytest.mark.parametrize("pattern", [r"^[A-Z]{2}-\d{4}$", r"^(ok|warn(ing)?|crit)$", r"\w+@\w+\.(com|org)",
                                     r"^[^\s@]+$", r"a{2,}b*c?", r"^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$",
                                     r"[\]\-a]x", r"\u4e2d{1,3}", r"^(?P<year>\d{4})-\d\d$", r"x{,3}y", r"a|b|"])
def test_strings_from_a_pattern_match_it(pattern):
    generator, regex, rng = compile_pattern(pattern), re.compile(pattern), Random(1)
    assert all(regex.search(generator.generate(rng)) for _ in range(500))


@pytest.mark.parametrize(("pattern", "message"), [
    (r"(a)\1", r"\1 (backreferences, word boundaries, classes by property) is not supported at position 3"),
    (r"(?=a)b", "lookarounds, inline flags and other (?...) groups are not supported at position 0"),
    (r"[z-a]", "bad range z-a at position 1"),
    (r"*a", "nothing to repeat at position 0"),
])
def test_patterns_outside_the_subset_are_refused_with_the_position(pattern, message):
    with pytest.raises(PatternError) as caught:
        compile_pattern(pattern)
    assert message in str(caught.value)


@pytest.mark.parametrize(("schema", "where", "message"), [
    ({"type": "integer", "minimum": 5, "maximum": 1}, "#", "minimum 5 is greater than maximum 1"),
    ({"type": "number", "exclusiveMinimum": 2, "maximum": 2}, "#", "exclusiveMinimum 2 and maximum 2 leave nothing"),
    ({"type": "integer", "minimum": 1, "maximum": 4, "multipleOf": 5}, "#", "no multiple of 5 between 1 and 4"),
    ({"type": "string", "minLength": 3, "maxLength": 2}, "#", "minLength 3 is greater than maxLength 2"),
    ({"type": "string", "pattern": "^a{5}$", "maxLength": 3}, "#", "pattern '^a{5}$' gave no string that also "
                                                                   "meets maxLength 3"),
    ({"properties": {"a": {"not": {"type": "null"}}}}, "#/properties/a/not", "'not' is not supported"),
    ({"if": {}, "then": {}}, "#/if", "'if' is not supported"),
    ({"patternProperties": {"^x": {}}}, "#/patternProperties", "'patternProperties' is not supported"),
    ({"type": "object", "minimun": 3}, "#/minimun", "unknown keyword 'minimun'; did you mean 'minimum'?"),
    ({"type": "strng"}, "#/type", "unknown type 'strng'; did you mean 'string'?"),
    ({"format": "date_time"}, "#/format", "unsupported format 'date_time'; did you mean 'date-time'?"),
    ({"pattern": "(?<=a)b"}, "#/pattern", "cannot generate strings for this pattern"),
    ({"pattern": "a("}, "#/pattern", "not a valid regular expression"),
    ({"items": [{"type": "string"}]}, "#/items", "items as a list"),
    ({"exclusiveMinimum": True, "minimum": 1}, "#/exclusiveMinimum", "is a number (draft 6 and later)"),
    ({"properties": {"a": {"$ref": "#/definitions/Nope"}}, "definitions": {"Note": {}}}, "#/properties/a/$ref",
     "$ref '#/definitions/Nope' does not resolve: no 'Nope' in #/definitions; did you mean 'Note'?"),
    ({"$ref": "https://example.com/s.json"}, "#/$ref", "only references within the schema"),
    ({"$ref": "missing.json#/definitions/A"}, "#/$ref", "file not found: missing.json"),
    ({"type": "string", "enum": [1, 2]}, "#", "no value of enum/const is valid against the other keywords"),
    ({"type": "integer", "examples": [1, "two"]}, "#/examples/1", '"two" is not valid against the schema'),
    ({"oneOf": [{"type": "integer", "maximum": 5}, {"type": "integer", "maximum": 5}]}, "#/oneOf",
     "every value drawn is valid against more than one branch"),
    ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "#", "the types allowed have nothing in common"),
    ({"type": "object", "required": ["a"], "additionalProperties": False}, "#",
     "required property 'a' is not in properties, and additionalProperties is false"),
    ({"$ref": "#/definitions/loop", "definitions": {"loop": {
        "type": "object", "required": ["next"], "properties": {"next": {"$ref": "#/definitions/loop"}}}}},
     "#/definitions/loop", "every way through it recurses"),
    (False, "#", "false: no value is valid here"),
])
def test_a_schema_that_cannot_be_generated_is_refused_with_its_json_pointer(schema, where, message):
    with pytest.raises(SchemaError) as caught:
        compile_schema(schema, SCHEMAS)
    assert caught.value.where == where
    assert message in caught.value.message


# -- through a config file, like a user writes it

def alarm_stream(schema) -> dict:
    return {"name": "alarms", "path": "/alarms", "source": "random", "template": {"alarm": {"$schema": schema}}}


def problems(tmp_path, data) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, data))
    return caught.value.problems


def line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_ref_to_a_file_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "mock").mkdir()
    (tmp_path / "mock" / "shared.json").write_text((SCHEMAS / "shared.json").read_text())
    config = load_config(write_config(tmp_path, {"streams": [alarm_stream(
        {"$ref": "mock/shared.json#/definitions/Camera"})], "random_seed": 5}))
    source, rng = config.sources["alarms"], stream_rng(5, "alarms")
    state, check = source.new_state(), validator({"$ref": "shared.json#/definitions/Camera"})
    frames = [json.loads(source.frame(i, state, rng).data) for i in range(300)]
    assert all(check.is_valid(frame["alarm"]) for frame in frames)
    assert len({frame["alarm"]["id"] for frame in frames}) > 250


def test_a_problem_in_an_inline_schema_names_its_line_path_and_json_pointer(tmp_path):
    schema = {"type": "object", "properties": {"level": {"type": "integer", "minimum": 10, "maximum": 5}}}
    [problem] = problems(tmp_path, {"streams": [alarm_stream(schema)]})
    line = line_of(tmp_path / "config.yaml", "level:")
    assert problem == (f"{tmp_path / 'config.yaml'}:{line}: streams[0].template.alarm.$schema.properties.level: "
                       "minimum 10 is greater than maximum 5 (schema #/properties/level)")


def test_an_unsupported_keyword_is_a_config_error_at_its_line(tmp_path):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "patternProperties": {"^x-": {}}}
    [problem] = problems(tmp_path, {"streams": [alarm_stream(schema)]})
    line = line_of(tmp_path / "config.yaml", "patternProperties")
    assert problem.startswith(f"{tmp_path / 'config.yaml'}:{line}: streams[0].template.alarm.$schema."
                              "patternProperties: 'patternProperties' is not supported")


def test_a_problem_in_a_schema_file_names_the_file_pointer_and_the_ref_that_led_there(tmp_path):
    (tmp_path / "mock").mkdir()
    (tmp_path / "mock" / "schemas.json").write_text(json.dumps({"definitions": {
        "Alarm": {"type": "object", "properties": {"zone": {"$ref": "#/definitions/Zone"}}},
        "Zone": {"type": "integer", "minimum": 1, "maximum": 0}}}))
    [problem] = problems(tmp_path, {"streams": [alarm_stream({"$ref": "mock/schemas.json#/definitions/Alarm"})]})
    line = line_of(tmp_path / "config.yaml", "$ref")
    assert problem == (f"{tmp_path / 'config.yaml'}:{line}: streams[0].template.alarm.$schema.$ref: "
                       "mock/schemas.json#/definitions/Zone: minimum 1 is greater than maximum 0")


def test_a_ref_to_a_missing_file_or_pointer_is_a_config_error(tmp_path):
    (tmp_path / "mock").mkdir()
    (tmp_path / "mock" / "schemas.json").write_text('{"definitions": {"Alarm": {"type": "string"}}}')
    found = problems(tmp_path, {"streams": [
        alarm_stream({"$ref": "mock/schema.json#/definitions/Alarm"}),
        dict(alarm_stream({"$ref": "mock/schemas.json#/definitions/Alarms"}), name="b", path="/b")]})
    assert "streams[0].template.alarm.$schema.$ref: $ref 'mock/schema.json#/definitions/Alarm': " \
           "file not found: mock/schema.json" in found[0]
    assert "streams[1].template.alarm.$schema.$ref: $ref 'mock/schemas.json#/definitions/Alarms' does not " \
           "resolve: no 'Alarms' in mock/schemas.json#/definitions; did you mean 'Alarm'?" in found[1]


# -- live editing: a schema file is watched like a mock file

@pytest.fixture
def mock_files():
    return {"level.json": json.dumps({"enum": ["low"]})}


@pytest.mark.config(stats={"interval_ms": 20, "template": {"level": {"$schema": {"$ref": "level.json"}}}})
@pytest.mark.gen_test
async def test_an_edited_schema_file_applies_to_connected_clients(ws_connect, hub, app_config):
    watcher = ConfigWatcher(app_config, hub.apply, poll_s=0.02, debounce_s=0.05)
    watcher.start()
    try:
        conn = await ws_connect("/")
        assert (await read_json(conn))["level"] == "low"
        (app_config.file.parent / "level.json").write_text(json.dumps({"enum": ["high"]}))
        levels = [(await read_json(conn))["level"] for _ in range(100)]  # 2 s of frames
        assert "high" in levels and levels[levels.index("high"):] == ["high"] * (100 - levels.index("high"))
        assert conn.close_code is None
    finally:
        watcher.stop()
