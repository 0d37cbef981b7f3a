"""Handshake auth: a token in the query or a header, checked before the upgrade, and tokens that expire."""

from __future__ import annotations

import json
import time

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from config import ConfigError
from streams.build import load_config
from support import base_config, read_json, stream_config, until, write_config

ANY_TOKEN = {"query": "token"}
LISTED_BEARER = {"header": "Authorization", "scheme": "Bearer", "values": ["s3cret", "other"]}


async def refused(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, HTTPClientError]:
    """The status and JSON reason of a handshake that must be refused."""
    with pytest.raises(HTTPClientError) as caught:
        await websocket_connect(HTTPRequest(url, headers=headers))
    return caught.value.code, json.loads(caught.value.response.body)["error"], caught.value


@pytest.mark.config(stats={"auth": ANY_TOKEN})
@pytest.mark.gen_test
async def test_any_non_empty_query_token_is_accepted_and_none_gets_401(ws_url, ws_connect):
    for url in (ws_url("/"), ws_url("/?token=")):
        code, reason, _ = await refused(url)
        assert (code, reason) == (401, "missing token: send it in the query parameter ?token=")
    conn = await ws_connect("/?token=anything")
    assert "face" in await read_json(conn)


@pytest.mark.config(stats={"auth": LISTED_BEARER})
@pytest.mark.gen_test
async def test_a_bearer_header_must_carry_a_listed_token(ws_url, ws_connect):
    code, reason, error = await refused(ws_url("/"))
    assert (code, reason) == (401, "missing token: send it in the header 'Authorization: Bearer <token>'")
    assert error.response.headers["WWW-Authenticate"].startswith("Bearer ")
    code, reason, _ = await refused(ws_url("/"), {"Authorization": "Bearer wrong"})
    assert (code, reason) == (401, "token not accepted: send one of the configured tokens in the header "
                                   "'Authorization: Bearer <token>'")
    code, _, _ = await refused(ws_url("/"), {"Authorization": "s3cret"})  # without the scheme
    assert code == 401
    conn = await websocket_connect(HTTPRequest(ws_url("/"), headers={"Authorization": "bearer s3cret"}))
    assert "face" in await read_json(conn)
    conn.close()


@pytest.mark.config(echo={"path": "/echo", "auth": {"query": "key", "values": ["k1"]}})
@pytest.mark.gen_test
async def test_echo_takes_an_auth_block_too_and_other_paths_stay_open(ws_url, ws_connect):
    code, _, _ = await refused(ws_url("/echo?key=k2"))
    assert code == 401
    echo = await ws_connect("/echo?key=k1")
    await echo.write_message("hi")
    assert await echo.read_message() == "hi"
    assert "face" in await read_json(await ws_connect("/"))  # the stats stream has no auth block


@pytest.mark.config(stats={"auth": ANY_TOKEN})
@pytest.mark.gen_test
async def test_a_browser_tab_still_gets_the_demo_page_without_a_token(http_client, ws_url):
    response = await http_client.fetch(ws_url("/").replace("ws://", "http://"))
    assert response.code == 200 and b"<html" in response.body.lower()


@pytest.mark.config(stats={"auth": {**LISTED_BEARER, "expires_after_s": 60}},
                    endpoints=[{"path": "/ws", "auth": ANY_TOKEN, "rules": [{"match": {"text": "hi"}}]}])
@pytest.mark.gen_test
async def test_the_api_says_where_a_token_goes_but_never_which_tokens_are_accepted(http_client, http_url):
    """The demo page reads it to explain a refused handshake, which a browser's WebSocket cannot see."""
    streams_body = (await http_client.fetch(http_url("/api/streams"))).body
    endpoints_body = (await http_client.fetch(http_url("/api/endpoints"))).body
    streams = {s["name"]: s for s in json.loads(streams_body)}
    endpoints = {e["path"]: e for e in json.loads(endpoints_body)}
    bearer = {"query": None, "header": "Authorization", "scheme": "Bearer", "expires_after_s": 60}
    assert streams["stats"]["auth"] == bearer
    assert streams["replay"]["auth"] is None
    assert endpoints["/"]["auth"] == bearer  # the stats stream answers by rules (its reply) at /
    assert endpoints["/ws"]["auth"] == {"query": "token", "header": None, "scheme": None, "expires_after_s": None}
    assert b"s3cret" not in streams_body + endpoints_body


@pytest.mark.config(stats={"auth": {**ANY_TOKEN, "expires_after_s": 0.3}, "interval_ms": 50})
@pytest.mark.gen_test
async def test_an_expiring_token_closes_the_connection_with_4001_token_expired(ws_connect):
    start = time.monotonic()
    conn = await ws_connect("/?token=t")
    while await conn.read_message() is not None:
        pass  # frames until the close
    assert (conn.close_code, conn.close_reason) == (4001, "token expired")
    assert 0.25 < time.monotonic() - start < 1.0


@pytest.mark.config(stats={"auth": {**ANY_TOKEN, "expires_after_s": 0.1, "expired_code": 4403}})
@pytest.mark.gen_test
async def test_the_expiry_close_code_is_configurable(ws_connect, hub):
    conn = await ws_connect("/?token=t")
    while await conn.read_message() is not None:
        pass
    assert conn.close_code == 4403
    await until(lambda: hub.streams["stats"].clients == 0, 1)


@pytest.mark.parametrize(("auth", "problem"), [
    ({"query": "token", "header": "Authorization"}, "set either query (e.g. token) or header"),
    ({"values": ["a"]}, "set either query (e.g. token) or header"),
    ({"query": "token", "scheme": "Bearer"}, "scheme goes with header"),
    ({"query": "token", "expired_code": 1000}, "auth.expired_code: must be an integer >= 4000, got 1000"),
    ({"query": "token", "expires_after_s": 0}, "auth.expires_after_s: must be a number > 0, got 0"),
    ({"query": "token", "valeus": ["a"]}, "auth.valeus: unknown key; did you mean 'values'?"),
])
def test_a_bad_auth_block_is_a_config_error_naming_the_key(tmp_path, auth, problem):
    data = base_config()
    stream_config(data, "stats")["auth"] = auth
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, data))
    [found] = caught.value.problems
    assert "streams[0].auth" in found and problem in found, found
