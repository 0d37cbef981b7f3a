"""Bad clients and bad networks: no single client can hurt another one or the server's memory.

The misbehaving clients are written by hand (tests/raw_client.py): one stops
reading, one vanishes, one breaks the protocol, one reconnects in a tight
loop. The server runs in this process, so its memory, file descriptors,
timers and tasks are this process's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from itertools import pairwise
from statistics import median

import pytest

from raw_client import DROPPED, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT, client_frame
from streams.sources import Frame
from streams.stream import SLOW_CLIENT_GRACE_S
from support import base_config, pending_timers, push_only_stream, until

MB = 1_000_000
MiB = 1024 * 1024
FRAME_BYTES = 256 * 1024
SMALL_RCVBUF = 16 * 1024  # a client that stops reading should not hide megabytes in its kernel buffer

# a stream that only sends what a test pushes
BULK = push_only_stream("bulk")
WITH_BULK = base_config()["streams"] + [BULK]


def rss_bytes() -> int:
    """This process's resident memory."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def resources(io_loop) -> dict[str, int]:
    """Open file descriptors, pending (not cancelled) timers and tasks of the event loop."""
    return {"fds": len(os.listdir("/proc/self/fd")),
            "timers": pending_timers(io_loop),
            "tasks": len(asyncio.all_tasks(io_loop.asyncio_loop))}


async def settled(io_loop, baseline: dict[str, int], timeout: float = 3.0) -> dict[str, int]:
    """The resource counts once they are back to ``baseline``, or as they are after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (now := resources(io_loop)) != baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return now


async def server_side(hub, connect):
    """Open a connection with ``connect()``; returns it and the server's handler for it."""
    before = set(hub.sockets)
    conn = await connect()
    await until(lambda: len(hub.sockets - before) == 1, 1)
    [handler] = hub.sockets - before
    return conn, handler


class Ticks:
    """Arrival times of the frames a well-behaved client receives in the background."""

    def __init__(self, conn) -> None:
        self.times: list[float] = []
        self._task = asyncio.ensure_future(self._read(conn))

    async def _read(self, conn) -> None:
        while await conn.read_message() is not None:
            self.times.append(time.monotonic())

    def stop(self) -> list[float]:
        """Stop listening; the gaps between arrivals."""
        self._task.cancel()
        return [b - a for a, b in pairwise(self.times)]


async def push_through(stream, reader, total_bytes: int, on_push: Callable[[], None] = lambda: None,
                       window: int = 3) -> int:
    """Push ``total_bytes`` of fresh binary frames into ``stream``, paced by ``reader`` (a client that
    must receive every one of them, in order); returns the highest RSS seen meanwhile."""
    count = total_bytes // FRAME_BYTES
    received = 0
    progress = asyncio.Event()

    async def read_all() -> None:
        nonlocal received
        while received < count:
            message = await reader.read_message()
            assert message is not None, f"the reading client was closed: {reader.close_code}"
            assert int.from_bytes(message[:4], "big") == received
            received += 1
            progress.set()

    reading = asyncio.ensure_future(read_all())
    peak = rss_bytes()
    for i in range(count):
        # new bytes for every frame, as a template renders them: an unbounded buffer would keep them all
        stream.push(Frame(i.to_bytes(4, "big") + bytes(FRAME_BYTES - 4), binary=True))
        on_push()
        while i - received >= window and not reading.done():
            progress.clear()
            await asyncio.wait_for(progress.wait(), 5)
        if i % 8 == 0:
            peak = max(peak, rss_bytes())
    await asyncio.wait_for(reading, 5)
    return max(peak, rss_bytes())


# -- slow consumers


@pytest.mark.config(streams=WITH_BULK)
@pytest.mark.gen_test(timeout=30)
async def test_client_that_never_reads_is_cut_off_while_memory_stays_bounded(hub, raw, ws_connect,
                                                                             record_property):
    """50 MB pushed past a client that stopped reading right after its handshake: the server closes
    it (1008), drops its TCP connection after the grace period, its RSS grows by a few MB at most
    and the other clients keep receiving: every frame, and on time."""
    stream = hub.streams["bulk"]
    reader = await ws_connect("/bulk")
    ticks = Ticks(await ws_connect("/replay"))  # 20 ms interval
    slow, slow_handler = await server_side(hub, lambda: raw.connect("/bulk", SMALL_RCVBUF))
    cut_off: list[float] = []

    def watch() -> None:
        if not cut_off and stream.clients == 1:
            cut_off.append(time.monotonic())

    rss_before = rss_bytes()
    rss_peak = await push_through(stream, reader, 50 * MB, watch)
    record_property("rss_before_mb", round(rss_before / MB, 1))
    record_property("rss_peak_mb", round(rss_peak / MB, 1))
    assert rss_peak - rss_before < 20 * MB, f"{(rss_peak - rss_before) / MB:.1f} MB"
    assert cut_off and stream.frames_dropped == 0
    await until(lambda: slow_handler not in hub.sockets, SLOW_CLIENT_GRACE_S + 2)
    assert time.monotonic() - cut_off[0] >= SLOW_CLIENT_GRACE_S * 0.9
    gaps = ticks.stop()  # from the first push to the slow client's TCP drop
    assert len(gaps) >= 20 and median(gaps) < 0.04 and max(gaps) < 1.0, gaps  # 20 ms interval
    # its 1008 was queued behind the frames it never read, so it only sees its connection drop (1006)
    assert await slow.wait_closed() == DROPPED


@pytest.mark.config(streams=WITH_BULK)
@pytest.mark.gen_test(timeout=10)
async def test_client_that_reads_again_within_the_grace_period_gets_the_1008_close(hub, raw):
    stream = hub.streams["bulk"]
    slow = await raw.connect("/bulk", SMALL_RCVBUF)
    for i in range(200):  # 50 MB at most
        stream.push(Frame(i.to_bytes(4, "big") + bytes(FRAME_BYTES - 4), binary=True))
        if stream.clients == 0:
            break
    assert stream.clients == 0
    assert await slow.wait_closed() == 1008


@pytest.mark.config(streams=WITH_BULK, server={"slow_clients": "drop"})
@pytest.mark.gen_test(timeout=30)
async def test_drop_mode_skips_and_counts_frames_for_a_client_that_never_reads(hub, raw, ws_connect,
                                                                               record_property):
    """With slow_clients: drop, a client that stopped reading stays connected; every frame either
    reaches it or is counted as dropped, and once it reads again it gets new frames."""
    stream = hub.streams["bulk"]
    reader = await ws_connect("/bulk")
    slow = await raw.connect("/bulk", SMALL_RCVBUF)
    rss_before = rss_bytes()
    rss_peak = await push_through(stream, reader, 50 * MB)
    record_property("drop_rss_before_mb", round(rss_before / MB, 1))
    record_property("drop_rss_peak_mb", round(rss_peak / MB, 1))
    assert rss_peak - rss_before < 20 * MB, f"{(rss_peak - rss_before) / MB:.1f} MB"
    assert stream.clients == 2
    ids = []
    while True:  # catch up with what was queued for it
        try:
            opcode, payload = await slow.read_frame(timeout=0.3)
        except asyncio.TimeoutError:
            break
        ids.append(int.from_bytes(payload[:4], "big"))
    count = 50 * MB // FRAME_BYTES
    assert ids == sorted(ids) and stream.frames_dropped > 0
    assert len(ids) + stream.frames_dropped == count
    stream.push(Frame.text("caught up"))
    assert await slow.read_frame() == (OP_TEXT, b"caught up")


@pytest.mark.gen_test(timeout=15)
async def test_echo_client_that_never_reads_its_echoes_is_throttled_not_buffered(hub, raw, record_property):
    """A client that sends 30 MB to /echo and never reads: the server stops reading from it until its
    echoes drain, instead of buffering them."""
    client, handler = await server_side(hub, lambda: raw.connect("/echo", SMALL_RCVBUF))
    messages = client_frame(bytes(64 * 1024), OP_BINARY) * 480  # the test's own 30 MB, before measuring
    rss_before = rss_bytes()
    sending = asyncio.ensure_future(client.loop.sock_sendall(client.sock, messages))
    await asyncio.sleep(1.0)
    stalled = not sending.done()
    pending = handler.pending_bytes
    rss_growth = rss_bytes() - rss_before
    sending.cancel()
    client.close()
    record_property("echo_rss_growth_mb", round(rss_growth / MB, 1))
    assert stalled, "the server read all 30 MB"
    assert pending <= 1 * MiB + 64 * 1024
    assert rss_growth < 15 * MB, f"{rss_growth / MB:.1f} MB"


# -- dead peers


@pytest.mark.config(streams=WITH_BULK, server={"ping_interval_s": 0.1, "ping_timeout_s": 0.1})
@pytest.mark.gen_test(timeout=15)
async def test_keepalive_closes_a_peer_that_vanished_and_keeps_one_that_answers(hub, raw, ws_connect):
    """A peer that stopped reading and answering (a phone that slept) gets a 1011 "keepalive ping
    timeout" close after ping_interval_s + ping_timeout_s and loses its TCP connection when it does not
    answer the close either (within 5 s); a client that answers pings stays connected."""
    alive = await ws_connect("/echo")  # Tornado's client answers pings
    gone, handler = await server_side(hub, lambda: raw.connect("/bulk"))
    await until(lambda: handler not in hub.sockets, 7)
    assert hub.streams["bulk"].clients == 0
    frames = []
    while (frame := await gone.read_frame()) is not None:
        frames.append(frame)
    assert frames[0] == (OP_PING, b"")
    assert frames[-1] == (OP_CLOSE, (1011).to_bytes(2, "big") + b"keepalive ping timeout")
    await alive.write_message("still here")
    assert await alive.read_message() == "still here"


# -- limits


@pytest.mark.config(server={"max_clients": 2})
@pytest.mark.gen_test
async def test_client_limit_counts_echo_and_frees_a_slot_when_a_client_leaves(hub, raw):
    first = await raw.connect("/")
    await raw.connect("/echo")
    for path in ("/", "/echo"):
        refused = await raw.open()
        status, _, body = await refused.handshake(path)
        refused.close()
        assert status == 503 and "max_clients" in json.loads(body)["error"]
    first.close()
    await until(lambda: len(hub.sockets) == 1, 1)
    third = await raw.connect("/")
    assert (await third.read_frame())[0] == OP_TEXT


# -- protocol abuse


async def still_served(bystander, hub) -> None:
    """The bystander (a well-behaved client on the stats stream) keeps receiving and is the only client left."""
    for _ in range(3):
        assert await asyncio.wait_for(bystander.read_message(), 1) is not None
    await until(lambda: len(hub.sockets) == 1, 1)


@pytest.mark.gen_test
async def test_unmasked_client_frame_closes_with_1002(hub, raw, ws_connect):
    bystander = await ws_connect("/")
    client = await raw.connect("/echo")
    await client.send_frame(b"not masked", masked=False)
    assert await client.wait_closed() == 1002
    await still_served(bystander, hub)


@pytest.mark.gen_test
async def test_unmasked_fragment_closes_with_1002_before_the_message_is_delivered(hub, raw, ws_connect):
    bystander = await ws_connect("/")
    client = await raw.connect("/echo")
    await client.send_frame(b"first half, not masked", masked=False, fin=False)
    await client.send_frame(b" second half", OP_CONTINUATION)
    assert await client.wait_closed() == 1002
    await still_served(bystander, hub)


@pytest.mark.gen_test
async def test_invalid_utf8_in_a_text_frame_closes_with_1007(hub, raw, ws_connect):
    bystander = await ws_connect("/")
    client = await raw.connect("/")
    await client.send_frame(b"caf\xc3(", mask=b"\x12\x34\x56\x78")
    assert await client.wait_closed() == 1007
    await still_served(bystander, hub)


MALFORMED = {
    "reserved bit set": client_frame(b"x", rsv=0x40),
    "control frame over 125 bytes": client_frame(bytes(126), OP_PING),
    "fragmented control frame": client_frame(b"x", OP_PING, fin=False),
    "continuation with nothing to continue": client_frame(b"x", OP_CONTINUATION),
    "unknown opcode": client_frame(b"x", 0x3),
}


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", MALFORMED)
async def test_malformed_frame_fails_the_connection_and_others_keep_receiving(hub, raw, ws_connect, kind):
    """A protocol error is answered with a 1002 close (RFC 6455 7.4.1), then the TCP connection ends."""
    bystander = await ws_connect("/")
    data, expected = MALFORMED[kind], 1002
    client = await raw.connect("/echo")
    await client.send(data)
    assert await client.wait_closed() == expected
    await still_served(bystander, hub)


BAD_HANDSHAKES = {
    "no Connection: Upgrade": ("/", {"Connection": None}, 400),
    "no Sec-WebSocket-Key": ("/", {"Sec-WebSocket-Key": None}, 400),
    "no Host": ("/echo", {"Host": None}, 400),
    "Upgrade to something else": ("/echo", {"Upgrade": "h2c"}, 400),
    "unsupported Sec-WebSocket-Version": ("/", {"Sec-WebSocket-Version": "99"}, 426),
}


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", BAD_HANDSHAKES)
async def test_handshake_without_the_right_headers_is_refused(hub, raw, ws_connect, kind):
    bystander = await ws_connect("/")
    path, headers, expected = BAD_HANDSHAKES[kind]
    client = await raw.open()
    status, fields, _ = await client.handshake(path, headers)
    client.close()
    assert status == expected
    if status == 426:  # Tornado 6.5 also speaks the drafts 7 and 8, and says so
        assert "13" in [version.strip() for version in fields["sec-websocket-version"].split(",")]
    await still_served(bystander, hub)


@pytest.mark.config(server={"ping_interval_s": 5})
@pytest.mark.gen_test(timeout=30)
async def test_a_thousand_connections_opened_and_closed_in_a_loop_leak_nothing(
        hub, raw, io_loop, ws_connect, record_property):
    """Clean closes, abrupt drops, half handshakes and protocol errors, 1,000 in a row: the other
    clients keep receiving, and fds, timers and tasks return to where they were."""
    ticks = Ticks(await ws_connect("/"))  # 50 ms interval
    echo = await ws_connect("/echo")
    await asyncio.sleep(0.1)
    baseline = resources(io_loop)
    outcomes: dict[str, int] = {}
    for i in range(1000):
        kind = ("clean close", "abrupt drop", "half handshake", "unmasked frame")[i % 4]
        if kind == "half handshake":
            client = await raw.open()
            await client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        else:
            client = await raw.connect("/")
        if kind == "clean close":
            await client.send_frame((1000).to_bytes(2, "big"), OP_CLOSE)
            assert await client.wait_closed() == 1000
        elif kind == "unmasked frame":
            await client.send_frame(b"x", masked=False)
            assert await client.wait_closed() == 1002
        client.close()
        outcomes[kind] = outcomes.get(kind, 0) + 1
        if i % 100 == 0:
            await echo.write_message(f"ping {i}")
            assert await asyncio.wait_for(echo.read_message(), 1) == f"ping {i}"
    after = await settled(io_loop, baseline)
    gaps = ticks.stop()
    record_property("abusive_connections", sum(outcomes.values()))
    record_property("max_gap_s", round(max(gaps), 3))
    record_property("resources_before", baseline)
    record_property("resources_after", after)
    assert after == baseline
    assert len(hub.sockets) == 2 and hub.streams["stats"].clients == 1
    assert len(gaps) > 5 and median(gaps) < 0.08 and max(gaps) < 1.0, gaps  # 50 ms interval


# -- one client's failure stays its own


class BrokenClient:
    """A client whose sends raise (a bug in a transport, not a disconnect)."""

    is_open = True
    pending_bytes = 0

    def send(self, frame, seq=None) -> bool:
        raise RuntimeError("broken client")

    def close(self, code: int, reason: str) -> None:
        self.is_open = False

    def end(self, code: int, reason: str) -> None:
        self.is_open = False

    def abort(self) -> None:
        self.is_open = False


@pytest.mark.gen_test
@pytest.mark.parametrize("timeline", ["per-client",
                                      pytest.param("shared", marks=pytest.mark.config(stats={"timeline": "shared"}))])
async def test_a_client_whose_sends_fail_is_logged_once_and_others_keep_their_schedule(
        hub, ws_connect, caplog, timeline):
    """An unexpected error while sending to one client: it is logged once for that client, not once
    per tick, and the other client of the stream keeps getting every frame on time."""
    assert hub.streams["stats"].config.timeline == timeline
    good = await ws_connect("/")
    await good.read_message()
    bad = BrokenClient()
    hub.streams["stats"].subscribe(bad)
    try:
        with caplog.at_level(logging.INFO, logger="mockws.stream"):
            start = time.monotonic()
            for _ in range(8):  # 8 ticks of 50 ms
                assert await asyncio.wait_for(good.read_message(), 1) is not None
            elapsed = time.monotonic() - start
        clients = hub.streams["stats"].clients
    finally:
        hub.streams["stats"].unsubscribe(bad)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in failures] == ["mockws.stream"]
    assert 0.3 < elapsed < 0.9
    assert clients == 2  # the failing client is kept (and skipped), not dropped


BIG_FRAMES = {"name": "big", "path": "/big", "source": "random", "interval_ms": 10,
              "template": {"n": {"$seq": True}, "pad": "x" * 20_000}}


@pytest.mark.config(streams=base_config()["streams"] + [BIG_FRAMES], server={"max_pending_bytes": 64 * 1024})
@pytest.mark.gen_test(timeout=15)
async def test_a_client_closed_as_too_slow_by_its_own_frame_leaves_no_timeline_behind(hub, raw, ws_connect):
    """Closed for slowness while its own tick is being sent, a client's timeline is not rescheduled:
    nothing keeps rendering frames for a client that is gone."""
    stream = hub.streams["big"]
    reader = await ws_connect("/big")
    await raw.connect("/big", SMALL_RCVBUF)  # never reads
    await until(lambda: stream.clients == 2, 1)
    await until(lambda: stream.clients == 1, 5)  # the one that does not read was closed (1008)
    await asyncio.sleep(0.1)  # ten more ticks
    assert len(stream.clock) == 1  # the reader's timeline only
    assert await asyncio.wait_for(reader.read_message(), 1) is not None
