"""`python server.py record`: recording a live WebSocket feed to JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application
from tornado.websocket import WebSocketHandler, websocket_connect

import record
from record import Console, FrameWriter, RecordError, RecordSummary

ROOT = Path(__file__).resolve().parent.parent
RECORD_COMMAND = [sys.executable, str(ROOT / "server.py"), "record"]
TOLERANCE_MS = 25

JSON_OBJECT = '{"name": "人像", "value": 1.5, "nested": {"ok": true}}'
JSON_ARRAY = "[1, 2, 3]"
PLAIN_TEXT = "hello, not JSON {"
JSON_NUMBER = "42"
BINARY = b"\x00\x01\xfe\xffbinary"

# (gap in ms before the frame, frame): every kind the recorder distinguishes.
MIXED = [(0, JSON_OBJECT), (50, JSON_ARRAY), (120, PLAIN_TEXT), (0, JSON_NUMBER), (50, BINARY)]


# --- the test feed ------------------------------------------------------------------


@dataclass
class Script:
    """What the feed pushes on one connection, and whether it then drops it."""

    frames: list[tuple[int, str | bytes]]
    then_close: bool = False
    repeat: bool = False


@dataclass
class FeedLog:
    """What the feed saw: handshake headers and messages, per connection."""

    headers: list[dict[str, str]] = field(default_factory=list)
    received: list[list[str | bytes]] = field(default_factory=list)


class FeedHandler(WebSocketHandler):
    """Pushes the script for its connection number at the scripted gaps."""

    def initialize(self, scripts: list[Script], log: FeedLog, required_headers: dict[str, str]) -> None:
        self.scripts = scripts
        self.log = log
        self.required_headers = required_headers
        self.pushing: asyncio.Task | None = None

    def check_origin(self, origin: str) -> bool:
        return True  # real feeds are often opened with a browser's Origin header

    def prepare(self) -> None:
        for name, value in self.required_headers.items():
            if self.request.headers.get(name) != value:
                self.set_status(403)
                self.finish(f"forbidden: {name} header required")
                return

    def open(self) -> None:
        self.set_nodelay(True)  # like a live feed: no Nagle delay between small frames
        self.log.headers.append(dict(self.request.headers))
        self.log.received.append([])
        script = self.scripts[min(len(self.log.headers), len(self.scripts)) - 1]
        self.received = self.log.received[-1]
        self.pushing = asyncio.ensure_future(self.push(script))

    async def push(self, script: Script) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            for gap_ms, frame in script.frames:
                due += gap_ms / 1000  # absolute schedule: gaps do not accumulate drift
                await asyncio.sleep(max(0.0, due - loop.time()))
                await self.write_message(frame, binary=isinstance(frame, bytes))
            if not script.repeat:
                break
        if script.then_close:
            self.close(1001, "feed restarting")

    def on_message(self, message: str | bytes) -> None:
        self.received.append(message)

    def on_close(self) -> None:
        if self.pushing is not None:
            self.pushing.cancel()


@dataclass
class TestFeed:
    """A running feed server: its URL and what it saw."""

    __test__ = False
    url: str
    log: FeedLog


@pytest.fixture
def start_feed(io_loop):
    """Start in-process feed servers on free ports; stop them at teardown."""
    servers = []

    def start(*scripts: Script, required_headers: dict[str, str] | None = None) -> TestFeed:
        sock, port = bind_unused_port()
        log = FeedLog()
        handler_args = dict(scripts=list(scripts), log=log, required_headers=required_headers or {})
        server = HTTPServer(Application([(r"/feed", FeedHandler, handler_args)]))
        server.add_sockets([sock])
        servers.append(server)
        return TestFeed(f"ws://127.0.0.1:{port}/feed", log)

    yield start
    for server in servers:
        server.stop()


def closed_port_url() -> str:
    """A URL on a port nothing listens on."""
    sock, port = bind_unused_port()
    sock.close()
    return f"ws://127.0.0.1:{port}/feed"


def read_lines(path: Path) -> list[dict]:
    """Parse every line of a recording (fails if any line is not JSON)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def gaps_ms(entries: list[dict]) -> list[int]:
    """Differences between consecutive t values."""
    return [b["t"] - a["t"] for a, b in pairwise(entries)]


def assert_gaps(entries: list[dict], expected_ms: list[int]) -> None:
    """Recorded gaps match the expected ones within the tolerance."""
    actual = gaps_ms(entries)
    assert len(actual) == len(expected_ms)
    for got, want in zip(actual, expected_ms, strict=True):
        assert abs(got - want) <= TOLERANCE_MS, f"gaps {actual} vs expected {expected_ms}"


# --- pure parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 90), ("30s", 30), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2m30s", 150), ("1.5s", 1.5)],
)
def test_duration_accepts_plain_seconds_and_h_m_s_units(text, seconds):
    assert record.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10x", "", "m", "0", "-5", "1h 30m", "30sec"])
def test_duration_rejects_other_forms_and_says_what_would_be_right(text):
    with pytest.raises(argparse.ArgumentTypeError, match="use seconds .90. or units like 30s, 10m, 1h, 1h30m"):
        record.parse_duration(text)


def test_header_splits_at_the_first_colon_and_trims_spaces():
    assert record.parse_header("Origin:  https://app.example:8443 ") == ("Origin", "https://app.example:8443")


@pytest.mark.parametrize("text", ["Authorization Bearer abc", ": value", "Bad Name: x"])
def test_header_without_a_name_and_colon_is_rejected(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected 'Name: value'"):
        record.parse_header(text)


def test_text_holding_a_json_object_or_array_is_stored_as_compact_data():
    assert record.encode_frame(JSON_OBJECT, 7) == (
        '{"t":7,"data":{"name":"人像","value":1.5,"nested":{"ok":true}}}'.encode()
    )
    assert record.encode_frame(JSON_ARRAY, 0) == b'{"t":0,"data":[1,2,3]}'


@pytest.mark.parametrize("text", [JSON_NUMBER, '"quoted"', "null", "true", PLAIN_TEXT, "[NaN]", ""])
def test_other_text_is_stored_verbatim(text):
    """Only objects and arrays become data; scalars, non-JSON and NaN keep their exact text."""
    assert json.loads(record.encode_frame(text, 3)) == {"t": 3, "text": text}


def test_json_with_an_escaped_lone_surrogate_is_stored_verbatim_as_text():
    text = '{"s": "\\ud800"}'
    assert json.loads(record.encode_frame(text, 0)) == {"t": 0, "text": text}


def test_binary_frames_are_stored_as_base64():
    assert json.loads(record.encode_frame(BINARY, 9)) == {"t": 9, "b64": base64.b64encode(BINARY).decode()}


def test_backoff_doubles_from_half_a_second_to_a_ten_second_cap():
    delays = record.backoff_delays()
    assert [next(delays) for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_writer_times_from_the_first_frame_and_marks_a_reconnect_before_the_next_frame():
    now = [100.0]
    file = io.BytesIO()
    writer = FrameWriter(file, clock=lambda: now[0])
    writer.mark_reconnected()  # nothing recorded yet: no gap to mark
    writer.frame("a")
    now[0] = 100.25
    writer.mark_reconnected()
    now[0] = 100.5
    writer.frame(b"\x01")
    lines = [json.loads(line) for line in file.getvalue().splitlines()]
    assert lines == [
        {"t": 0, "text": "a"},
        {"t": 250, "event": "reconnected"},
        {"t": 500, "b64": "AQ=="},
    ]
    assert (writer.frames, writer.payload_bytes) == (2, 2)


def test_summary_names_frames_size_time_and_file():
    summary = RecordSummary(120, 53_240, 30.04, Path("mock/recording.jsonl"))
    assert str(summary) == "recorded 120 frames (53.2 KB) in 30.0 s to mock/recording.jsonl"


def test_a_url_that_is_not_ws_or_wss_is_a_usage_error(capsys):
    assert record.main(["http://127.0.0.1:1/feed"]) == 2
    assert "expected ws://host[:port]/path or wss://host[:port]/path" in capsys.readouterr().err


def test_help_says_an_existing_file_is_overwritten(capsys):
    assert record.main(["--help"]) == 0
    assert "an existing file is overwritten" in " ".join(capsys.readouterr().out.split())


# --- recording from a live feed -------------------------------------------------------


@pytest.mark.gen_test
async def test_records_every_frame_kind_with_its_real_gaps(start_feed, tmp_path):
    feed = start_feed(Script(MIXED))
    out = tmp_path / "new-folder" / "recording.jsonl"
    summary = await record.record(feed.url, out, max_frames=len(MIXED))
    entries = read_lines(out)
    assert [{k: v for k, v in e.items() if k != "t"} for e in entries] == [
        {"data": json.loads(JSON_OBJECT)},
        {"data": [1, 2, 3]},
        {"text": PLAIN_TEXT},
        {"text": JSON_NUMBER},
        {"b64": base64.b64encode(BINARY).decode()},
    ]
    assert entries[0]["t"] == 0
    assert_gaps(entries, [gap for gap, _ in MIXED[1:]])
    assert "人像" in out.read_text(encoding="utf-8")  # ensure_ascii=False
    assert summary.frames == len(MIXED)


@pytest.mark.gen_test
async def test_headers_are_sent_with_the_handshake(start_feed, tmp_path):
    feed = start_feed(Script([(0, "ok")]), required_headers={"Authorization": "Bearer t0k"})
    headers = [("Authorization", "Bearer t0k"), ("Origin", "https://app.example")]
    await record.record(feed.url, tmp_path / "r.jsonl", headers=headers, max_frames=1)
    assert feed.log.headers[0]["Authorization"] == "Bearer t0k"
    assert feed.log.headers[0]["Origin"] == "https://app.example"


@pytest.mark.gen_test
async def test_send_messages_reach_the_feed_in_order_after_connecting(start_feed, tmp_path):
    feed = start_feed(Script([(100, "ok")]))
    send = ['{"op":"subscribe","channel":"ticks"}', "second"]
    await record.record(feed.url, tmp_path / "r.jsonl", send=send, max_frames=1)
    assert feed.log.received == [send]


@pytest.mark.gen_test
async def test_max_frames_stops_the_recording(start_feed, tmp_path):
    feed = start_feed(Script([(10, f"frame {i}") for i in range(20)]))
    out = tmp_path / "r.jsonl"
    summary = await record.record(feed.url, out, max_frames=3)
    assert [e["text"] for e in read_lines(out)] == ["frame 0", "frame 1", "frame 2"]
    assert summary.frames == 3


@pytest.mark.gen_test
async def test_duration_stops_the_recording_and_keeps_what_arrived(start_feed, tmp_path):
    feed = start_feed(Script([(20, "tick")], repeat=True))
    out = tmp_path / "r.jsonl"
    summary = await record.record(feed.url, out, duration_s=0.3)
    assert 0.3 <= summary.elapsed_s < 0.5
    entries = read_lines(out)
    assert 8 <= len(entries) <= 16 and summary.frames == len(entries)


@pytest.mark.gen_test
async def test_a_dropped_feed_is_reconnected_with_a_marker_and_the_same_clock(start_feed, tmp_path):
    feed = start_feed(
        Script([(0, "first 1"), (30, "first 2")], then_close=True),
        Script([(40, "second 1"), (30, "second 2")]),
    )
    out = tmp_path / "r.jsonl"
    console_out = io.StringIO()
    summary = await record.record(
        feed.url, out, send=["subscribe"], max_frames=4, first_backoff_s=0.05, console=Console(console_out)
    )
    entries = read_lines(out)
    assert [e.get("text", e.get("event")) for e in entries] == [
        "first 1", "first 2", "reconnected", "second 1", "second 2",
    ]
    first_2, marker, second_1, second_2 = entries[1:]
    assert marker["t"] >= first_2["t"] + 50  # the 50 ms backoff is part of the timeline
    assert second_1["t"] >= marker["t"] + 40 - TOLERANCE_MS  # pushed 40 ms after the feed reopened
    assert_gaps([second_1, second_2], [30])
    assert feed.log.received == [["subscribe"], ["subscribe"]]
    assert summary.frames == 4
    assert "feed closed (code 1001 feed restarting)" in console_out.getvalue()
    assert "reconnecting to ws://127.0.0.1" in console_out.getvalue()


@pytest.mark.gen_test
async def test_each_frame_is_on_disk_before_the_next_one_arrives(start_feed, tmp_path):
    """Nothing received is lost if the recorder is killed."""
    feed = start_feed(Script([(0, "one"), (5000, "two")]))
    out = tmp_path / "r.jsonl"
    stop = asyncio.Event()
    recording = asyncio.ensure_future(record.record(feed.url, out, stop=stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.4
    while loop.time() < deadline and not (out.exists() and out.read_bytes()):
        await asyncio.sleep(0.01)
    assert read_lines(out) == [{"t": 0, "text": "one"}]
    assert not recording.done()
    stop.set()
    await recording


@pytest.mark.gen_test
async def test_stop_mid_recording_closes_a_valid_file(start_feed, tmp_path):
    feed = start_feed(Script([(20, "tick"), (0, BINARY)], repeat=True))
    out = tmp_path / "r.jsonl"
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, stop.set)
    summary = await record.record(feed.url, out, stop=stop)
    entries = read_lines(out)
    assert len(entries) == summary.frames >= 10
    assert {"text", "b64"} == {key for e in entries for key in e if key != "t"}


@pytest.mark.gen_test
async def test_progress_line_is_redrawn_in_place_when_asked(start_feed, tmp_path):
    feed = start_feed(Script([(20, "tick")], repeat=True))
    shown = io.StringIO()
    await record.record(feed.url, tmp_path / "r.jsonl", duration_s=0.6, console=Console(shown, show_progress=True))
    redraws = shown.getvalue().split("\r")[1:]
    assert 2 <= len(redraws) <= 5  # about 4 a second, plus the final one
    assert all("frames" in r and " B " in r and " s " in r and "frames/s" in r for r in redraws)
    assert shown.getvalue().endswith("\n")


@pytest.mark.gen_test
async def test_progress_is_quiet_when_not_asked(start_feed, tmp_path):
    feed = start_feed(Script([(20, "tick")], repeat=True))
    quiet = io.StringIO()
    await record.record(feed.url, tmp_path / "r.jsonl", duration_s=0.3, console=Console(quiet))
    assert quiet.getvalue() == ""


@pytest.mark.gen_test
async def test_a_refused_connection_is_an_error_and_keeps_an_earlier_recording(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"t":0,"text":"earlier"}\n')
    url = closed_port_url()
    with pytest.raises(RecordError) as error:
        await record.record(url, out)
    assert str(error.value) == f"cannot connect to {url}: connection refused"
    assert out.read_text() == '{"t":0,"text":"earlier"}\n'


@pytest.mark.gen_test
async def test_an_http_rejection_at_handshake_reports_status_and_body(start_feed, tmp_path):
    feed = start_feed(Script([(0, "never")]), required_headers={"Authorization": "Bearer t0k"})
    with pytest.raises(RecordError) as error:
        await record.record(feed.url, tmp_path / "r.jsonl")
    assert str(error.value) == (
        f"{feed.url} rejected the WebSocket handshake: HTTP 403 Forbidden: forbidden: Authorization header required"
    )
    assert not (tmp_path / "r.jsonl").exists()


# --- the command line ---------------------------------------------------------------------


def test_unreachable_feed_exits_1_with_one_clear_line():
    url = closed_port_url()
    run = subprocess.run([*RECORD_COMMAND, url], cwd=ROOT, capture_output=True, text=True, timeout=10)
    assert run.returncode == 1
    assert run.stderr == f"server.py record: cannot connect to {url}: connection refused\n"


@pytest.mark.gen_test(timeout=10)
async def test_ctrl_c_mid_recording_exits_0_and_leaves_a_valid_file(start_feed, tmp_path):
    feed = start_feed(Script([(10, JSON_OBJECT), (10, PLAIN_TEXT), (10, BINARY)], repeat=True))
    out = tmp_path / "sub" / "r.jsonl"
    command = [*RECORD_COMMAND, feed.url, "--out", str(out)]
    with subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True) as recorder:
        try:
            while not out.exists() or out.read_text().count("\n") < 10:
                assert recorder.poll() is None, recorder.stderr.read()
                await asyncio.sleep(0.02)
            recorder.send_signal(signal.SIGINT)
            while recorder.poll() is None:  # polled, so the feed keeps running on this loop
                await asyncio.sleep(0.02)
        finally:
            if recorder.poll() is None:
                recorder.kill()
        stderr = recorder.stderr.read()
    assert recorder.returncode == 0, stderr
    frames = len(read_lines(out))
    assert stderr.startswith(f"recorded {frames} frames (") and stderr.endswith(f" s to {out}\n")


# --- round trip: record, then replay with `timing: recorded` -------------------------------

# What the server sends for each MIXED frame: data as compact JSON, text verbatim, binary as binary.
REPLAYED = [
    '{"name":"人像","value":1.5,"nested":{"ok":true}}',
    "[1,2,3]",
    PLAIN_TEXT,
    JSON_NUMBER,
    BINARY,
]


def replay_config(folder: Path, recording: Path, speed: float) -> Path:
    """A server config with one stream replaying the recording once with its recorded timing."""
    stream = {
        "name": "recorded", "path": "/recorded", "source": "replay", "file": recording.name,
        "timing": "recorded", "speed": speed, "loop": False,
    }
    config = {"server": {"host": "127.0.0.1", "port": 0, "ping_interval_s": 0}, "streams": [stream], "echo": None}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


async def stream_url_from_banner(server: asyncio.subprocess.Process) -> str:
    """Read the server's banner up to the line naming the /recorded stream's URL."""
    banner = ""
    while True:
        line = (await server.stdout.readline()).decode()
        banner += line
        assert line, f"server exited before serving: {banner}{(await server.stderr.read()).decode()}"
        if match := re.search(r"ws://127\.0\.0\.1:\d+/recorded", line):
            return match.group()


async def receive_all(url: str) -> list[tuple[float, str | bytes]]:
    """Every message of a stream with its arrival time, until the server closes it."""
    loop = asyncio.get_running_loop()
    connection = await websocket_connect(url)
    received = []
    try:
        while (message := await connection.read_message()) is not None:
            received.append((loop.time(), message))
    finally:
        connection.close()
    return received


@pytest.mark.parametrize("speed", [1, 4])
@pytest.mark.gen_test(timeout=10)
async def test_a_recording_replays_with_its_frames_and_gaps(start_feed, tmp_path, speed):
    """The server replays a recording (marker line included) with each frame's type and the recorded gaps."""
    feed = start_feed(Script(MIXED[:3], then_close=True), Script(MIXED[3:]))
    recording = tmp_path / "recording.jsonl"
    await record.record(feed.url, recording, max_frames=len(MIXED), first_backoff_s=0.05)
    entries = read_lines(recording)
    assert [e.get("event") for e in entries].count("reconnected") == 1
    frame_times = [e["t"] for e in entries if "event" not in e]

    command = [sys.executable, str(ROOT / "server.py"), "-c", str(replay_config(tmp_path, recording, speed))]
    server = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        received = await receive_all(await stream_url_from_banner(server))
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = await server.communicate()
    assert server.returncode == 0, stderr.decode()

    assert [message for _, message in received] == REPLAYED
    replay_gaps = [round((b - a) * 1000) for (a, _), (b, _) in pairwise(received)]
    recorded_gaps = [(b - a) / speed for a, b in pairwise(frame_times)]
    for got, want in zip(replay_gaps, recorded_gaps, strict=True):
        assert abs(got - want) <= TOLERANCE_MS, f"replayed gaps {replay_gaps} vs recorded / {speed} {recorded_gaps}"
