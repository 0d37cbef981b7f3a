"""Server-Sent Events on every stream path, and resuming after a drop (Last-Event-ID, ?since=)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest

from streams.build import load_config
from streams.hub import Hub
from support import base_config, read_json, until, write_config

TICKS = {"name": "ticks", "path": "/ticks", "source": "random", "interval_ms": 30, "timeline": "shared",
         "history": 5, "template": {"t": {"$seq": True}}}
COUNTS = {"name": "counts", "path": "/counts", "source": "random", "interval_ms": 30,
          "template": {"n": {"$seq": True}, "text": "two\nlines"}}
REPLAY = {"name": "replay", "path": "/replay", "source": "replay", "file": "data-coll.json", "interval_ms": 30}
WITH_STREAMS = pytest.mark.config(streams=[TICKS, COUNTS, REPLAY])


class Events:
    """A raw event-stream client: the HTTP response head, then the events one by one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                 headers: dict[str, str]) -> None:
        self.reader, self.writer, self.status, self.headers = reader, writer, status, headers
        self.body = b""

    @classmethod
    async def open(cls, port: int, path: str, **headers: str) -> Events:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
        return cls(reader, writer, int(head[0].split()[1]), fields)

    async def next(self, timeout: float = 2.0) -> dict[str, str]:
        """The next event (comments and the retry line skipped), its fields joined like EventSource does."""
        while True:
            block = (await asyncio.wait_for(self.reader.readuntil(b"\n\n"), timeout)).decode()
            event: dict[str, str] = {}
            for line in block.splitlines():
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(": ")
                event[name] = event[name] + "\n" + value if name in event else value
            if event and set(event) != {"retry"}:
                return event

    async def ended(self, timeout: float = 2.0) -> bool:
        """Whether the server ends the response (reading until it closes)."""
        try:
            await asyncio.wait_for(self.reader.read(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def events(http_server, http_port):
    opened: list[Events] = []

    async def open_events(path: str, **headers: str) -> Events:
        opened.append(await Events.open(http_port, path, **headers))
        return opened[-1]

    yield open_events
    for each in opened:
        each.close()


@pytest.mark.gen_test
@WITH_STREAMS
async def test_an_event_stream_has_numbered_events_with_multiline_data(events):
    stream = await events("/counts")
    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert stream.headers["Cache-Control"] == "no-cache"
    first, second = await stream.next(), await stream.next()
    assert (first["id"], second["id"]) == ("1", "2")
    assert json.loads(first["data"]) == {"n": 1, "text": "two\nlines"}
    assert "event" not in first  # unnamed: EventSource's onmessage fires


@pytest.mark.gen_test
@pytest.mark.config(streams=[dict(TICKS, sse_event="tick", sse_retry_ms=250)])
async def test_a_stream_names_its_events_and_sets_the_retry(events, http_port):
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(b"GET /ticks HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    assert await reader.readuntil(b"\n\n") == b"retry: 250\n\n"
    writer.close()
    assert (await (await events("/ticks")).next())["event"] == "tick"


@pytest.mark.gen_test
@pytest.mark.config(streams=[dict(TICKS, sse_event="tick"), COUNTS])
async def test_the_api_lists_each_streams_event_name(http_client, http_url):
    """So a page knows whether to listen with addEventListener('tick') or onmessage."""
    listed = json.loads((await http_client.fetch(http_url("/api/streams"))).body)
    assert {s["name"]: s["sse_event"] for s in listed} == {"ticks": "tick", "counts": None}


@pytest.mark.gen_test
@pytest.mark.config(streams=[dict(TICKS, send_on_connect=False, interval_ms=600_000)], server={"sse_heartbeat_s": 0.05})
async def test_an_idle_stream_sends_comment_heartbeats(http_port, http_server):
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(b"GET /ticks HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    await reader.readuntil(b"retry: 1000\n\n")
    assert await asyncio.wait_for(reader.readuntil(b"\n\n"), 1) == b":\n\n"
    writer.close()


@pytest.mark.gen_test
@WITH_STREAMS
async def test_binary_frames_go_base64_under_the_binary_event(events, hub):
    stream = await events("/ticks")
    await stream.next()
    hub.pause("ticks")
    from streams.sources import Frame  # noqa: PLC0415
    hub.push("ticks", Frame(b"\x00\xff", binary=True))
    pushed = await stream.next()
    assert pushed == {"event": "binary", "data": "AP8="}  # pushed frames have no number


@pytest.mark.gen_test
@pytest.mark.config(streams=[TICKS], server={"allowed_origins": ["http://localhost:*"]})
async def test_cors_follows_allowed_origins(events):
    allowed = await events("/ticks", Origin="http://localhost:5173")
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    refused = await events("/ticks", Origin="http://evil.example")
    assert refused.status == 403


@pytest.mark.gen_test
@WITH_STREAMS
async def test_a_plain_get_still_serves_the_demo_page_and_the_upgrade_still_works(http_client, http_url, ws_connect):
    page = await http_client.fetch(http_url("/ticks"))
    assert page.headers["Content-Type"].startswith("text/html")
    conn = await ws_connect("/ticks")
    assert "t" in await read_json(conn)


@pytest.mark.gen_test
@WITH_STREAMS
async def test_event_streams_count_as_clients_per_transport(events, ws_connect, hub, http_client, http_url):
    await events("/ticks")
    await ws_connect("/ticks")
    await until(lambda: hub.streams["ticks"].clients == 2, 2)
    listed = json.loads((await http_client.fetch(http_url("/api/streams"))).body)
    ticks = next(s for s in listed if s["name"] == "ticks")
    assert (ticks["clients"], ticks["transports"]) == (2, {"sse": 1, "websocket": 1})


@pytest.mark.gen_test
@pytest.mark.config(streams=[TICKS], server={"max_clients": 1})
async def test_event_streams_obey_max_clients(events):
    await events("/ticks")
    refused = await events("/ticks")
    assert refused.status == 503


@pytest.mark.gen_test
@pytest.mark.config(streams=[dict(TICKS, faults={"disconnect_every_s": 0.1})])
async def test_a_disconnect_fault_ends_the_response(events):
    stream = await events("/ticks")
    assert await stream.ended(2)


@pytest.mark.gen_test
@pytest.mark.config(streams=[dict(TICKS, auth={"query": "token"})])
async def test_an_event_stream_needs_the_streams_token(events):
    assert (await events("/ticks")).status == 401
    assert (await events("/ticks?token=x")).status == 200


# -- resume


@pytest.mark.gen_test
@WITH_STREAMS
async def test_a_shared_timeline_resumes_from_its_history_without_gap_or_repeat(events, hub):
    first = await events("/ticks")
    seen = [int((await first.next())["id"]) for _ in range(3)]
    first.close()
    await asyncio.sleep(0.07)  # two or three frames go by; history keeps five
    again = await events("/ticks", Last_Event_ID=str(seen[-1]))
    resumed = [int((await again.next())["id"]) for _ in range(4)]
    assert resumed == list(range(seen[-1] + 1, seen[-1] + 5))


@pytest.mark.gen_test
@WITH_STREAMS
async def test_too_old_or_invalid_ids_get_a_reset_then_live_frames(events):
    watcher = await events("/ticks")
    for _ in range(8):
        await watcher.next()
    for since in ("1", "nonsense", "999999"):
        stream = await events("/ticks", Last_Event_ID=since)
        reset = await stream.next()
        assert reset["event"] == "reset"
        details = json.loads(reset["data"])["reset"]
        assert details["history"] == 5 and details["since"] == (int(since) if since.isdigit() else -1)
        live = await stream.next()
        assert "event" not in live and int(live["id"]) == details["next"]


@pytest.mark.gen_test
@WITH_STREAMS
async def test_a_per_client_random_stream_continues_its_seq(events):
    stream = await events("/counts", Last_Event_ID="41")
    event = await stream.next()
    assert event["id"] == "42" and json.loads(event["data"])["n"] == 42


@pytest.mark.gen_test
@WITH_STREAMS
async def test_a_per_client_replay_resumes_at_the_next_entry(events, mock_entries):
    stream = await events("/replay?since=3")
    event = await stream.next()
    assert event["id"] == "4" and json.loads(event["data"]) == mock_entries[3]


@pytest.mark.gen_test
@WITH_STREAMS
async def test_a_websocket_resumes_with_since_too(ws_connect):
    conn = await ws_connect("/counts?since=9")
    assert (await read_json(conn))["n"] == 10


@pytest.mark.gen_test
@pytest.mark.config(streams=[dict(REPLAY, timeline="shared")])
async def test_a_shared_replay_resumes_across_a_restart_from_its_data(events, mock_entries, hub):
    """A fresh server (no history in memory) continues a replay at entry N+1: the position is in the file."""
    assert hub.streams["replay"].position == 0  # nobody has listened yet: as after a restart
    stream = await events("/replay", Last_Event_ID="33")  # the file has 30 entries: 33 is entry 3 of loop 2
    first = await stream.next()
    assert first["id"] == "34" and json.loads(first["data"]) == mock_entries[3]


@pytest.fixture
def mock_entries() -> list:
    from support import ROOT  # noqa: PLC0415
    return json.loads((ROOT / "mock" / "data-coll.json").read_text(encoding="utf-8"))


def test_history_zero_turns_resume_off(tmp_path, io_loop):
    data = base_config()
    data["streams"] = [dict(TICKS, history=0)]
    hub = Hub(load_config(write_config(tmp_path, data)))
    assert hub.streams["ticks"].history.maxlen == 1
    hub.stop()


# -- curl, as the README shows it


@pytest.mark.gen_test(timeout=10)
@WITH_STREAMS
async def test_curl_prints_the_events(http_port, http_server):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    process = await asyncio.create_subprocess_exec(
        "curl", "-sN", "-H", "Accept: text/event-stream", "--max-time", "0.5", f"http://127.0.0.1:{http_port}/counts",
        stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    assert out.startswith(b"retry: 1000\n\nid: 1\ndata: {")


@pytest.mark.gen_test(timeout=15)
@pytest.mark.config(streams=[dict(TICKS, send_on_connect=False, interval_ms=600_000)],
                    server={"max_pending_bytes": 64 * 1024})
async def test_an_event_stream_that_stops_reading_is_ended_and_the_others_go_on(http_port, http_server, events, hub):
    """The slow-client bound holds for SSE as for WebSocket: a reader that stops is cut off, a reading one is not."""
    import socket  # noqa: PLC0415

    stream = hub.streams["ticks"]
    reader = await events("/ticks")
    slow = socket.create_connection(("127.0.0.1", http_port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"GET /ticks HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")  # and never reads
    try:
        await until(lambda: stream.clients == 2, 2)
        big = '{"pad":"' + "x" * 64_000 + '"}'
        from streams.sources import JsonFrame  # noqa: PLC0415
        for _ in range(400):  # up to 25 MB, far past what the kernel buffers for the slow one
            hub.push("ticks", JsonFrame(big.encode()))
            await reader.next()
            if stream.clients == 1:
                break
        assert stream.clients == 1  # the slow one was cut off
        hub.push("ticks", JsonFrame(b'{"after":true}'))
        assert json.loads((await reader.next())["data"]) == {"after": True}
    finally:
        slow.close()
