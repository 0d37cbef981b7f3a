"""Rules and topics: what an endpoint answers to what a client sends, and streams served as topics."""

from __future__ import annotations

import asyncio
import json
import logging
from random import Random

import pytest
from tornado.httpclient import AsyncHTTPClient

from config import ConfigError, MatchConfig, RuleConfig, Settings
from streams.build import load_config
from streams.rules import MAX_REGEX_CHARS, Context, Matcher, Message, MessageTemplate, compile_rules
from streams.sources import Frame, JsonFrame
from support import close_and_wait, pending_timers, read_json, received_until_quiet, until, write_config

TICKS = {"name": "ticks", "source": "random", "interval_ms": 40, "timeline": "shared",
         "template": {"t": {"$seq": True}}}
COUNTS = {"name": "counts", "source": "random", "interval_ms": 40, "template": {"n": {"$seq": True}}}
SUBSCRIBE_RULES = [
    {"match": {"json": {"method": "SUBSCRIBE"}},
     "example": {"method": "SUBSCRIBE", "params": ["counts"], "id": 1},
     "do": [{"subscribe": {"stream": "{{message.params.0}}", "id": "{{message.params.0}}",
                           "envelope": {"stream": {"$stream": True}, "data": {"$frame": True}},
                           "error": {"error": {"$error": True}, "id": {"$message": "id"}}}},
            {"reply": {"result": None, "id": {"$message": "id"}}}]},
    {"match": {"json": {"method": "UNSUBSCRIBE"}},
     "do": [{"unsubscribe": {"id": "{{message.params.0}}"}},
            {"reply": {"result": None, "id": {"$message": "id"}}}]},
    {"match": {"regex": r"^say (?P<word>\w+)"}, "do": [{"reply": "you said {{group.word}} #{{seq}}"}]},
    {"match": {"text": "bye"}, "do": [{"close": {"code": 4000, "reason": "bye {{message}}"}}]},
]
ENDPOINT = {"path": "/ws", "rules": SUBSCRIBE_RULES,
            "fallback": [{"reply": {"error": "unknown method", "id": {"$message": "id"}}}]}
TOPICS = pytest.mark.config(streams=[TICKS, COUNTS], endpoints=[ENDPOINT], echo=None)


async def received_for(conn, seconds: float) -> list:
    """Every message (parsed as JSON when it is) that arrives within ``seconds``; the streams never go quiet."""
    loop = asyncio.get_running_loop()
    deadline, messages = loop.time() + seconds, []
    while (left := deadline - loop.time()) > 0:
        try:
            text = await asyncio.wait_for(conn.read_message(), left)
        except asyncio.TimeoutError:
            break
        if text is None:
            break
        try:
            messages.append(json.loads(text))
        except ValueError:
            messages.append(text)
    return messages


def message(text: str, binary: bool = False) -> Message:
    return Message(text, binary)


def matcher(**match) -> Matcher:
    return Matcher(MatchConfig.model_validate(match))


# -- matching


def test_a_json_subset_matches_objects_holding_its_keys_at_any_depth():
    m = matcher(json={"type": "subscribe", "payload": {"kind": "stats"}})
    assert m.match(message('{"type":"subscribe","id":3,"payload":{"kind":"stats","x":1}}')) == {}
    assert m.match(message('{"type":"subscribe","payload":{"kind":"alarms"}}')) is None
    assert m.match(message('{"type":"subscribe"}')) is None
    assert m.match(message("not json")) is None


def test_json_equality_does_not_confuse_true_and_1():
    assert matcher(json={"on": True}).match(message('{"on":1}')) is None
    assert matcher(json={"n": 1}).match(message('{"n":1.0}')) == {}


def test_a_regex_captures_named_and_numbered_groups():
    groups = matcher(regex=r"^SUBSCRIBE (?P<topic>\w+) (\d+)").match(message("SUBSCRIBE stats 7"))
    assert groups["topic"] == "stats" and groups["2"] == "7" and groups["0"] == "SUBSCRIBE stats 7"


def test_a_regex_looks_at_the_first_max_regex_chars_only():
    m = matcher(regex="needle")
    assert m.match(message("x" * (MAX_REGEX_CHARS - 6) + "needle")) == {"0": "needle"}
    assert m.match(message("x" * MAX_REGEX_CHARS + "needle")) is None


def test_a_field_is_tested_by_equals_or_regex():
    query = matcher(field="payload.query", regex=r"subscription\s*\{\s*(?P<topic>\w+)")
    assert query.match(message('{"payload":{"query":"subscription { stats }"}}'))["topic"] == "stats"
    assert query.match(message('{"payload":{}}')) is None
    first = matcher(field="params.0", equals="stats")
    assert first.match(message('{"params":["stats"]}')) == {}
    assert first.match(message('{"params":["alarms"]}')) is None
    assert matcher(field="a", equals=None).match(message('{"a":null}')) == {}


def test_text_and_binary_are_told_apart():
    assert matcher(binary=True).match(message("x", binary=True)) == {}
    assert matcher(binary=True).match(message("x")) is None
    assert matcher(text="ping").match(message("ping")) == {}
    assert matcher(text="ping").match(message("ping ")) is None


def test_an_event_condition_matches_that_socketio_event_only_and_never_a_websocket_message():
    ping = matcher(event="ping", json={"n": 1})
    assert ping.match(Message('{"n":1}', False, event="ping")) == {}
    assert ping.match(Message('{"n":1}', False, event="pong")) is None
    assert ping.match(Message('{"n":1}', False, event="Ping")) is None  # exact, case included
    assert ping.match(message('{"n":1}')) is None  # a WebSocket message has no event
    assert matcher(json={"n": 1}).match(Message('{"n":1}', False, event="ping")) == {}  # no event: any


def test_the_first_matching_rule_wins_and_the_fallback_takes_the_rest():
    rules, problems = compile_rules(
        [RuleConfig.model_validate(r) for r in ({"match": {"text": "a"}, "do": [{"reply": "1"}]},
                                                {"do": [{"reply": "2"}]})], (), [])
    assert problems == []
    assert rules.answer(message("a")).rule == 0
    assert rules.answer(message("b")).rule == 1
    ruleset, _ = compile_rules([RuleConfig.model_validate({"match": {"text": "a"}})],
                               Settings.model_validate({"endpoints": [{"path": "/x", "fallback": [{"reply": "?"}]}]})
                               .endpoints[0].fallback, [])
    assert ruleset.answer(message("zzz")).rule is None
    assert ruleset.answer(message("a")).actions == ()


# -- templates


def render(value, ctx: Context) -> str:
    template = MessageTemplate(value)
    return template.render(ctx, template.new_state(), Random(1))


def test_a_text_template_gives_exact_bytes_with_a_trailing_nul():
    ctx = Context(message('{"id":"7"}'))
    ctx.id, ctx.stream, ctx.frame = "sub-0", "stats", JsonFrame(b'{"a":1}')
    text = render("MESSAGE\nsubscription:{{id}}\ndestination:/topic/{{stream}}\n\n{{frame}}\u0000", ctx)
    assert text == 'MESSAGE\nsubscription:sub-0\ndestination:/topic/stats\n\n{"a":1}\x00'


def test_a_json_template_inserts_message_fields_as_json_values():
    ctx = Context(message('{"id":1,"name":"x","nested":{"k":[1,2]}}'), {"0": "all", "word": "hi"})
    assert json.loads(render({"id": {"$message": "id"}, "k": {"$message": "nested.k"}, "g": {"$group": "word"},
                              "all": {"$message": True}}, ctx)) == {
        "id": 1, "k": [1, 2], "g": "hi", "all": {"id": 1, "name": "x", "nested": {"k": [1, 2]}}}


def test_a_frame_goes_into_a_json_envelope_as_a_value_text_as_a_string_binary_as_base64():
    ctx = Context()
    for frame, expected in ((JsonFrame(b'{"a":1}'), {"a": 1}), (Frame(b"plain text"), "plain text"),
                            (Frame(b"\x00\x01", binary=True), "AAE=")):
        ctx.frame = frame
        assert json.loads(render({"data": {"$frame": True}}, ctx)) == {"data": expected}


def test_a_missing_field_is_null_in_json_and_empty_in_text_and_noted():
    ctx = Context(message('{"id":1}'))
    assert render({"x": {"$message": "nope"}}, ctx) == '{"x":null}'
    assert render("[{{message.nope}}]", ctx) == "[]"
    assert ctx.missing == ["nope", "nope"]


def test_generators_in_a_reply_template_still_work_and_seq_counts_renders():
    template = MessageTemplate({"n": {"$seq": True}, "r": {"$int": [5, 5]}, "id": {"$message": "id"}})
    state, ctx = template.new_state(), Context(message('{"id":"a"}'))
    assert [json.loads(template.render(ctx, state, Random(1))) for _ in range(2)] == [
        {"n": 1, "r": 5, "id": "a"}, {"n": 2, "r": 5, "id": "a"}]


def test_a_constant_envelope_is_two_byte_strings_around_the_frame():
    ctx = Context()
    ctx.id, ctx.stream = "s1", "stats"
    assert MessageTemplate({"id": {"$id": True}, "data": {"$frame": True}}).around_frame(ctx) == (
        b'{"id":"s1","data":', b"}")
    assert MessageTemplate("{{frame}} #{{seq}}").around_frame(ctx) is None  # changes from frame to frame


# -- config errors: file, line and field, like every other


def problems_of(tmp_path, endpoints, streams=None) -> list[str]:
    data = {"streams": streams or [dict(COUNTS, path="/counts")], "endpoints": endpoints}
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, data))
    return error.value.problems


def test_an_unknown_action_is_an_error_with_a_suggestion(tmp_path):
    problems = problems_of(tmp_path, [{"path": "/ws", "rules": [{"do": [{"replay": "x"}]}]}])
    assert len(problems) == 1
    assert "config.yaml:" in problems[0]
    assert "endpoints[0].rules[0].do[0]: unknown action 'replay'; did you mean 'reply'?" in problems[0]


def test_a_bad_regex_is_an_error_with_its_position(tmp_path):
    problems = problems_of(tmp_path, [{"path": "/ws", "rules": [{"match": {"regex": "ab(c"}, "do": []}]}])
    assert problems and "endpoints[0].rules[0].match.regex: invalid regular expression: missing )" in problems[0]
    assert "at position 2" in problems[0]


def test_a_subscribe_to_an_unknown_stream_is_an_error(tmp_path):
    problems = problems_of(tmp_path, [{"path": "/ws", "rules": [{"do": [{"subscribe": {"stream": "count"}}]}]}])
    assert problems and problems[0].endswith(
        "endpoints[0].rules[0].do[0].subscribe.stream: no stream named 'count'; streams: counts")


def test_a_template_naming_a_group_the_regex_lacks_is_an_error(tmp_path):
    problems = problems_of(tmp_path, [{"path": "/ws", "rules": [
        {"match": {"regex": "(?P<name>\\w+)"}, "do": [{"reply": "{{group.topic}}"}]},
        {"do": [{"reply": {"x": {"$group": "name"}}}]}]}])
    assert len(problems) == 2
    assert "rules[0].do[0].reply: refers to group 'topic', which the rule's regex does not have " \
           "(named: name; numbered: 0 to 1)" in problems[0]
    assert "rules[1].do[0].reply: refers to group 'name', but the rule has no match.regex" in problems[1]


def test_rule_errors_carry_the_line_of_the_rule(tmp_path):
    text = ("streams:\n  - {name: counts, source: random, template: {n: 1}}\nendpoints:\n  - path: /ws\n"
            "    rules:\n      - match: {text: a}\n        do:\n          - reply: '{{nope}}'\n")
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, text))
    assert error.value.problems == [f"{tmp_path / 'config.yaml'}:8: endpoints[0].rules[0].do[0].reply: unknown hole "
                                    "{{nope}} (holes: {{message}}, {{message.<path>}}, {{group.<name>}}, {{id}}, "
                                    "{{stream}}, {{frame}}, {{seq}}, {{error}})"]


def test_an_endpoint_path_may_not_repeat_a_stream_path(tmp_path):
    problems = problems_of(tmp_path, [{"path": "/counts"}])
    assert problems and "endpoints[0].path: duplicate path '/counts' (also streams[0])" in problems[0]


def test_reply_and_fallback_together_are_an_error(tmp_path):
    problems = problems_of(tmp_path, [], [dict(COUNTS, path="/c", reply="x", fallback=[{"reply": "y"}])])
    assert problems and "set reply or fallback, not both" in problems[0]


# -- conversations over a real socket


@pytest.mark.gen_test
@TOPICS
async def test_subscribe_confirms_then_streams_envelopes_until_unsubscribe(ws_connect, hub):
    conn = await ws_connect("/ws")
    conn.write_message('{"method":"SUBSCRIBE","params":["counts"],"id":1}')
    assert await read_json(conn) == {"result": None, "id": 1}  # before the first frame, though written after
    assert await read_json(conn) == {"stream": "counts", "data": {"n": 1}}
    assert await read_json(conn) == {"stream": "counts", "data": {"n": 2}}
    assert hub.streams["counts"].subscriptions() == {"direct": 0, "topic": 1}
    conn.write_message('{"method":"UNSUBSCRIBE","params":["counts"],"id":2}')
    rest = await received_for(conn, 0.2)
    assert rest[-1] == {"result": None, "id": 2}
    assert all("stream" in m for m in rest[:-1])
    assert hub.streams["counts"].clients == 0


@pytest.mark.gen_test
@TOPICS
async def test_one_connection_holds_several_subscriptions_each_with_its_envelope(ws_connect, hub):
    conn = await ws_connect("/ws")
    conn.write_message('{"method":"SUBSCRIBE","params":["counts"],"id":1}')
    conn.write_message('{"method":"SUBSCRIBE","params":["ticks"],"id":2}')
    seen = await received_for(conn, 0.15)
    streams = {m["stream"] for m in seen if "stream" in m}
    assert streams == {"counts", "ticks"}
    assert {m["id"] for m in seen if "result" in m} == {1, 2}
    await close_and_wait(conn)
    await until(lambda: hub.streams["counts"].clients == 0 and hub.streams["ticks"].clients == 0, 2)


@pytest.mark.gen_test
@TOPICS
async def test_a_shared_topic_joins_the_running_clock(ws_connect):
    first = await ws_connect("/ws")
    first.write_message('{"method":"SUBSCRIBE","params":["ticks"],"id":1}')
    await read_json(first)
    await read_json(first)
    await asyncio.sleep(0.15)
    second = await ws_connect("/ws")
    second.write_message('{"method":"SUBSCRIBE","params":["ticks"],"id":1}')
    assert (await read_json(second))["result"] is None
    joined = (await read_json(second))["data"]["t"]
    assert joined > 2  # the running timeline's current frame, not a fresh one at 1


@pytest.mark.gen_test
@TOPICS
async def test_subscribing_twice_under_one_id_replaces_the_subscription(ws_connect, hub):
    conn = await ws_connect("/ws")
    for request_id in (1, 2):
        conn.write_message(json.dumps({"method": "SUBSCRIBE", "params": ["counts"], "id": request_id}))
    await received_for(conn, 0.1)
    assert hub.streams["counts"].clients == 1


@pytest.mark.gen_test
@pytest.mark.config(streams=[COUNTS], echo=None, endpoints=[{"path": "/g", "rules": [
    {"match": {"json": {"type": "subscribe"}}, "do": [{"subscribe": {
        "stream": "counts", "id": "{{message.id}}", "envelope": {"id": {"$id": True}, "payload": {"$frame": True}},
        "if_subscribed": [{"close": {"code": 4409, "reason": "Subscriber for {{id}} already exists"}}]}}]}]}])
async def test_if_subscribed_refuses_a_taken_id(ws_connect):
    conn = await ws_connect("/g")
    conn.write_message('{"type":"subscribe","id":"a"}')
    assert await read_json(conn) == {"id": "a", "payload": {"n": 1}}
    conn.write_message('{"type":"subscribe","id":"a"}')
    while await conn.read_message() is not None:
        pass
    assert (conn.close_code, conn.close_reason) == (4409, "Subscriber for a already exists")


@pytest.mark.gen_test
@TOPICS
async def test_an_unknown_stream_gets_the_error_reply_and_nothing_else(ws_connect, hub):
    conn = await ws_connect("/ws")
    conn.write_message('{"method":"SUBSCRIBE","params":["nope"],"id":5}')
    assert await received_for(conn, 0.15) == [
        {"error": "no stream named 'nope'; streams: ticks, counts", "id": 5}]


@pytest.mark.gen_test
@pytest.mark.config(streams=[COUNTS, dict(COUNTS, name="more"), dict(COUNTS, name="most")], echo=None,
                    endpoints=[ENDPOINT], server={"max_subscriptions_per_client": 2})
async def test_a_third_subscription_over_a_limit_of_two_is_refused(ws_connect, hub):
    conn = await ws_connect("/ws")
    for i, topic in enumerate(("counts", "more", "most")):
        conn.write_message(json.dumps({"method": "SUBSCRIBE", "params": [topic], "id": i}))
    replies = await received_for(conn, 0.15)
    assert {"error": "subscription limit reached: 2 per connection (server.max_subscriptions_per_client)",
            "id": 2} in replies
    assert hub.streams["most"].clients == 0
    assert hub.streams["counts"].clients == hub.streams["more"].clients == 1
    assert any(m.get("stream") == "counts" for m in replies[-3:])  # the others go on


@pytest.mark.gen_test
@TOPICS
async def test_a_regex_reply_counts_per_connection_and_close_ends_it(ws_connect):
    conn = await ws_connect("/ws")
    conn.write_message("say hello")
    conn.write_message("say again")
    assert [await conn.read_message() for _ in range(2)] == ["you said hello #1", "you said again #2"]
    other = await ws_connect("/ws")
    other.write_message("say hi")
    assert await other.read_message() == "you said hi #1"
    conn.write_message("bye")
    assert await conn.read_message() is None
    assert (conn.close_code, conn.close_reason) == (4000, "bye bye")


@pytest.mark.gen_test
@TOPICS
async def test_the_fallback_answers_unknown_messages(ws_connect):
    conn = await ws_connect("/ws")
    conn.write_message('{"method":"LIST","id":9}')
    assert await read_json(conn) == {"error": "unknown method", "id": 9}


@pytest.mark.gen_test
@pytest.mark.config(streams=[COUNTS], echo=None, endpoints=[{"path": "/d", "rules": [
    {"do": [{"reply": "first"}, {"delay": 150}, {"reply": "second"}]}]}])
async def test_a_delay_holds_back_the_following_actions(ws_connect):
    conn = await ws_connect("/d")
    conn.write_message("go")
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await conn.read_message() == "first"
    assert await conn.read_message() == "second"
    assert loop.time() - start >= 0.14


@pytest.mark.gen_test
@pytest.mark.config(streams=[COUNTS], echo=None, endpoints=[{"path": "/d", "rules": [
    {"do": [{"delay": 5000}, {"reply": "never"}]}]}])
async def test_a_pending_delay_is_cancelled_when_the_client_leaves(ws_connect, hub, io_loop):
    conn = await ws_connect("/d")
    conn.write_message("go")
    await until(lambda: any(c.timers for c in hub.conversations), 1)
    with_delay = pending_timers(io_loop)
    await close_and_wait(conn)
    await until(lambda: not hub.conversations, 1)
    assert pending_timers(io_loop) <= with_delay - 1  # cancelled on the event loop, not only forgotten


@pytest.mark.gen_test
@pytest.mark.config(streams=[TICKS, COUNTS], echo=None, endpoints=[{"path": "/s", "rules": [
    {"do": [{"snapshot": {"stream": "ticks", "envelope": {"snapshot": {"$frame": True}}}},
            {"subscribe": {"stream": "ticks", "envelope": {"update": {"$frame": True}}}}]}]}])
async def test_a_snapshot_sends_the_current_frame_then_updates_follow(ws_connect):
    watcher = await ws_connect("/s")
    watcher.write_message("x")
    await read_json(watcher)
    await read_json(watcher)
    await asyncio.sleep(0.1)
    conn = await ws_connect("/s")
    conn.write_message("x")
    snapshot = await read_json(conn)
    assert "snapshot" in snapshot and snapshot["snapshot"]["t"] > 1
    assert "update" in await read_json(conn)


@pytest.mark.gen_test
@TOPICS
async def test_a_missing_field_is_logged_once_per_connection(ws_connect, caplog):
    conn = await ws_connect("/ws")
    with caplog.at_level(logging.WARNING, logger="mockws.rules"):
        for _ in range(3):
            conn.write_message('{"method":"LIST"}')
        replies = [await read_json(conn) for _ in range(3)]
    assert replies == [{"error": "unknown method", "id": None}] * 3
    warnings = [r for r in caplog.records if r.name == "mockws.rules"]
    assert len(warnings) == 1 and "has no id" in warnings[0].getMessage()


@pytest.mark.gen_test
@TOPICS
async def test_pause_push_and_faults_reach_topic_subscriptions(ws_connect, hub):
    conn = await ws_connect("/ws")
    conn.write_message('{"method":"SUBSCRIBE","params":["counts"],"id":1}')
    await read_json(conn)
    await read_json(conn)
    hub.pause("counts")
    await received_for(conn, 0.1)
    assert await received_until_quiet(conn, 0.15) == []
    assert hub.push("counts", JsonFrame(b'{"pushed":true}')) == 1
    assert await read_json(conn) == {"stream": "counts", "data": {"pushed": True}}


@pytest.mark.gen_test
@TOPICS
async def test_the_api_shows_subscriptions_per_stream_and_per_endpoint(ws_connect, http_url, hub):
    conn = await ws_connect("/ws")
    conn.write_message('{"method":"SUBSCRIBE","params":["counts"],"id":1}')
    conn.write_message('{"method":"SUBSCRIBE","params":["ticks"],"id":2}')
    await received_for(conn, 0.1)
    client = AsyncHTTPClient()
    streams = json.loads((await client.fetch(http_url("/api/streams"))).body)
    counts = next(s for s in streams if s["name"] == "counts")
    assert (counts["clients"], counts["subscriptions"]) == (1, {"direct": 0, "topic": 1})
    assert counts["transports"] == {"websocket": 1}  # a topic counts under its connection's transport
    endpoints = json.loads((await client.fetch(http_url("/api/endpoints"))).body)
    assert endpoints == [{"path": "/ws", "stream": None, "rules": 4,
                          "examples": ['{"method":"SUBSCRIBE","params":["counts"],"id":1}'],
                          "clients": 1, "subscriptions": {"counts": 1, "ticks": 1}, "auth": None}]


@pytest.mark.gen_test
@TOPICS
async def test_a_live_edit_of_rules_applies_to_connected_clients(ws_connect, hub, tmp_path, config_data):
    conn = await ws_connect("/ws")
    conn.write_message('{"method":"LIST","id":1}')
    assert await read_json(conn) == {"error": "unknown method", "id": 1}
    config_data["endpoints"][0]["fallback"] = [{"reply": {"error": "edited", "id": {"$message": "id"}}}]
    changes = hub.apply(load_config(write_config(tmp_path, config_data, "edited.yaml")))
    assert "endpoint /ws changed (rules apply from the next message)" in changes
    conn.write_message('{"method":"LIST","id":2}')
    assert await read_json(conn) == {"error": "edited", "id": 2}


@pytest.mark.gen_test
@TOPICS
async def test_removing_a_stream_ends_its_subscriptions_but_not_the_connection(ws_connect, hub, tmp_path,
                                                                                config_data):
    conn = await ws_connect("/ws")
    conn.write_message('{"method":"SUBSCRIBE","params":["counts"],"id":1}')
    conn.write_message('{"method":"SUBSCRIBE","params":["ticks"],"id":2}')
    await received_for(conn, 0.1)
    config_data["streams"] = [TICKS]
    hub.apply(load_config(write_config(tmp_path, config_data, "edited.yaml")))
    seen = await received_for(conn, 0.15)
    assert seen and all(m["stream"] == "ticks" for m in seen)
    assert conn.close_code is None


@pytest.mark.gen_test
@pytest.mark.config(streams=[dict(COUNTS, name="once", timeline="shared", source="replay", file="data-coll.json",
                                   loop=False, template=None), COUNTS], echo=None, endpoints=[ENDPOINT])
async def test_a_finished_replay_ends_only_its_subscription(ws_connect, hub):
    conn = await ws_connect("/ws")
    conn.write_message('{"method":"SUBSCRIBE","params":["counts"],"id":1}')
    conn.write_message('{"method":"SUBSCRIBE","params":["once"],"id":2}')
    await until(lambda: hub.streams["once"].frames_sent > 0, 2)
    await until(lambda: hub.streams["once"].clients == 0, 3)
    assert conn.close_code is None
    assert hub.streams["counts"].clients == 1
    seen = await received_for(conn, 0.3)
    assert len([m for m in seen if m.get("stream") == "once"]) == 30  # every entry of the file, once
    assert seen[-1]["stream"] == "counts"  # and the other subscription goes on


@pytest.mark.gen_test
@pytest.mark.config(stats={"reply": None, "rules": [{"match": {"text": "ping"}, "do": [{"reply": "pong"}]}]})
async def test_a_stream_answers_by_its_rules_beside_its_frames(ws_connect, hub):
    conn = await ws_connect("/")
    await read_json(conn)
    conn.write_message("ping")
    replies = await received_for(conn, 0.1)
    assert "pong" in replies
    await close_and_wait(conn)
    await until(lambda: hub.streams["stats"].clients == 0 and not hub.conversations, 2)


@pytest.mark.gen_test
async def test_a_streams_one_line_reply_still_answers_every_message(ws_connect):
    conn = await ws_connect("/")
    await read_json(conn)
    conn.write_message("hi {there}")
    replies = await received_for(conn, 0.1)
    assert "web socket 已连接: hi {there}" in replies
