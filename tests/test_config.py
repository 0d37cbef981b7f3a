"""Config loading: defaults, and a clear file:line: field: message for every kind of mistake."""

from __future__ import annotations

import pytest

from config import ConfigError, ServerConfig
from streams.build import load_config
from support import REPLY, ROOT, STATS_TEMPLATE, base_config, stream_config, write_config


def line_of(path, text: str) -> int:
    """The 1-based number of the first line of a file containing ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def problems(tmp_path, data) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, data))
    return caught.value.problems


def test_shipped_config_loads_and_reproduces_the_seed_stream():
    config = load_config(ROOT / "config.yaml")
    stats = config.streams[0]
    assert (stats.name, stats.path, stats.source, stats.interval_ms) == ("stats", "/", "random", 3000)
    assert stats.reply == REPLY and stats.send_on_connect and stats.timeline == "per-client"
    assert stats.template == STATS_TEMPLATE
    assert config.sources["replay"].length >= 20
    assert config.settings.server.port == 3030 and config.settings.server.host == "127.0.0.1"


def test_omitted_keys_take_their_documented_defaults(tmp_path):
    config = load_config(write_config(tmp_path, {"streams": [
        {"name": "s", "path": "/", "source": "random", "template": {"a": 1}}]}))
    stream = config.streams[0]
    assert (stream.interval_ms, stream.timeline, stream.send_on_connect, stream.reply, stream.loop) == \
        (3000, "per-client", True, None, True)
    assert config.settings.echo.path == "/echo"
    server = config.settings.server
    assert (server.host, server.port, server.allowed_origins) == ("127.0.0.1", 3030, ("*",))


def test_a_control_character_is_a_yaml_error_with_its_line_not_a_crash(tmp_path):
    [problem] = problems(tmp_path, "server:\n  port: 3030\nstreams:\n  - name: a\x07b\n")
    assert problem == (f"{tmp_path / 'config.yaml'}:4: invalid YAML: character U+0007 is not allowed in YAML "
                       "(a control character?)")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    [problem] = problems(tmp_path, "server:\n  port: 3030\nstreams:\n  - name: [unclosed\n")
    assert problem.startswith(f"{tmp_path / 'config.yaml'}:")
    assert "invalid YAML" in problem
    assert problem.split(":")[1] in ("4", "5")  # the unclosed list or the end of the file


def test_wrong_value_names_line_field_expectation_and_value(tmp_path):
    data = base_config()
    stream_config(data, "replay")["interval_ms"] = -5
    [problem] = problems(tmp_path, data)
    line = line_of(tmp_path / "config.yaml", "interval_ms: -5")
    assert problem == f"{tmp_path / 'config.yaml'}:{line}: streams[1].interval_ms: must be an integer >= 1, got -5"


def test_typo_in_a_key_is_an_error_with_a_suggestion(tmp_path):
    data = base_config()
    stream_config(data, "stats")["intervall_ms"] = 100
    [problem] = problems(tmp_path, data)
    assert "streams[0].intervall_ms: unknown key; did you mean 'interval_ms'?" in problem


def test_all_problems_are_reported_at_once(tmp_path):
    data = base_config()
    stream_config(data, "stats")["timeline"] = "global"
    stream_config(data, "replay")["loop"] = "sometimes"
    data["server"]["port"] = "http"
    found = problems(tmp_path, data)
    assert len(found) == 3
    assert any("streams[0].timeline: must be one of 'per-client' or 'shared', got 'global'" in p for p in found)
    assert any("streams[1].loop: must be true or false" in p for p in found)
    assert any("server.port: must be an integer, got 'http'" in p for p in found)


def test_duplicate_names_and_paths_are_errors(tmp_path):
    data = base_config()
    data["streams"].append(dict(stream_config(data, "stats"), path="/other"))
    data["streams"].append(dict(stream_config(data, "stats"), name="third", path="/echo"))
    found = problems(tmp_path, data)
    assert any("streams[2].name: duplicate stream name 'stats' (also streams[0])" in p for p in found)
    assert any("streams[3].path: duplicate path '/echo' (also echo.path)" in p for p in found)


def test_reserved_paths_are_errors(tmp_path):
    data = base_config()
    stream_config(data, "replay")["path"] = "/api/x"
    [problem] = problems(tmp_path, data)
    assert "streams[1].path: '/api/x' is reserved" in problem


def test_missing_mock_file_names_the_field_and_the_file(tmp_path):
    data = base_config()
    stream_config(data, "replay")["file"] = "nope.json"
    [problem] = problems(tmp_path, data)
    assert "streams[1].file:" in problem and "nope.json: file not found" in problem


def test_mock_file_with_bad_json_gives_line_and_column(tmp_path):
    (tmp_path / "bad.json").write_text('[\n  {"a": 1},\n  {"a": 2,}\n]\n')
    data = base_config()
    stream_config(data, "replay")["file"] = "bad.json"
    [problem] = problems(tmp_path, data)
    assert f"streams[1].file: {tmp_path / 'bad.json'}:3:" in problem and "invalid JSON" in problem


@pytest.mark.parametrize("name, content", [("empty.json", ""), ("empty.json", "[]"), ("empty.jsonl", "\n\n")])
def test_empty_replay_file_is_an_error(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    data = base_config()
    stream_config(data, "replay")["file"] = name
    [problem] = problems(tmp_path, data)
    assert "no frames to replay" in problem


def test_unknown_generator_names_its_place_in_the_template(tmp_path):
    data = base_config()
    stream_config(data, "stats")["template"] = {"face": {"toadyValue": {"$rnd": [0, 1]}}}
    [problem] = problems(tmp_path, data)
    assert "streams[0].template.face.toadyValue.$rnd: unknown generator '$rnd'" in problem
    line = line_of(tmp_path / "config.yaml", "$rnd:")
    assert f":{line}:" in problem


def test_source_without_its_data_is_an_error(tmp_path):
    data = base_config()
    del stream_config(data, "stats")["template"]
    del stream_config(data, "replay")["file"]
    found = problems(tmp_path, data)
    assert any("streams[0].template: is required when source is random" in p for p in found)
    assert any("streams[1].file: is required when source is replay" in p for p in found)


def test_a_stream_may_carry_template_and_file_and_source_picks_one(tmp_path):
    data = base_config()
    stream_config(data, "stats")["file"] = "data-coll.json"
    stream_config(data, "stats")["source"] = "replay"
    config = load_config(write_config(tmp_path, data))
    assert config.sources["stats"].length == 30


def test_config_that_is_not_a_mapping_is_an_error(tmp_path):
    [problem] = problems(tmp_path, "- just\n- a list\n")
    assert "the config must be a mapping" in problem


def test_origin_patterns():
    server = ServerConfig(allowed_origins=("http://localhost:*", "https://app.example.com"))
    assert server.origin_allowed("http://localhost:5173")
    assert server.origin_allowed("HTTPS://APP.EXAMPLE.COM")
    assert not server.origin_allowed("https://evil.example.com")


def test_a_float_key_given_a_negative_integer_asks_for_a_number(tmp_path):
    data = base_config()
    data["server"]["ping_interval_s"] = -1
    [problem] = problems(tmp_path, data)
    assert problem.endswith("server.ping_interval_s: must be a number >= 0, got -1")


def test_a_bad_field_and_a_bad_template_in_the_same_stream_are_both_reported(tmp_path):
    data = base_config()
    stats = stream_config(data, "stats")
    stats["interval_ms"] = -5
    stats["template"] = {"n": {"$intt": [0, 9]}}
    found = problems(tmp_path, data)
    config_file = tmp_path / "config.yaml"
    assert len(found) == 2, found
    assert f"{config_file}:{line_of(config_file, 'interval_ms: -5')}: streams[0].interval_ms: must be" in found[0]
    assert found[1].startswith(f"{config_file}:{line_of(config_file, '$intt')}: streams[0].template.n")
    assert "'$int'" in found[1]  # the suggestion


@pytest.mark.parametrize(("key", "value", "belongs"), [
    ("timeline", "shared", "streams[].timeline"),
    ("ping_interval_s", 5, "server.ping_interval_s"),
    ("drop_rate", 0.1, "streams[].faults.drop_rate"),
])
def test_a_key_at_the_wrong_level_says_where_it_belongs(tmp_path, key, value, belongs):
    data = base_config()
    data[key] = value
    [problem] = problems(tmp_path, data)
    assert problem.endswith(f": {key}: unknown key at this level; it belongs at {belongs}")


def test_a_stream_key_misplaced_in_server_says_where_it_belongs(tmp_path):
    data = base_config()
    data["server"]["interval_ms"] = 100
    [problem] = problems(tmp_path, data)
    assert problem.endswith(": server.interval_ms: unknown key at this level; it belongs at streams[].interval_ms "
                            "or asyncapi.interval_ms")



def test_cluster_needs_a_redis_url(tmp_path):
    data = base_config()
    data["cluster"] = {"redis": "127.0.0.1:6379", "name": "x"}
    found = problems(tmp_path, data)
    assert len(found) == 1 and "cluster.redis: must be a Redis URL such as redis://127.0.0.1:6379/0" in found[0]
    data["cluster"] = {"redis": "redis://127.0.0.1:6379/0"}
    assert load_config(write_config(tmp_path, data)).settings.cluster.name == "mockws"


def test_more_than_one_worker_needs_a_cluster(tmp_path):
    data = base_config()
    data["server"]["workers"] = 2
    found = problems(tmp_path, data)
    assert len(found) == 1 and "server.workers: workers: 2 needs a cluster: block" in found[0]
    data["cluster"] = {"redis": "redis://127.0.0.1:6379/0"}
    assert load_config(write_config(tmp_path, data)).settings.server.workers == 2
