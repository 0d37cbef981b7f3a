"""Echo, origin checks, limits, the read-only HTTP API and the demo page."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect


@pytest.mark.gen_test
async def test_echo_returns_text_as_text(ws_connect):
    conn = await ws_connect("/echo")
    await conn.write_message("héllo 你好")
    assert await conn.read_message() == "héllo 你好"


@pytest.mark.gen_test
async def test_echo_returns_binary_as_binary(ws_connect):
    conn = await ws_connect("/echo")
    payload = bytes(range(256))
    await conn.write_message(payload, binary=True)
    assert await conn.read_message() == payload


@pytest.mark.config(server={"allowed_origins": ["http://localhost:*"]})
@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/echo"])
async def test_origin_outside_the_allow_list_is_refused_with_403(ws_url, path):
    with pytest.raises(HTTPClientError) as caught:
        await websocket_connect(HTTPRequest(ws_url(path), headers={"Origin": "http://evil.example"}))
    assert caught.value.code == 403


@pytest.mark.config(server={"allowed_origins": ["http://localhost:*"]})
@pytest.mark.gen_test
async def test_origin_in_the_allow_list_and_no_origin_are_accepted(ws_connect, ws_url):
    browser = await websocket_connect(HTTPRequest(ws_url("/"), headers={"Origin": "http://localhost:5173"}))
    assert await browser.read_message() is not None
    browser.close()
    script = await ws_connect("/echo")  # no Origin header: a non-browser client
    await script.write_message("x")
    assert await script.read_message() == "x"


@pytest.mark.gen_test
async def test_healthz(http_client, http_url):
    response = await http_client.fetch(http_url("/healthz"))
    assert json.loads(response.body) == {"status": "ok"}
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.gen_test
async def test_api_streams_lists_every_stream_with_live_counters(http_client, http_url, ws_connect):
    conn = await ws_connect("/")
    await conn.read_message()
    streams = json.loads((await http_client.fetch(http_url("/api/streams"))).body)
    assert [s["name"] for s in streams] == ["stats", "replay"]
    stats = streams[0]
    assert {"name", "path", "source", "interval_ms", "timeline", "clients", "frames_sent"} <= set(stats)
    settings = (stats["path"], stats["source"], stats["interval_ms"], stats["timeline"])
    assert settings == ("/", "random", 50, "per-client")
    assert stats["clients"] == 1 and stats["frames_sent"] >= 1 and stats["paused"] is False
    assert streams[1]["clients"] == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/replay"])
async def test_plain_get_of_a_stream_path_serves_the_demo_page(http_client, http_url, path):
    response = await http_client.fetch(http_url(path))
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"<html" in response.body.lower()


@pytest.mark.gen_test
async def test_static_files_are_revalidated_on_every_load(http_client, http_url):
    response = await http_client.fetch(http_url("/static/app.js"))
    assert response.headers["Cache-Control"] == "no-cache" and "Etag" in response.headers


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/replay"])
async def test_head_of_a_stream_path_answers_with_the_page_headers(http_client, http_url, path):
    response = await http_client.fetch(http_url(path), method="HEAD")
    assert response.code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert response.body == b""


@pytest.mark.config(stats=None)
@pytest.mark.gen_test
async def test_demo_page_is_served_at_root_without_a_stream_there(http_client, http_url):
    response = await http_client.fetch(http_url("/"))
    assert b"<html" in response.body.lower()


@pytest.mark.gen_test
async def test_unknown_path_is_404(http_client, http_url):
    with pytest.raises(HTTPClientError) as caught:
        await http_client.fetch(http_url("/nope"))
    assert caught.value.code == 404


@pytest.mark.config(server={"max_clients": 2})
@pytest.mark.gen_test
async def test_handshake_over_max_clients_gets_503_and_others_keep_receiving(ws_connect, ws_url, http_client, http_url):
    first = await ws_connect("/")
    await ws_connect("/echo")
    with pytest.raises(HTTPClientError) as caught:
        await websocket_connect(ws_url("/"))
    assert caught.value.code == 503
    assert "max_clients" in json.loads(caught.value.response.body)["error"]
    for _ in range(3):
        assert await asyncio.wait_for(first.read_message(), 1) is not None


@pytest.mark.gen_test
async def test_the_open_file_limit_caps_the_client_limit_below_max_clients(hub, ws_connect, ws_url):
    """Past the process's open-file limit accept() fails in a loop: the server refuses before that."""
    hub.file_client_limit = 1  # as server.py sets it from RLIMIT_NOFILE
    await ws_connect("/")
    with pytest.raises(HTTPClientError) as caught:
        await websocket_connect(ws_url("/"))
    assert caught.value.code == 503
    assert json.loads(caught.value.response.body)["error"] == (
        "server is at its limit of 1 clients (the process's open-file limit: ulimit -n)")


@pytest.mark.config(server={"max_message_bytes": 1000})
@pytest.mark.gen_test
async def test_message_over_max_message_bytes_closes_with_1009(ws_connect):
    conn = await ws_connect("/echo")
    await conn.write_message("x" * 2000)
    assert await conn.read_message() is None
    assert conn.close_code == 1009


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/echo"])
async def test_sockets_send_without_nagle_delay(ws_connect, hub, path):
    """TCP_NODELAY: a frame is not held back ~40 ms by Nagle + delayed ACK after the client spoke."""
    conn = await ws_connect(path)
    await conn.write_message("hello")
    await conn.read_message()
    [connection] = hub.sockets
    sock = connection.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
