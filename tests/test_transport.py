"""The WebSocket transport from the outside: handshake negotiation, framing, close codes and limits.

Each test talks to the server over a socket: Tornado's and the websockets
library's clients where a well-behaved client is enough, the hand-written
``RawClient`` where the bytes on the wire matter.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect
from websockets.asyncio.client import connect as websockets_connect

from raw_client import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawClient,
    client_frame,
)
from server_process import ServerProcess, free_port
from streams.sources import Frame
from support import base_config, push_only_stream, until, write_config
from transport.connection import Connection, Connections

MASK = b"\x12\x34\x56\x78"  # a real mask, so a payload that is not unmasked cannot pass for the right one
GRAPHQL = ["graphql-transport-ws"]
OFFER_DEFLATE = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
RSV1 = 0x40

WITH_QUIET = base_config()["streams"] + [{**push_only_stream("quiet"), "timeline": "shared"}]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


async def upgrade(raw, path: str, headers: dict[str, str]) -> tuple[RawClient, dict[str, str]]:
    """A raw WebSocket past its handshake, and the headers of the 101 response."""
    client = await raw.open()
    status, fields, body = await client.handshake(path, headers)
    assert status == 101, body
    return client, fields


def inflate(wire: bytes) -> bytes:
    """The message in a compressed server frame (RFC 7692 7.2.2: the stripped tail is put back)."""
    header = 4 if wire[1] == 126 else 2
    return zlib.decompressobj(-15).decompress(wire[header:] + b"\x00\x00\xff\xff")


# -- subprotocols


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/echo"])
async def test_without_a_subprotocol_list_the_first_offer_is_accepted(raw, path):
    client, fields = await upgrade(raw, path, {"Sec-WebSocket-Protocol": "graphql-ws, graphql-transport-ws"})
    assert fields["sec-websocket-protocol"] == "graphql-ws"


@pytest.mark.config(stats={"subprotocols": GRAPHQL}, echo={"path": "/echo", "subprotocols": GRAPHQL})
@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/echo"])
async def test_with_a_subprotocol_list_the_first_supported_offer_is_picked(ws_url, path):
    conn = await websocket_connect(ws_url(path), subprotocols=["graphql-ws", "graphql-transport-ws"])
    assert conn.selected_subprotocol == "graphql-transport-ws"
    conn.close()


@pytest.mark.config(stats={"subprotocols": GRAPHQL}, echo={"path": "/echo", "subprotocols": GRAPHQL})
@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/echo"])
async def test_offering_only_unsupported_subprotocols_gets_400_naming_the_supported_ones(raw, path):
    client = await raw.open()
    status, fields, body = await client.handshake(path, {"Sec-WebSocket-Protocol": "graphql-ws, mqtt"})
    assert status == 400 and fields["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert "supported: graphql-transport-ws" in error and "graphql-ws, mqtt" in error


@pytest.mark.config(stats={"subprotocols": GRAPHQL}, echo={"path": "/echo", "subprotocols": GRAPHQL})
@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/echo"])
async def test_with_a_subprotocol_list_a_handshake_offering_none_is_accepted_without_one(raw, path):
    client, fields = await upgrade(raw, path, {})
    assert "sec-websocket-protocol" not in fields
    if path == "/echo":
        await client.send_frame(b"still served", mask=MASK)
    assert (await client.read_frame())[0] == OP_TEXT


# -- permessage-deflate


@pytest.mark.config(server={"compression": True}, streams=WITH_QUIET)
@pytest.mark.gen_test
async def test_compressing_and_plain_clients_of_a_shared_stream_receive_the_same_messages(
        ws_url, http_client, http_url, hub):
    plain = await websocket_connect(ws_url("/quiet"))
    async with websockets_connect(ws_url("/quiet"), proxy=None) as compressing:
        assert compressing.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        assert "Sec-WebSocket-Extensions" not in plain.headers
        await until(lambda: hub.streams["quiet"].clients == 2, 1)
        sent = [{"seq": 1}, {"text": "数据 " * 500}, {"seq": 3}]
        for body in sent:
            await http_client.fetch(http_url("/api/streams/quiet/push"), method="POST", body=json.dumps(body))
        from_compressing = [json.loads(await asyncio.wait_for(compressing.recv(), 1)) for _ in sent]
        from_plain = [json.loads(await asyncio.wait_for(plain.read_message(), 1)) for _ in sent]
    plain.close()
    assert from_compressing == from_plain == sent


@pytest.mark.config(server={"compression": True})
@pytest.mark.gen_test
async def test_tornado_client_offering_compression_negotiates_it_and_echoes_round_trip(ws_url):
    conn = await websocket_connect(ws_url("/echo"), compression_options={})
    assert conn.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
    message = "compressible " * 1000
    await conn.write_message(message)
    assert await conn.read_message() == message
    conn.close()


@pytest.mark.config(server={"compression": True}, streams=WITH_QUIET)
@pytest.mark.gen_test
async def test_a_shared_frame_is_compressed_once_for_all_compressing_clients(raw, hub):
    first, fields = await upgrade(raw, "/quiet", OFFER_DEFLATE)
    second, _ = await upgrade(raw, "/quiet", OFFER_DEFLATE)
    assert fields["sec-websocket-extensions"].startswith("permessage-deflate")
    await until(lambda: hub.streams["quiet"].clients == 2, 1)
    message = json.dumps({"values": list(range(500))}).encode()
    frame = Frame(message)
    assert hub.push("quiet", frame) == 2
    wires = [await first.read_wire(), await second.read_wire()]
    assert wires[0] == wires[1] == frame.deflated[1]  # what both got is the one copy cached on the frame
    assert wires[0][0] == 0x80 | RSV1 | OP_TEXT and len(wires[0]) < len(message)
    assert inflate(wires[0]) == message
    cached = frame.deflated
    hub.push("quiet", frame)  # a frame sent again is not compressed again
    assert frame.deflated is cached and await first.read_wire() == cached[1]


@pytest.mark.config(server={"compression": True})
@pytest.mark.gen_test
async def test_a_client_that_does_not_offer_compression_gets_plain_frames(raw):
    client, fields = await upgrade(raw, "/", {})
    assert "sec-websocket-extensions" not in fields
    wire = await client.read_wire()
    assert wire[0] == 0x80 | OP_TEXT
    assert "face" in json.loads(wire[4 if wire[1] == 126 else 2:])


@pytest.mark.gen_test
async def test_with_compression_off_nothing_is_negotiated_even_when_offered(raw, ws_url):
    client, fields = await upgrade(raw, "/", OFFER_DEFLATE)
    assert "sec-websocket-extensions" not in fields
    assert (await client.read_wire())[0] == 0x80 | OP_TEXT
    async with websockets_connect(ws_url("/echo"), proxy=None) as library_client:
        assert "Sec-WebSocket-Extensions" not in library_client.response.headers
        await library_client.send("plain")
        assert await library_client.recv() == "plain"


# -- reading what clients send


@pytest.mark.gen_test
@pytest.mark.parametrize("size", [5, 1000])
async def test_a_frame_sent_in_the_same_write_as_the_handshake_is_echoed(raw, size):
    """Bytes right behind the request (already read by the HTTP server) reach the WebSocket."""
    payload = b"x" * size
    client = await raw.open()
    status, _, _ = await client.handshake("/echo", then=client_frame(payload, mask=MASK))
    assert status == 101
    assert await client.read_frame() == (OP_TEXT, payload)


# What a client sends (as frames), and the one answer it must get.
ROUND_TRIPS = {
    "small text": ([client_frame("héllo".encode(), mask=MASK)], (OP_TEXT, "héllo".encode())),
    "binary": ([client_frame(bytes(range(40)), OP_BINARY, mask=MASK)], (OP_BINARY, bytes(range(40)))),
    "ping": ([client_frame(b"are you there", OP_PING, mask=MASK)], (OP_PONG, b"are you there")),
    "125-byte payload": ([client_frame(b"a" * 125, mask=MASK)], (OP_TEXT, b"a" * 125)),
    "126-byte payload": ([client_frame(b"b" * 126, mask=MASK)], (OP_TEXT, b"b" * 126)),
    "3 fragments": ([client_frame(b"one ", mask=MASK, fin=False),
                     client_frame("двa ".encode(), OP_CONTINUATION, mask=MASK, fin=False),
                     client_frame(b"three", OP_CONTINUATION, mask=MASK)],
                    (OP_TEXT, "one двa three".encode())),
}
SHORT_PATH = {"small text", "binary", "ping", "125-byte payload"}  # one complete masked frame of <= 125 bytes


@pytest.mark.gen_test
@pytest.mark.parametrize("writes", ["one write", "two writes"])
@pytest.mark.parametrize("case", ROUND_TRIPS)
async def test_short_path_and_parser_answer_every_frame_exactly_once(raw, hub, case, writes):
    """In one write, a small complete frame takes the short path (the connection never creates its
    parser); split across two writes, the same bytes go through the parser. The answer is the same."""
    frames, answer = ROUND_TRIPS[case]
    data = b"".join(frames)
    client = await raw.connect("/echo")
    [connection] = hub.sockets
    if writes == "one write":
        await client.send(data)
    else:
        await client.send(data[:len(data) // 2])
        await until(lambda: connection.parser is not None, 1)  # the first half was read on its own
        await client.send(data[len(data) // 2:])
    assert await client.read_frame() == answer
    took_short_path = connection.parser is None
    await client.send_frame(b"next", mask=MASK)
    assert await client.read_frame() == (OP_TEXT, b"next")  # and nothing was answered twice
    assert took_short_path == (writes == "one write" and case in SHORT_PATH)


# -- close codes (RFC 6455 7.4)


@pytest.mark.gen_test
@pytest.mark.parametrize("code", [0, 999, 1005, 1006, 1016, 2999, 5000])
async def test_a_close_code_a_client_must_not_send_is_answered_with_1002(raw, code):
    client = await raw.connect("/echo")
    await client.send_frame(close_payload(code), OP_CLOSE, mask=MASK)
    assert await client.wait_closed() == 1002


@pytest.mark.gen_test
@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_a_valid_close_code_is_echoed_and_the_server_ends_tcp(raw, code):
    client = await raw.connect("/echo")
    await client.send_frame(close_payload(code, b"bye"), OP_CLOSE, mask=MASK)
    frame = await client.read_frame()
    assert frame[0] == OP_CLOSE and frame[1][:2] == close_payload(code)
    assert await client.read_frame() is None


@pytest.mark.gen_test
async def test_a_close_frame_with_a_one_byte_payload_is_answered_with_1002(raw):
    client = await raw.connect("/echo")
    await client.send_frame(b"\x03", OP_CLOSE, mask=MASK)
    assert await client.wait_closed() == 1002


@pytest.mark.gen_test
async def test_a_close_reason_that_is_not_utf8_is_answered_with_1007(raw):
    """RFC 6455 8.1: invalid UTF-8 fails the connection; 1007 names the cause (Autobahn 7.5.1
    accepts 1002 or 1007)."""
    client = await raw.connect("/echo")
    await client.send_frame(close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80edited"), OP_CLOSE, mask=MASK)
    assert await client.wait_closed() == 1007


@pytest.mark.gen_test
@pytest.mark.parametrize("writes", ["one write", "separate writes"])
async def test_a_close_between_fragments_is_echoed_and_the_unfinished_message_dropped(raw, hub, writes):
    """RFC 6455 5.4 lets control frames arrive between fragments (Autobahn 7.1.5)."""
    client = await raw.connect("/echo")
    [connection] = hub.sockets
    first = client_frame(b"unfinished ", mask=MASK, fin=False)
    close = client_frame(close_payload(4001), OP_CLOSE, mask=MASK)
    if writes == "one write":
        await client.send(first + close)
    else:
        await client.send(first)
        await until(lambda: connection.parser is not None, 1)  # the first fragment was read on its own
        await client.send(close)
    frames = []
    while (frame := await client.read_frame()) is not None:
        frames.append(frame)
    assert frames == [(OP_CLOSE, close_payload(4001))]


@pytest.mark.config(stats={"rules": [{"match": {"text": "bye"}, "do": [{"close": {"code": 4000}}]}]})
@pytest.mark.gen_test
async def test_a_rule_that_closes_on_a_message_read_together_with_the_clients_close_ends_cleanly(raw, caplog):
    """The message reaches the rules after the parser has taken the client's close: that close is echoed."""
    client = await raw.connect("/")
    await client.send(client_frame(b"bye", mask=MASK) + client_frame(close_payload(1000), OP_CLOSE, mask=MASK))
    assert await client.wait_closed() == 1000
    assert await client.read_frame() is None
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.gen_test
async def test_invalid_utf8_in_the_first_fragment_closes_with_1007_before_the_message_ends(raw):
    client = await raw.connect("/echo")
    await client.send_frame(b"caf\xc3(", mask=MASK, fin=False)  # the last fragment is never sent
    assert await client.wait_closed() == 1007


# -- the server ends connections


@pytest.mark.config(replay={"loop": False, "interval_ms": 5})
@pytest.mark.gen_test
async def test_a_finished_replay_closes_with_1000_and_the_server_ends_tcp(raw, app_config):
    client = await raw.connect("/replay")
    frames = []
    while (frame := await client.read_frame())[0] != OP_CLOSE:
        frames.append(frame)
    assert len(frames) == app_config.sources["replay"].length
    assert frame == (OP_CLOSE, close_payload(1000, b"replay finished"))
    await client.send_frame(close_payload(1000), OP_CLOSE, mask=MASK)
    assert await client.read_frame(timeout=1) is None


# -- HTTP: request heads over 64 KiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server: its HTTP limits are set where it listens (server.py), not in make_app."""
    folder: Path = tmp_path_factory.mktemp("transport-server")
    with ServerProcess(write_config(folder, base_config()), free_port(), folder / "server.log") as process:
        yield process


def get_with_header(port: int, header_bytes: int) -> tuple[int, str, str]:
    """GET /healthz with one header of ``header_bytes``: the status, Content-Type and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz", headers={"X-Padding": "p" * header_bytes})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        conn.close()


def test_a_request_head_over_64_kib_gets_431_with_a_reason(server):
    status, content_type, body = get_with_header(server.port, 70 * 1024)
    assert status == 431 and content_type.startswith("text/plain")
    assert "the limit is 65536" in body


def test_a_request_head_under_64_kib_is_served(server):
    assert get_with_header(server.port, 60 * 1024)[:1] == (200,)


@pytest.mark.gen_test
async def test_a_websocket_handshake_with_a_30_kib_cookie_upgrades_through_the_head_limit(server):
    conn = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{server.port}/echo",
                                               headers={"Cookie": "session=" + "c" * 30 * 1024}))
    await conn.write_message("after a big handshake")
    assert await conn.read_message() == "after a big handshake"
    conn.close()


class RecordingTransport:
    """The part of a transport a Connection uses, recording what it is asked to do."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False
        self.pending = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True


class FailingEndpoint:
    """An endpoint with a bug in every callback."""

    def on_open(self, connection) -> None:
        raise RuntimeError("bug in on_open")

    def on_message(self, connection, data: bytes, binary: bool) -> None:
        raise RuntimeError("bug in on_message")

    def on_close(self, connection) -> None:
        raise RuntimeError("bug in on_close")


@pytest.mark.gen_test
async def test_an_endpoint_that_fails_to_open_a_connection_drops_only_that_connection(caplog):
    registry = Connections(lambda: (0.0, 0.0))
    connection = Connection(FailingEndpoint(), "/x", b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                            max_message_bytes=1024, registry=registry)
    transport = RecordingTransport()
    with caplog.at_level(logging.ERROR, logger="mockws.transport"):
        connection.connection_made(transport)
        connection.connection_lost(None)  # what the transport reports after abort()
    assert transport.aborted and not connection.is_open
    assert [r.getMessage() for r in caplog.records] == [
        "/x: unexpected error starting a connection; dropping it", "/x: unexpected error ending a connection"]
    assert len(registry) == 0
