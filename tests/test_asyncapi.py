"""AsyncAPI documents served as mocks: channels become streams, replies become rules, frames fit the schemas."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

import streams.hub
from config import ConfigError
from streams.asyncapi import translate_document
from streams.build import load_config
from support import ROOT, close_and_wait, read_json, until, write_config

DOCUMENTS = ROOT / "tests" / "asyncapi"


@pytest.fixture
def document(request: pytest.FixtureRequest) -> str:
    """The AsyncAPI document the test serves (parametrize `document` indirectly to change it)."""
    return getattr(request, "param", "marketdata-3.yaml")


@pytest.fixture
def own_streams(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Streams the config has beside the document's (parametrize `own_streams` indirectly to add some)."""
    return getattr(request, "param", [])


@pytest.fixture
def app_config(tmp_path: Path, document: str, own_streams: list[dict[str, Any]]):
    """A config that serves the document, copied beside it with its neighbouring files."""
    for file in DOCUMENTS.iterdir():
        shutil.copy(file, tmp_path / file.name)
    return load_config(write_config(tmp_path, {"server": {"host": "127.0.0.1", "port": 0, "ping_interval_s": 0},
                                               "echo": None, "random_seed": 3, "streams": own_streams,
                                               "asyncapi": {"file": document, "interval_ms": 30}}))


def load(document: str) -> dict[str, Any]:
    """A test document as data."""
    return yaml.safe_load((DOCUMENTS / document).read_text(encoding="utf-8"))


def validator(schema: dict[str, Any], root: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """The reference validator for a payload schema whose `#/...` $refs point into ``root``."""
    return jsonschema.Draft202012Validator({**root, **schema})


MARKET, BOOK_FILE, SUBSCRIBE = load("marketdata-3.yaml"), load("marketdata-book.yaml"), load("subscribe-3.yaml")
TICKER = validator(load("ticker-3.yaml")["components"]["messages"]["ticker"]["payload"], {})
# a hand-written stream beside a document: a {symbol} path whose template and rule read the client's value
QUOTES = {"name": "quotes", "path": "/quotes/{symbol}", "source": "random", "interval_ms": 30,
          "timeline": "shared", "params": {"symbol": {"pattern": "[A-Z]+-[A-Z]+"}},
          "template": {"symbol": {"$param": "symbol"}, "n": {"$seq": True}},
          "rules": [{"match": {"json": {"op": "which"}}, "do": [{"reply": {"you_asked_for": {"$param": "symbol"}}}]}]}
TRADE = validator(MARKET["components"]["schemas"]["trade"], MARKET)
BOOK = validator(BOOK_FILE["book"]["payload"], BOOK_FILE)
STATUS = validator(SUBSCRIBE["components"]["messages"]["subscriptionStatus"]["payload"], SUBSCRIBE)
HEARTBEAT = validator(SUBSCRIBE["channels"]["feed"]["messages"]["heartbeat"]["payload"], SUBSCRIBE)


@pytest.mark.gen_test
async def test_a_push_channel_with_a_path_parameter_sends_the_examples_in_order_then_schema_instances(ws_connect):
    """Messages take turns: trade example 1, a book from its schema, trade example 2, a book, example 1 again."""
    conn = await ws_connect("/v1/marketdata/ETHUSD")
    frames = [await read_json(conn) for _ in range(5)]
    assert [f["type"] for f in frames] == ["trade", "book", "trade", "book", "trade"]
    assert [frames[0]["price"], frames[2]["price"], frames[4]["price"]] == [64000.5, 64001.0, 64000.5]
    for frame in frames:
        (TRADE if frame["type"] == "trade" else BOOK).validate(frame)


@pytest.mark.gen_test
async def test_a_parameter_value_outside_the_enum_is_refused_with_404_naming_the_allowed_values(http_url):
    with pytest.raises(HTTPClientError) as refused:
        await AsyncHTTPClient().fetch(http_url("/v1/marketdata/DOGE"))
    assert refused.value.code == 404
    error = json.loads(refused.value.response.body)["error"]
    assert "symbol must be one of BTCUSD, ETHUSD, got 'DOGE'" in error


def test_a_channel_with_a_path_parameter_is_one_stream_whose_path_names_it(app_config):
    [stream] = app_config.streams
    assert (stream.path, stream.interval_ms) == ("/v1/marketdata/{symbol}", 20)  # the channel's x-interval-ms
    assert stream.params["symbol"].enum == ("BTCUSD", "ETHUSD")


@pytest.mark.parametrize("own_streams", [[QUOTES]], indirect=True)
@pytest.mark.gen_test
async def test_each_parameter_value_is_served_by_a_stream_whose_template_can_use_it(own_streams, ws_connect,
                                                                                    http_url):
    """A shared timeline per value: each client gets its own path's value, and its value's frame numbers."""
    btc, eth = await ws_connect("/quotes/BTC-USD"), await ws_connect("/quotes/ETH-USD")
    assert [(await read_json(btc))["symbol"] for _ in range(3)] == ["BTC-USD"] * 3
    first_eth = await read_json(eth)
    assert first_eth["symbol"] == "ETH-USD"
    btc_again = await ws_connect("/quotes/BTC-USD")  # joins BTC-USD's timeline, not a new one
    assert (await read_json(btc_again))["n"] > first_eth["n"] >= 1
    listed = json.loads((await AsyncHTTPClient().fetch(http_url("/api/streams"))).body)
    quotes = next(s for s in listed if s["name"] == "quotes")
    assert (quotes["path"], quotes["clients"]) == ("/quotes/{symbol}", 3)
    assert quotes["instances"] == {"/quotes/BTC-USD": 2, "/quotes/ETH-USD": 1}
    assert quotes["params"] == {"symbol": {"pattern": "[A-Z]+-[A-Z]+"}}  # what the demo page offers


@pytest.mark.parametrize("own_streams", [[QUOTES]], indirect=True)
@pytest.mark.gen_test
async def test_server_sent_events_on_a_concrete_path_carry_its_value(own_streams, http_server, http_port):
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(b"GET /quotes/XRP-USD HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200")
        data = await asyncio.wait_for(reader.readuntil(b"\n\n"), 2)
        while b"data: " not in data:
            data = await asyncio.wait_for(reader.readuntil(b"\n\n"), 2)
    finally:
        writer.close()
    assert json.loads(data.split(b"data: ", 1)[1])["symbol"] == "XRP-USD"


@pytest.mark.parametrize("own_streams", [[QUOTES]], indirect=True)
@pytest.mark.gen_test
async def test_a_rule_reply_renders_the_parameter_value_of_the_clients_path(own_streams, ws_connect):
    conn = await ws_connect("/quotes/SOL-EUR")
    await conn.write_message(json.dumps({"op": "which"}))
    for _ in range(20):
        frame = await read_json(conn)
        if "you_asked_for" in frame:
            break
    assert frame == {"you_asked_for": "SOL-EUR"}


@pytest.mark.parametrize("own_streams", [[QUOTES]], indirect=True)
@pytest.mark.gen_test
async def test_a_values_stream_is_dropped_after_its_last_client_and_values_beyond_the_cap_get_503(
        own_streams, ws_connect, hub, monkeypatch):
    monkeypatch.setattr(streams.hub, "MAX_PATH_VALUES", 1)
    conn = await ws_connect("/quotes/BTC-USD")
    await read_json(conn)
    with pytest.raises(HTTPClientError) as refused:
        await ws_connect("/quotes/ETH-USD")
    assert refused.value.code == 503
    await close_and_wait(conn)
    await until(lambda: not hub.instances, timeout=2)
    await read_json(await ws_connect("/quotes/ETH-USD"))  # room again


@pytest.mark.parametrize("document", ["ticker-3.yaml"], indirect=True)
@pytest.mark.gen_test
async def test_a_parameter_without_enum_or_pattern_serves_any_value_with_schema_valid_frames(document, ws_connect):
    """A 3.x parameter object with only a description, served unchanged."""
    for path in ("/v1/marketdata/BTC-USD", "/v1/marketdata/anything"):
        conn = await ws_connect(path)
        for _ in range(3):
            TICKER.validate(await read_json(conn))


@pytest.mark.parametrize("document", ["ticker-2.yaml"], indirect=True)
@pytest.mark.gen_test
async def test_a_2x_parameter_pattern_serves_matching_values_and_refuses_others_naming_the_pattern(
        document, ws_connect, http_url):
    TICKER.validate(await read_json(await ws_connect("/v1/marketdata/BTC-USD")))
    with pytest.raises(HTTPClientError) as refused:
        await AsyncHTTPClient().fetch(http_url("/v1/marketdata/btc"))
    assert refused.value.code == 404
    assert json.loads(refused.value.response.body)["error"] == (
        "no stream at /v1/marketdata/btc (/v1/marketdata/{symbol}): symbol must match ^[A-Z]+-[A-Z]+$, got 'btc'")


@pytest.mark.parametrize("document", ["subscribe-3.yaml"], indirect=True)
@pytest.mark.gen_test
async def test_a_subscribe_request_is_answered_with_a_schema_valid_subscription_status(document, ws_connect):
    """Schema-only messages: the reply is generated from the reply message's payload; heartbeats are pushed."""
    conn = await ws_connect("/ws")
    HEARTBEAT.validate(await read_json(conn))
    await conn.write_message(json.dumps({"event": "subscribe", "pair": ["XBT/USD"]}))
    for _ in range(10):
        frame = await read_json(conn)
        if frame["event"] != "heartbeat":
            break
    STATUS.validate(frame)
    assert frame["event"] == "subscriptionStatus"


@pytest.mark.parametrize("document", ["subscribe-3.yaml"])
def test_a_channel_on_another_protocol_is_listed_and_skipped(document):
    translation = translate_document(DOCUMENTS / document)
    assert translation.skipped == ["audit.events (kafka): not a WebSocket server, skipped"]
    assert [s["path"] for s in translation.streams] == ["/ws"]  # the server's pathname, then the address


def test_a_skipped_channel_is_logged_with_the_document_name(tmp_path, caplog):
    for file in DOCUMENTS.iterdir():
        shutil.copy(file, tmp_path / file.name)
    with caplog.at_level(logging.WARNING, logger="mockws.build"):
        load_config(write_config(tmp_path, {"asyncapi": {"file": "subscribe-3.yaml"}}))
    assert "subscribe-3.yaml: audit.events (kafka): not a WebSocket server, skipped" in caplog.messages


@pytest.mark.parametrize("document", ["marketdata-3.yaml", "ticker-2.yaml", "subscribe-3.yaml"])
def test_import_prints_yaml_that_loads_as_a_config(tmp_path, document):
    for file in DOCUMENTS.iterdir():
        shutil.copy(file, tmp_path / file.name)
    printed = subprocess.run([sys.executable, str(ROOT / "server.py"), "import", str(tmp_path / document),
                              "--interval-ms", "250"], capture_output=True, text=True, check=True).stdout
    sections = yaml.safe_load(printed)
    config = load_config(write_config(tmp_path, {**sections, "echo": None}))
    assert [s.path for s in config.streams] == [s["path"] for s in translate_document(tmp_path / document).streams]
    if document == "subscribe-3.yaml":
        assert "# skipped: audit.events (kafka): not a WebSocket server, skipped" in printed


def test_a_2x_and_a_3x_document_with_the_same_content_serve_the_same_mock():
    assert translate_document(DOCUMENTS / "marketdata-2.yaml").streams == \
        translate_document(DOCUMENTS / "marketdata-3.yaml").streams


def test_a_channel_without_x_interval_ms_uses_the_config_interval(tmp_path):
    (tmp_path / "api.yaml").write_text(
        "asyncapi: 3.0.0\ninfo: {title: t, version: '1'}\nchannels:\n  c: {address: /c, messages: {m: {payload: "
        "{type: integer}}}}\noperations:\n  o: {action: send, channel: {$ref: '#/channels/c'}}\n", encoding="utf-8")
    config = load_config(write_config(tmp_path, {"asyncapi": {"file": "api.yaml", "interval_ms": 250}}))
    assert [(s.path, s.interval_ms) for s in config.streams] == [("/c", 250)]


@pytest.mark.parametrize(("document", "problem"), [
    ("info: {title: t}\n", "api.yaml:1: #/asyncapi: is required: the AsyncAPI version"),
    ("asyncapi: 3.0.0\ninfo: {title: \"a\x07\"}\n",
     "api.yaml:2: invalid YAML or JSON: character U+0007 is not allowed in YAML (a control character?)"),
    ("asyncapi: 3.0.0\nchannels:\n  c:\n    address: /c\n    messages:\n      m: {$ref: '#/components/nope'}\n"
     "operations:\n  o: {action: send, channel: {$ref: '#/channels/c'}}\n",
     "api.yaml:6: #/channels/c/messages/m/$ref: $ref '#/components/nope' cannot be resolved"),
    ("asyncapi: 3.0.0\nchannels:\n  c:\n    address: /c\n    messages:\n      m:\n        payload:\n"
     "          not: {type: string}\noperations:\n  o: {action: send, channel: {$ref: '#/channels/c'}}\n",
     "api.yaml:8: #/channels/c/messages/m/payload/not: 'not' is not supported"),
])
def test_an_invalid_document_is_reported_with_its_line_and_json_pointer_and_nothing_is_served(tmp_path, document,
                                                                                               problem):
    (tmp_path / "api.yaml").write_text(document, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, {"asyncapi": {"file": "api.yaml"}}))
    [line] = e.value.problems
    assert f"config.yaml:2: asyncapi.file: {tmp_path / problem}" in line
