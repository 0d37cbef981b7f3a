"""The control API: one stream's state, push, pause, resume, seek, and who may use them."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import HTTPClientError

from support import CATEGORIES, http_server_trusting_x_real_ip  # noqa: F401 - replaces http_server here


async def call(http_client, url, method="POST", body=None, headers=None, expect=200):
    """Make a request; return (status, decoded JSON body)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if method == "POST" and body is None:
        body = ""
    try:
        response = await http_client.fetch(url, method=method, body=body, headers=headers)
    except HTTPClientError as e:
        response = e.response
    payload = json.loads(response.body) if response.body else None
    assert response.code == expect, payload
    if expect >= 400:
        assert response.headers["Content-Type"].startswith("application/json")
        assert set(payload) == {"error"}
    return payload


async def frames_within(conn, seconds):
    """Every message that arrives in the next ``seconds``."""
    received = []
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            received.append(await asyncio.wait_for(conn.read_message(), left))
    except asyncio.TimeoutError:
        pass
    return received


@pytest.mark.gen_test
async def test_get_one_stream_shows_settings_and_live_state(http_client, http_url, ws_connect):
    conn = await ws_connect("/")
    await conn.read_message()
    stats = await call(http_client, http_url("/api/streams/stats"), "GET")
    assert (stats["name"], stats["interval_ms"], stats["clients"], stats["paused"]) == ("stats", 50, 1, False)
    assert stats["frames_sent"] >= 1 and stats["position"] is None
    assert stats["template"]["face"]["name"] == "人像"


TICKS = {"name": "ticks", "source": "random", "template": {"t": 1},
         "socketio": {"namespace": "/ticker", "event": "tick"}}
HIDDEN = {"name": "hidden", "source": "random", "template": {"x": 1}}  # a topic only: no path, no namespace


@pytest.mark.gen_test
@pytest.mark.config(streams=[{"name": "count", "path": "/count", "source": "random", "template": {"n": 1}},
                             TICKS, HIDDEN])
async def test_the_api_says_where_each_stream_is_served_over_socketio(http_client, http_url):
    """So a page can connect without probing /socket.io/: its namespace and event, or null when in none."""
    listed = await call(http_client, http_url("/api/streams"), "GET")
    assert {s["name"]: s["socketio"] for s in listed} == {
        "count": {"namespace": "/count", "event": "count"}, "ticks": {"namespace": "/ticker", "event": "tick"},
        "hidden": None}
    one = await call(http_client, http_url("/api/streams/ticks"), "GET")
    assert one["socketio"] == {"namespace": "/ticker", "event": "tick"}


@pytest.mark.gen_test
async def test_unknown_stream_is_404_naming_the_streams(http_client, http_url):
    payload = await call(http_client, http_url("/api/streams/nope"), "GET", expect=404)
    assert "stats, replay" in payload["error"]
    await call(http_client, http_url("/api/streams/nope/push"), body={}, expect=404)
    await call(http_client, http_url("/api/nothing"), "GET", expect=404)


@pytest.mark.gen_test
async def test_push_json_reaches_every_client_as_compact_json(http_client, http_url, ws_connect):
    clients = [await ws_connect("/") for _ in range(3)]
    for conn in clients:
        await conn.read_message()
    payload = await call(http_client, http_url("/api/streams/stats/push"),
                         body='{"alarm": "烟雾", "level": 3.0, "zones": [1, 2]}')
    assert payload == {"sent_to": 3}
    for conn in clients:
        while (message := await conn.read_message()).startswith('{"face"'):
            pass
        assert message == '{"alarm":"烟雾","level":3,"zones":[1,2]}'


@pytest.mark.gen_test
async def test_push_text_is_sent_verbatim_and_octet_stream_as_binary(http_client, http_url, ws_connect):
    conn = await ws_connect("/replay")
    await conn.read_message()
    url = http_url("/api/streams/replay/push")
    await call(http_client, url, body="not { json", headers={"Content-Type": "text/plain; charset=utf-8"})
    await call(http_client, url, body=b"\x00\xff", headers={"Content-Type": "application/octet-stream"})
    received = [m for m in await frames_within(conn, 0.15) if not (isinstance(m, str) and m.startswith('{"face"'))]
    assert received == ["not { json", b"\x00\xff"]


@pytest.mark.gen_test
async def test_push_does_not_disturb_the_timer(http_client, http_url, ws_connect):
    conn = await ws_connect("/")
    await conn.read_message()
    await call(http_client, http_url("/api/streams/stats/push"), body={"x": 1})
    received = await frames_within(conn, 0.5)
    pushes = [m for m in received if m.startswith('{"face"')]
    assert '{"x":1}' in received and 7 <= len(pushes) <= 12  # still every 50 ms


@pytest.mark.gen_test
async def test_push_with_invalid_json_is_400_with_the_parser_message(http_client, http_url):
    payload = await call(http_client, http_url("/api/streams/stats/push"), body='{"a": }', expect=400)
    assert "invalid JSON body: Expecting value: line 1 column 7" in payload["error"]


@pytest.mark.config(server={"max_body_bytes": 100})
@pytest.mark.gen_test
async def test_push_body_over_max_body_bytes_is_413(http_client, http_url):
    payload = await call(http_client, http_url("/api/streams/stats/push"), body=json.dumps({"a": "x" * 200}),
                         expect=413)
    assert "max_body_bytes" in payload["error"]


@pytest.mark.gen_test
async def test_wrong_method_is_405(http_client, http_url):
    await call(http_client, http_url("/api/streams/stats/push"), "GET", expect=405)
    await call(http_client, http_url("/api/streams/stats"), "POST", body="", expect=405)


@pytest.mark.gen_test
async def test_pause_stops_frames_without_disconnecting_and_resume_restarts_them(http_client, http_url, ws_connect):
    conn = await ws_connect("/")
    await conn.read_message()
    paused = await call(http_client, http_url("/api/streams/stats/pause"))
    assert paused["paused"] is True
    await frames_within(conn, 0.06)  # a frame already on its way
    assert await frames_within(conn, 0.25) == []
    assert conn.close_code is None
    await call(http_client, http_url("/api/streams/stats/push"), body={"while": "paused"})
    assert await frames_within(conn, 0.1) == ['{"while":"paused"}']
    resumed = await call(http_client, http_url("/api/streams/stats/resume"))
    assert resumed["paused"] is False
    frames = await frames_within(conn, 0.3)
    assert len(frames) >= 4 and all(set(json.loads(f)) == {k for k, _ in CATEGORIES} for f in frames)


@pytest.mark.config(replay={"timeline": "shared", "interval_ms": 100})
@pytest.mark.gen_test
async def test_seek_moves_a_shared_replay_to_the_entry(http_client, http_url, ws_connect, app_config):
    conn = await ws_connect("/replay")
    await conn.read_message()
    state = await call(http_client, http_url("/api/streams/replay/seek"), body={"index": 17})
    assert state["position"] == 17
    expected = [json.loads(f.data) for f in app_config.sources["replay"].frames[17:19]]
    assert [json.loads(await conn.read_message()) for _ in range(2)] == expected


@pytest.mark.config(replay={"timeline": "shared"})
@pytest.mark.gen_test
@pytest.mark.parametrize("body", [{"index": 30}, {"index": -1}, {"index": "3"}, {"at": 3}, [3]])
async def test_seek_out_of_range_or_malformed_is_400(http_client, http_url, body):
    payload = await call(http_client, http_url("/api/streams/replay/seek"), body=body, expect=400)
    assert "N from 0 to 29" in payload["error"]


@pytest.mark.gen_test
async def test_seek_on_a_per_client_timeline_is_409(http_client, http_url):
    payload = await call(http_client, http_url("/api/streams/replay/seek"), body={"index": 1}, expect=409)
    assert "per-client" in payload["error"]


@pytest.mark.config(server={"api_token": "s3cret"})
@pytest.mark.gen_test
async def test_with_a_token_post_needs_the_bearer_header(http_client, http_url):
    url = http_url("/api/streams/stats/pause")
    await call(http_client, url, expect=401)
    await call(http_client, url, headers={"Authorization": "Bearer wrong"}, expect=401)
    await call(http_client, url, headers={"Authorization": "Bearer s3cret"})
    await call(http_client, http_url("/api/streams/stats"), "GET")  # GET stays open


REMOTE = {"X-Real-Ip": "192.0.2.10"}


@pytest.mark.gen_test
async def test_post_from_a_non_loopback_address_is_403_without_a_token(http_client, http_url):
    payload = await call(http_client, http_url("/api/streams/stats/push"), body={}, headers=REMOTE, expect=403)
    assert "api_token" in payload["error"]
    await call(http_client, http_url("/api/streams"), "GET", headers=REMOTE)  # reads stay open


@pytest.mark.config(server={"api_token": "s3cret"})
@pytest.mark.gen_test
async def test_with_a_token_a_remote_client_may_post(http_client, http_url):
    await call(http_client, http_url("/api/streams/stats/pause"), headers={**REMOTE, "Authorization": "Bearer s3cret"})
    await call(http_client, http_url("/api/streams/stats/resume"), headers=REMOTE, expect=401)
