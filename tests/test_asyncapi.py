"""AsyncAPI documents served as mocks: channels become streams, replies become rules, frames fit the schemas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from config import ConfigError
from streams.asyncapi import translate_document
from streams.build import load_config
from support import ROOT, read_json, write_config

DOCUMENTS = ROOT / "tests" / "asyncapi"


@pytest.fixture
def document(request: pytest.FixtureRequest) -> str:
    """The AsyncAPI document the test serves (parametrize `document` indirectly to change it)."""
    return getattr(request, "param", "marketdata-3.yaml")


@pytest.fixture
def app_config(tmp_path: Path, document: str):
    """A config that serves only the document, copied beside it with its neighbouring files."""
    for file in DOCUMENTS.iterdir():
        shutil.copy(file, tmp_path / file.name)
    return load_config(write_config(tmp_path, {"server": {"host": "127.0.0.1", "port": 0, "ping_interval_s": 0},
                                               "echo": None, "random_seed": 3,
                                               "asyncapi": {"file": document, "interval_ms": 30}}))


def load(document: str) -> dict[str, Any]:
    """A test document as data."""
    return yaml.safe_load((DOCUMENTS / document).read_text(encoding="utf-8"))


def validator(schema: dict[str, Any], root: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """The reference validator for a payload schema whose `#/...` $refs point into ``root``."""
    return jsonschema.Draft202012Validator({**root, **schema})


MARKET, BOOK_FILE, SUBSCRIBE = load("marketdata-3.yaml"), load("marketdata-book.yaml"), load("subscribe-3.yaml")
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


def test_each_parameter_value_is_a_stream_whose_template_can_use_it(app_config):
    streams = {s.path: s for s in app_config.streams}
    assert sorted(streams) == ["/v1/marketdata/BTCUSD", "/v1/marketdata/ETHUSD"]
    assert streams["/v1/marketdata/ETHUSD"].params == {"symbol": "ETHUSD"}
    assert streams["/v1/marketdata/ETHUSD"].interval_ms == 20  # the channel's x-interval-ms


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


def test_a_2x_and_a_3x_document_with_the_same_content_serve_the_same_mock():
    assert translate_document(DOCUMENTS / "marketdata-2.yaml").streams == \
        translate_document(DOCUMENTS / "marketdata-3.yaml").streams


def test_a_message_without_x_interval_ms_uses_the_config_interval(tmp_path):
    (tmp_path / "api.yaml").write_text(
        "asyncapi: 3.0.0\ninfo: {title: t, version: '1'}\nchannels:\n  c: {address: /c, messages: {m: {payload: "
        "{type: integer}}}}\noperations:\n  o: {action: send, channel: {$ref: '#/channels/c'}}\n", encoding="utf-8")
    config = load_config(write_config(tmp_path, {"asyncapi": {"file": "api.yaml", "interval_ms": 250}}))
    assert [(s.path, s.interval_ms) for s in config.streams] == [("/c", 250)]


@pytest.mark.parametrize(("document", "problem"), [
    ("info: {title: t}\n", "api.yaml:1: #/asyncapi: is required: the AsyncAPI version"),
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
