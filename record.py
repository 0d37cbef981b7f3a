"""Record a live WebSocket feed to a JSON-lines file for replay with its real timing.

Each received frame becomes one line, timed in ms since the first frame:
    {"t": 0, "data": {...}}      text that parses as a JSON object or array
    {"t": 50, "text": "..."}     any other text, verbatim
    {"t": 170, "b64": "..."}     binary, base64
    {"t": 900, "event": "reconnected"}   marker after the feed dropped (not a frame)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import re
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO
from urllib.parse import urlsplit

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders
from tornado.ioloop import PeriodicCallback
from tornado.websocket import (
    WebSocketClientConnection,
    WebSocketClosedError,
    WebSocketError,
    websocket_connect,
)

PROG = "server.py record"
DEFAULT_OUT = Path("mock/recording.jsonl")
MAX_MESSAGE_SIZE = 64 * 1024 * 1024  # real feeds send snapshots far above Tornado's 10 MiB default
PING_INTERVAL_S = 20.0  # keeps idle feeds (and proxies in between) from timing out
CONNECT_TIMEOUT_S = 10.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
PROGRESS_INTERVAL_S = 0.25
HTTP_BODY_PREVIEW_CHARS = 200

_DURATION_UNITS = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?"
)


class RecordError(Exception):
    """A failure the user can act on, reported as one line without a traceback."""


# --- pure parts -------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Parse '90', '30s', '10m', '1h' or '1h30m' into seconds."""
    text = text.strip()
    units = _DURATION_UNITS.fullmatch(text)
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text)
    elif units and any(units.groups()):
        hours, minutes, secs = (float(group or 0) for group in units.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        seconds = 0.0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds (90) or units like 30s, 10m, 1h, 1h30m"
        )
    return seconds


def parse_header(text: str) -> tuple[str, str]:
    """Parse 'Name: value' into a (name, value) pair."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(char.isspace() for char in name):
        raise argparse.ArgumentTypeError(
            f"invalid header {text!r}: expected 'Name: value', e.g. 'Authorization: Bearer abc'"
        )
    return name, value.strip()


def parse_ws_url(text: str) -> str:
    """Accept only ws:// and wss:// URLs with a host."""
    parts = urlsplit(text)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"invalid URL {text!r}: expected ws://host[:port]/path or wss://host[:port]/path"
        )
    return text


def _reject_constant(name: str) -> None:
    """Refuse NaN and Infinity, which are not JSON, so such text is kept verbatim."""
    raise ValueError(f"{name} is not JSON")


def json_container(text: str) -> dict | list | None:
    """Return text parsed as JSON if it is an object or array, else None."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None
    return value if isinstance(value, (dict, list)) else None


def _json_line(entry: dict) -> bytes:
    """Encode one entry as a compact UTF-8 JSON line (without the newline)."""
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_frame(message: str | bytes, t_ms: int) -> bytes:
    """Encode one received frame as a JSON line: data, text or b64."""
    if isinstance(message, bytes):
        return _json_line({"t": t_ms, "b64": base64.b64encode(message).decode("ascii")})
    value = json_container(message)
    if value is not None:
        try:
            return _json_line({"t": t_ms, "data": value})
        except UnicodeEncodeError:
            pass  # escaped lone surrogates ("\ud800") cannot be written as UTF-8; keep the text
    return _json_line({"t": t_ms, "text": message})


def backoff_delays(first_s: float = FIRST_BACKOFF_S, cap_s: float = MAX_BACKOFF_S) -> Iterator[float]:
    """Yield reconnect delays: first_s, doubling each time, capped at cap_s."""
    delay = first_s
    while True:
        yield min(delay, cap_s)
        delay *= 2


def format_size(n_bytes: int) -> str:
    """Format a byte count as B, KB, MB or GB (powers of 1000)."""
    if n_bytes < 1000:
        return f"{n_bytes} B"
    for unit, scale in (("KB", 1e3), ("MB", 1e6)):
        if n_bytes < scale * 1000:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 1e9:.1f} GB"


def describe_os_error(error: OSError) -> str:
    """Say in a few words why a connection attempt failed."""
    if isinstance(error, socket.gaierror):
        return f"host not found ({error.strerror})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed ({getattr(error, 'verify_message', None) or error.reason})"
    return error.strerror or str(error) or type(error).__name__


def describe_http_error(url: str, error: HTTPClientError) -> str:
    """Say why the handshake failed: timeout, or the HTTP status and start of the body."""
    if error.code == 599:  # Tornado's code for timeouts and streams closed before a response
        return f"cannot connect to {url}: {error.message or 'no response'}"
    message = f"{url} rejected the WebSocket handshake: HTTP {error.code} {error.message or ''}".rstrip()
    body = error.response.body if error.response is not None else b""
    if body:
        preview = body.decode("utf-8", errors="replace")[:HTTP_BODY_PREVIEW_CHARS]
        message += f": {' '.join(preview.split())}"
    return message


# --- writing ------------------------------------------------------------------


class FrameWriter:
    """Writes frames and markers as flushed JSON lines, timed from the first frame."""

    def __init__(self, file: BinaryIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.frames = 0
        self.payload_bytes = 0
        self._file = file
        self._clock = clock
        self._first_frame_at: float | None = None
        self._reconnected_at_ms: int | None = None

    def _ms_since_first_frame(self) -> int:
        assert self._first_frame_at is not None
        return round((self._clock() - self._first_frame_at) * 1000)

    def _write(self, line: bytes) -> None:
        self._file.write(line + b"\n")
        self._file.flush()  # a kill or crash keeps every frame already received

    def mark_reconnected(self) -> None:
        """Note a reconnect now; its marker line is written before the next frame."""
        if self._first_frame_at is not None:  # before any frame there is no gap to mark
            self._reconnected_at_ms = self._ms_since_first_frame()

    def frame(self, message: str | bytes) -> None:
        """Write one received frame."""
        if self._first_frame_at is None:
            self._first_frame_at = self._clock()
        if self._reconnected_at_ms is not None:
            self._write(_json_line({"t": self._reconnected_at_ms, "event": "reconnected"}))
            self._reconnected_at_ms = None
        self._write(encode_frame(message, self._ms_since_first_frame()))
        self.frames += 1
        self.payload_bytes += len(message) if isinstance(message, bytes) else len(message.encode("utf-8"))


class Console:
    """Shows the progress line (only when asked, i.e. on a terminal) and one-line notices."""

    def __init__(self, stream: TextIO | None, show_progress: bool = False) -> None:
        self._stream = stream
        self._show_progress = show_progress and stream is not None
        self._line_open = False

    def progress(self, text: str) -> None:
        """Redraw the progress line in place."""
        if self._show_progress:
            self._stream.write(f"\r{text}\033[K")
            self._stream.flush()
            self._line_open = True

    def notice(self, text: str) -> None:
        """Print a line of its own, below the progress line."""
        if self._stream is not None:
            self.end_progress()
            self._stream.write(text + "\n")
            self._stream.flush()

    def end_progress(self) -> None:
        """Move past the progress line so the next output starts on a fresh line."""
        if self._line_open:
            self._stream.write("\n")
            self._line_open = False


@dataclass(frozen=True)
class RecordSummary:
    """What a finished recording holds."""

    frames: int
    payload_bytes: int
    elapsed_s: float
    out: Path

    def __str__(self) -> str:
        return (
            f"recorded {self.frames} frames ({format_size(self.payload_bytes)})"
            f" in {self.elapsed_s:.1f} s to {self.out}"
        )


# --- the feed -------------------------------------------------------------------


class Feed:
    """The WebSocket feed being recorded: opens it with headers and sends the opening messages."""

    def __init__(
        self,
        url: str,
        headers: Iterable[tuple[str, str]] = (),
        send: Iterable[str] = (),
        ping_interval_s: float = PING_INTERVAL_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.headers = HTTPHeaders()
        for name, value in headers:
            self.headers.add(name, value)
        self.send = list(send)
        self.ping_interval_s = ping_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.connection: WebSocketClientConnection | None = None

    async def open(self) -> None:
        """Connect and send the opening messages; raise RecordError if the connection fails."""
        self.close()  # a dropped connection still holds resources until closed
        request = HTTPRequest(
            self.url,
            headers=HTTPHeaders(self.headers),  # a copy: the handshake adds its own headers to it
            connect_timeout=self.connect_timeout_s,
            request_timeout=self.connect_timeout_s,
        )
        try:
            self.connection = await websocket_connect(
                request,
                ping_interval=self.ping_interval_s,
                max_message_size=MAX_MESSAGE_SIZE,
            )
        except HTTPClientError as error:
            raise RecordError(describe_http_error(self.url, error)) from None
        except OSError as error:
            raise RecordError(f"cannot connect to {self.url}: {describe_os_error(error)}") from None
        except WebSocketError as error:
            raise RecordError(f"cannot connect to {self.url}: {error}") from None
        for text in self.send:
            try:
                await self.connection.write_message(text)
            except WebSocketClosedError:
                break  # the next read returns None and the feed is reopened

    async def read(self) -> str | bytes | None:
        """Return the next frame, or None once the feed has closed."""
        assert self.connection is not None
        return await self.connection.read_message()

    def close_reason(self) -> str:
        """Say how the feed closed, e.g. 'code 1001 going away'."""
        if self.connection is None or self.connection.close_code is None:
            return "connection lost"
        return f"code {self.connection.close_code} {self.connection.close_reason or ''}".rstrip()

    def close(self) -> None:
        """Close the connection, if any, with a normal closure."""
        if self.connection is not None:
            self.connection.close(1000, "recording finished")


# --- recording ------------------------------------------------------------------


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[None], timeout_s: float | None = None) -> bool:
    """Run work; cancel it once stop is set or timeout_s has passed. Return True if it finished on its own."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return False
    task.result()  # re-raises what the work raised
    return True


async def _copy_frames(feed: Feed, writer: FrameWriter, max_frames: int | None) -> bool:
    """Write frames until the feed closes (False) or max_frames are written (True)."""
    while max_frames is None or writer.frames < max_frames:
        message = await feed.read()
        if message is None:
            return False
        writer.frame(message)
    return True


async def _reopen(feed: Feed, delays: Iterator[float], console: Console) -> None:
    """Reopen the feed, waiting the next backoff delay before each attempt."""
    for delay in delays:
        console.notice(f"reconnecting to {feed.url} in {delay:g} s")
        await asyncio.sleep(delay)
        try:
            await feed.open()
            return
        except RecordError as error:
            console.notice(str(error))


async def _record_open_feed(
    feed: Feed,
    writer: FrameWriter,
    max_frames: int | None,
    first_backoff_s: float,
    console: Console,
) -> None:
    """Write frames from the open feed until max_frames, reopening it whenever it drops."""
    delays = backoff_delays(first_backoff_s)
    while True:
        frames_before = writer.frames
        if await _copy_frames(feed, writer, max_frames):
            return
        console.notice(f"feed closed ({feed.close_reason()})")
        if writer.frames > frames_before:
            delays = backoff_delays(first_backoff_s)  # it was delivering: start over at the short delay
        await _reopen(feed, delays, console)
        writer.mark_reconnected()


def _progress_text(writer: FrameWriter, elapsed_s: float) -> str:
    """One progress line: frames, bytes, elapsed and frame rate."""
    rate = writer.frames / elapsed_s if elapsed_s > 0 else 0.0
    return (
        f"{writer.frames} frames  {format_size(writer.payload_bytes)}"
        f"  {elapsed_s:.1f} s  {rate:.1f} frames/s"
    )


@contextmanager
def _progress_shown(console: Console, writer: FrameWriter, started_at: float) -> Iterator[None]:
    """Redraw the progress line a few times a second while the body runs, then once more."""
    show = lambda: console.progress(_progress_text(writer, time.monotonic() - started_at))  # noqa: E731
    timer = PeriodicCallback(show, PROGRESS_INTERVAL_S * 1000)
    timer.start()
    try:
        yield
    finally:
        timer.stop()
        show()
        console.end_progress()


async def record(
    url: str,
    out: Path,
    *,
    headers: Iterable[tuple[str, str]] = (),
    send: Iterable[str] = (),
    duration_s: float | None = None,
    max_frames: int | None = None,
    stop: asyncio.Event | None = None,
    console: Console | None = None,
    ping_interval_s: float = PING_INTERVAL_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    first_backoff_s: float = FIRST_BACKOFF_S,
) -> RecordSummary:
    """Record the feed at url into out until duration_s, max_frames or stop; RecordError if it cannot connect."""
    stop = stop if stop is not None else asyncio.Event()
    console = console if console is not None else Console(None)
    feed = Feed(url, headers, send, ping_interval_s, connect_timeout_s)
    if not await _unless_stopped(stop, feed.open()):
        raise RecordError(f"stopped while connecting to {url}; nothing recorded")
    # Only now is the file opened, so a failed connection leaves an earlier recording intact.
    started_at = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as file:
        writer = FrameWriter(file)
        with _progress_shown(console, writer, started_at):
            try:
                await _unless_stopped(
                    stop, _record_open_feed(feed, writer, max_frames, first_backoff_s, console), duration_s
                )
            finally:
                feed.close()
    return RecordSummary(writer.frames, writer.payload_bytes, time.monotonic() - started_at, out)


# --- command line -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `python server.py record`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Record a live WebSocket feed to a JSON-lines file, one line per received frame,"
            " so the server can replay it with its real timing"
            " (stream source: replay, timing: recorded)."
            " Stops on --duration, --max-frames or Ctrl-C, keeping everything received."
        ),
        epilog=(
            "example: python server.py record wss://feed.example.com/ticks"
            " --header 'Authorization: Bearer abc' --send '{\"op\":\"subscribe\"}' --duration 10m"
        ),
    )
    parser.add_argument("url", metavar="URL", type=parse_ws_url, help="the feed, ws://... or wss://...")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        default=DEFAULT_OUT,
        help=f"file to write (default: {DEFAULT_OUT}); its folder is created if missing,"
        " an existing file is overwritten",
    )
    parser.add_argument(
        "--duration",
        type=parse_duration,
        metavar="TIME",
        help="stop after this long from connecting: 90 (seconds), 30s, 10m, 1h, 1h30m"
        " (default: until Ctrl-C)",
    )
    parser.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N frames")
    parser.add_argument(
        "--header",
        type=parse_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="HTTP header for the handshake, e.g. a token or Origin (repeatable)",
    )
    parser.add_argument(
        "--send",
        action="append",
        default=[],
        metavar="TEXT",
        help="text message to send after each (re)connect, e.g. a subscribe request (repeatable)",
    )
    return parser


def _positive_int(text: str) -> int:
    """Parse a whole number above zero."""
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected a whole number above 0")
    return int(text)


async def _record_until_signal(args: argparse.Namespace) -> RecordSummary:
    """Run record() with Ctrl-C and SIGTERM turned into a clean stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await record(
            args.url,
            args.out,
            headers=args.header,
            send=args.send,
            duration_s=args.duration,
            max_frames=args.max_frames,
            stop=stop,
            console=Console(sys.stderr, show_progress=sys.stderr.isatty()),
        )
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: list[str]) -> int:
    """Run `server.py record` with argv (the arguments after 'record'); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help (0) and on bad arguments (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    # Tornado logs failed TLS handshakes itself; the error line below already says why.
    logging.getLogger("tornado").addHandler(logging.NullHandler())
    try:
        summary = asyncio.run(_record_until_signal(args))
    except RecordError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    print(summary, file=sys.stderr)
    return 0
