"""$faker: realistic values from Faker, per locale, reproducible with a seed, and every mistake found at load time."""

from __future__ import annotations

import base64
import json
import re
from random import Random

import pytest

from config import ConfigError
from streams.build import load_config, stream_rng
from streams.fake import POOL_SIZE
from streams.rules import Context, Message
from streams.template import compile_template
from support import read_json, write_config

CJK = re.compile(r"[\u4e00-\u9fff]")


def frames(template, n, seed=1, locale="en_US"):
    compiled = compile_template(template, faker_locale=locale)
    state, rng = compiled.new_state(), Random(seed)
    return [json.loads(compiled.render(state, rng)) for _ in range(n)]


def random_stream(template, **settings):
    return {"name": "s", "path": "/", "source": "random", "template": template, **settings}


def stream_frames(tmp_path, data, n, name="s"):
    """``n`` frames of one timeline of a stream, loaded from a written config like the server does."""
    config = load_config(write_config(tmp_path, data))
    source = config.sources[name]
    state, rng = source.new_state(), stream_rng(config.settings.random_seed, name)
    return [json.loads(source.frame(i, state, rng).data) for i in range(n)]


def problems(tmp_path, data) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, data))
    return caught.value.problems


def line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_method_name_renders_a_realistic_value():
    plates = [f["plate"] for f in frames({"plate": {"$faker": "license_plate"}}, 50)]
    assert all(isinstance(p, str) and 4 <= len(p) <= 10 for p in plates)
    assert len(set(plates)) > 40


def test_keyword_arguments_go_to_the_method():
    values = [f["v"] for f in frames({"v": {"$faker": ["pyfloat", {"min_value": 0, "max_value": 100,
                                                                     "right_digits": 2}]}}, 300)]
    assert all(0 <= v <= 100 and round(v, 2) == v for v in values)


def test_mac_addresses_and_names_nest_anywhere_in_the_template():
    [frame] = frames({"wifi": [{"mac": {"$faker": "mac_address"}}], "face": {"who": {"$faker": "name"}}}, 1)
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", frame["wifi"][0]["mac"])
    assert re.fullmatch(r"[A-Za-z.' -]+", frame["face"]["who"])


def test_the_locale_picks_the_language_of_names_and_plates():
    [frame] = frames({"who": {"$faker": "name"}, "plate": {"$faker": "license_plate"}}, 1, locale="zh_CN")
    assert CJK.search(frame["who"]) and CJK.search(frame["plate"])


def test_a_seeded_config_sends_the_same_values_run_after_run(tmp_path):
    data = {"streams": [random_stream({"who": {"$faker": "name"}, "plate": {"$faker": "license_plate"}})],
            "random_seed": 42}
    first = stream_frames(tmp_path, data, 20)
    assert stream_frames(tmp_path, data, 20) == first  # a fresh load: a new process would do the same
    data["random_seed"] = 43
    assert stream_frames(tmp_path, data, 20) != first


def test_stream_locale_overrides_the_top_level_one_which_defaults_to_en_us(tmp_path):
    template = {"who": {"$faker": "name"}}
    data = {"streams": [random_stream(template), random_stream(template, name="cn", path="/cn",
                                                                faker_locale="zh_CN")], "random_seed": 1}
    assert not any(CJK.search(f["who"]) for f in stream_frames(tmp_path, data, 10))
    assert all(CJK.search(f["who"]) for f in stream_frames(tmp_path, data, 10, name="cn"))
    data["faker_locale"] = "ja_JP"
    data["streams"][1]["faker_locale"] = "en_US"
    assert all(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", f["who"]) for f in stream_frames(tmp_path, data, 10))
    assert not any(CJK.search(f["who"]) for f in stream_frames(tmp_path, data, 10, name="cn"))


@pytest.mark.config(stats={"template": {"who": {"$faker": "name"}, "plate": {"$faker": "license_plate"}}})
@pytest.mark.gen_test
async def test_per_client_timelines_each_get_their_own_sequence(ws_connect):
    first, second = await ws_connect("/"), await ws_connect("/")
    a = [await read_json(first) for _ in range(4)]
    b = [await read_json(second) for _ in range(4)]
    assert a != b
    assert all(set(frame) == {"who", "plate"} for frame in a + b)


def test_values_that_are_not_json_types_are_converted():
    [frame] = frames({"day": {"$faker": "date_object"}, "when": {"$faker": "date_time"},
                      "price": {"$faker": ["pydecimal", {"left_digits": 3, "right_digits": 2}]},
                      "blob": {"$faker": ["binary", {"length": 6}]},
                      "tags": {"$faker": ["pyset", {"nb_elements": 3, "allowed_types": [str]}]}}, 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", frame["day"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?", frame["when"])
    assert isinstance(frame["price"], (int, float))
    assert len(base64.b64decode(frame["blob"])) == 6
    assert isinstance(frame["tags"], list) and frame["tags"] == sorted(frame["tags"], key=json.dumps)


def test_a_field_draws_from_a_pool_of_at_most_pool_size_values():
    """The documented trade-off: values repeat within a field, so a frame costs a draw, not a Faker call."""
    values = {f["v"] for f in frames({"v": {"$faker": "uuid4"}}, POOL_SIZE * 6)}
    assert POOL_SIZE * 0.95 < len(values) <= POOL_SIZE


def test_an_unknown_method_is_a_config_error_with_its_line_and_a_suggestion(tmp_path):
    [problem] = problems(tmp_path, {"streams": [random_stream({"car": {"plate": {"$faker": "licence_plate"}}})]})
    line = line_of(tmp_path / "config.yaml", "licence_plate")
    assert problem.startswith(f"{tmp_path / 'config.yaml'}:{line}: streams[0].template.car.plate.$faker: "
                              "unknown Faker method 'licence_plate'; did you mean 'license_plate'?")


def test_an_unknown_argument_names_it_and_lists_the_valid_ones(tmp_path):
    [problem] = problems(tmp_path, {"streams": [random_stream({"v": {"$faker": ["pyfloat", {"min_valu": 1}]}})]})
    assert "streams[0].template.v.$faker[1].min_valu: unknown argument 'min_valu' of pyfloat; " \
           "did you mean 'min_value'? (pyfloat takes: left_digits, right_digits, positive, min_value, max_value)" \
           in problem


def test_arguments_the_method_refuses_are_found_by_trying_it_once(tmp_path):
    [problem] = problems(tmp_path, {"streams": [random_stream(
        {"v": {"$faker": ["pyfloat", {"min_value": 10, "max_value": 1}]}})]})
    assert "streams[0].template.v.$faker[1]: pyfloat(min_value=10, max_value=1) failed when tried: ValueError" \
           in problem


def test_a_method_whose_value_is_not_json_is_refused(tmp_path):
    [problem] = problems(tmp_path, {"streams": [random_stream({"tz": {"$faker": "pytimezone"}})]})
    assert "streams[0].template.tz.$faker: pytimezone returns" in problem and "cannot be sent as JSON" in problem


def test_fakers_own_machinery_cannot_be_called(tmp_path):
    for name in ("seed", "seed_instance", "add_provider", "set_formatter"):
        [problem] = problems(tmp_path, {"streams": [random_stream({"v": {"$faker": name}})]})
        assert f"unknown Faker method {name!r}" in problem


def test_a_malformed_faker_generator_says_what_it_takes(tmp_path):
    [problem] = problems(tmp_path, {"streams": [random_stream({"v": {"$faker": {"method": "name"}}})]})
    assert "$faker takes a method name (license_plate) or [method, {arguments}]" in problem


def test_an_unknown_locale_is_a_config_error_with_a_suggestion(tmp_path):
    found = problems(tmp_path, {"faker_locale": "zh_cn", "streams": [
        random_stream({"v": 1}, faker_locale="en-GB"), random_stream({"v": 1}, name="t", path="/t")]})
    config = tmp_path / "config.yaml"
    assert f"{config}:1: faker_locale: unknown Faker locale 'zh_cn'; did you mean 'zh_CN'?" in found[0]
    assert f"{config}:{line_of(config, 'en-GB')}: streams[0].faker_locale: unknown Faker locale 'en-GB'; " \
           "did you mean 'en_GB'?" in found[1]
    assert len(found) == 2


def test_rule_replies_use_the_locale_of_their_stream_or_else_the_top_level_one(tmp_path):
    who = {"reply": {"who": {"$faker": "name"}}}
    data = {"faker_locale": "zh_CN", "random_seed": 1,
            "streams": [random_stream({"n": 1}, fallback=[who]),
                        random_stream({"n": 1}, name="us", path="/us", faker_locale="en_US", fallback=[who])],
            "endpoints": [{"path": "/ask", "fallback": [who]}]}
    config = load_config(write_config(tmp_path, data))

    def names(path):
        [reply] = config.rules[path].answer(Message("hi", False)).replies
        state = reply.new_state()
        return [json.loads(reply.render(Context(), state, Random(seed)))["who"] for seed in range(5)]

    assert all(CJK.search(name) for name in names("/ask") + names("/"))
    assert not any(CJK.search(name) for name in names("/us"))
