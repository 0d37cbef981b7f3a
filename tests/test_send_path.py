"""The send path: pre-built frames written straight to the socket, and the write_message fallback.

The fast path reaches into Tornado internals (``IOStream`` buffers and its
socket), so these tests pin what it must keep: identical frames with and
without compression, byte order behind queued data, and nothing lost when the
kernel takes only part of a frame.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from tornado.iostream import IOStream
from tornado.routing import Rule

from app import EchoPathMatches, StreamPathMatches, make_app
from handlers.echo import EchoHandler
from handlers.push import PushHandler
from streams.stream import write_frame
from streams.wire import ws_frame

SEQ = {"n": {"$seq": True}, "text": "人像 and a long enough tail to be worth compressing " * 4}


class CompressingPushHandler(PushHandler):
    """A stream handler that accepts permessage-deflate when a client offers it."""

    def get_compression_options(self) -> dict:
        return {}


class CompressingEchoHandler(EchoHandler):
    """The echo handler, accepting permessage-deflate when a client offers it."""

    def get_compression_options(self) -> dict:
        return {}


@pytest.fixture
def app(hub):
    """The usual app, except that stream paths negotiate compression with clients that offer it."""
    app = make_app(hub)
    app.wildcard_router.rules.insert(0, Rule(StreamPathMatches(hub), CompressingPushHandler, {"hub": hub}))
    app.wildcard_router.rules.insert(0, Rule(EchoPathMatches(hub), CompressingEchoHandler, {"hub": hub}))
    return app


@pytest.mark.config(stats={"template": SEQ, "timeline": "shared", "interval_ms": 20})
@pytest.mark.gen_test
async def test_compressed_and_plain_clients_get_identical_frames(hub, ws_connect):
    """A client that negotiated compression gets write_message; a plain one gets the pre-built frame."""
    plain = await ws_connect("/")
    deflate = await ws_connect("/", compression_options={})
    assert deflate.protocol._compressor is not None  # compression really was negotiated
    raw_flags = sorted(sub.raw for sub in hub.streams["stats"]._subscribers.values())
    assert raw_flags == [False, True]
    first = await deflate.read_message()  # the late joiner's first frame is the current one
    while await plain.read_message() != first:
        pass  # frames sent before the second client joined
    for _ in range(5):
        got_plain, got_deflate = await plain.read_message(), await deflate.read_message()
        assert got_plain == got_deflate
        assert json.loads(got_plain)["text"] == SEQ["text"]


@pytest.mark.gen_test
async def test_write_frame_keeps_every_byte_in_order_when_the_kernel_takes_only_part():
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    stream = IOStream(left)
    frames = [ws_frame(bytes([i]) * 300_000, binary=True) for i in range(3)]
    results = [write_frame(stream, frame) for frame in frames]
    assert results[0] is not None  # too big for the socket buffer: the rest was queued
    received = bytearray()
    reader = IOStream(right)
    total = sum(len(f) for f in frames)
    while len(received) < total:
        received += await asyncio.wait_for(reader.read_bytes(total - len(received), partial=True), 5)
    assert bytes(received) == b"".join(frames)
    stream.close()
    reader.close()


@pytest.mark.gen_test
async def test_write_frame_sends_at_once_when_nothing_is_queued():
    left, right = socket.socketpair()
    stream = IOStream(left)
    frame = ws_frame(b'{"a":1}')
    assert write_frame(stream, frame) is None  # the kernel took all of it: no Future, no copy
    assert right.recv(100) == frame
    stream.close()
    right.close()


@pytest.mark.parametrize("compression", [None, {}], ids=["plain", "deflate"])
@pytest.mark.gen_test
async def test_replies_and_echoes_are_the_same_with_and_without_compression(ws_connect, compression):
    """Replies and echoes take the pre-built-frame path, or write_message when compressed."""
    stats = await ws_connect("/", compression_options=compression)
    echo = await ws_connect("/echo", compression_options=compression)
    assert (echo.protocol._compressor is not None) == (compression is not None)
    await stats.write_message("héllo 你好")
    while (reply := await asyncio.wait_for(stats.read_message(), 2)).startswith("{"):
        pass  # pushed frames
    assert reply == "web socket 已连接: héllo 你好"
    for message in ("x" * 200_000, "héllo 你好", bytes(range(256))):  # one larger than a socket buffer
        await echo.write_message(message, binary=isinstance(message, bytes))
        assert await asyncio.wait_for(echo.read_message(), 2) == message
