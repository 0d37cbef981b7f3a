"""One WebSocket connection after the handshake: websockets' sans-I/O parser driven by an asyncio transport.

Reading: an ``asyncio.BufferedProtocol`` reads into one buffer shared by all
connections (a plain ``Protocol`` allocates a fresh 256 KiB ``recv`` buffer per
read). The bytes go to websockets' ``Protocol``, which validates framing,
masking, opcodes, close codes and sizes and answers pings and closes. It hands
out frames, not messages: reassembling fragments and validating UTF-8 as each
fragment arrives (so a bad byte fails the connection at once, not at the end
of the message) are done here.

One short path skips the parser: a read that holds exactly one complete,
masked, unfragmented text, binary, ping or pong frame of at most 125 bytes,
when the parser holds nothing (``FrameScanner`` follows frame boundaries to
know). That is what chat-sized messages, echo round trips and keepalive
pongs look like, and it costs a fraction of the parser's time. The parser is
only created when something else arrives (or the connection closes), so an
idle connection costs little more than its socket.

Writing: frames go to ``transport.write`` in the order they are produced.
What the kernel has not taken yet is ``pending_bytes``, which the domain
bounds per client. When that passes the transport's high-water mark the
connection stops reading, so a client that sends without reading what it is
answered fills its own socket buffers, not the server's memory.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import Callable
from typing import Any, Protocol

from websockets.frames import Opcode
from websockets.protocol import OPEN, Side
from websockets.protocol import Protocol as Parser

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

from transport.frames import FrameScanner, encode_deflated_frame, encode_frame, frame_header

log = logging.getLogger("mockws.transport")

# websockets logs every connection's end at INFO on its own logger; only its warnings matter here
PARSER_LOG = logging.getLogger("mockws.transport.parser")
PARSER_LOG.setLevel(logging.WARNING)

CLOSE_TIMEOUT_S = 5.0  # after our close frame (or EOF), how long the peer gets to close TCP
READ_BUFFER_BYTES = 64 * 1024
_READ_BUFFER = memoryview(bytearray(READ_BUFFER_BYTES))  # shared: each read is handled before the next one
_PING, _PONG, _CLOSE = Opcode.PING, Opcode.PONG, Opcode.CLOSE
_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")
PING_FRAME = b"\x89\x00"  # an unmasked ping with no payload


class Endpoint(Protocol):
    """What a WebSocket endpoint does with its connections (push, echo, ...)."""

    def on_open(self, connection: Connection) -> None:
        """The handshake is done and the connection can send."""

    def on_message(self, connection: Connection, data: bytes, binary: bool) -> None:
        """A whole message arrived (text is valid UTF-8)."""

    def on_close(self, connection: Connection) -> None:
        """The connection is gone (called once)."""


class Frame(Protocol):
    """A message ready to send to many clients (streams.sources.Frame), with the encodings cached on it."""

    data: bytes
    binary: bool
    wire: bytes | None
    deflated: tuple[int, bytes] | None


class Connection(asyncio.BufferedProtocol):
    """A WebSocket connection: parses what the client sends and sends frames to it.

    Implements the domain's client interface (``streams.client.Client``):
    ``send``, ``send_message``, ``pending_bytes``, ``is_open``, ``close``, ``end`` and ``abort``.
    """

    __slots__ = ("transport", "parser", "deflate", "endpoint", "context", "path", "subprotocol", "window_bits",
                 "scanner", "fragments", "fragment_binary", "utf8", "is_open", "alive", "ping_sent_at",
                 "close_timer", "greeting", "max_message_bytes", "registry", "ended", "expiry")
    kind = "websocket"

    def __init__(self, endpoint: Endpoint, path: str, greeting: bytes, *, subprotocol: str | None = None,
                 deflate: Any = None, max_message_bytes: int, registry: Connections,
                 expires: tuple[float, int, str] | None = None) -> None:
        self.transport: Any = None
        self.parser: Parser | None = None  # created with the first frame the short path does not take
        self.scanner: FrameScanner | None = None
        self.deflate = deflate  # permessage-deflate, when negotiated: the parser decompresses with it
        self.window_bits = deflate.local_max_window_bits if deflate is not None else 0
        self.endpoint = endpoint
        self.context: Any = None  # the endpoint's per-connection state (e.g. the stream it joined)
        self.path = path
        self.subprotocol = subprotocol
        self.fragments: list[bytes] | None = None  # a fragmented message being received
        self.fragment_binary = False
        self.utf8: codecs.IncrementalDecoder | None = None
        self.is_open = False  # True from the handshake until we send (or answer) a close frame
        self.alive = False  # something arrived since the last keepalive ping
        self.ping_sent_at: float | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.greeting = (greeting, b"")  # the 101 response, and bytes the client sent right behind its request
        self.max_message_bytes = max_message_bytes
        self.registry = registry
        self.ended = False
        # (seconds, code, reason): close that long after the handshake (an expiring token); then its timer
        self.expiry: tuple[float, int, str] | asyncio.TimerHandle | None = expires

    # -- the client interface (streams.client.Client)

    def send(self, frame: Frame, seq: int | None = None) -> bool:
        """Queue a frame built once for many clients; False when this one is closing or gone."""
        if not self.is_open:
            return False
        if self.window_bits:
            cached = frame.deflated
            if cached is None or cached[0] != self.window_bits:
                cached = frame.deflated = (self.window_bits,
                                           encode_deflated_frame(frame.data, frame.binary, self.window_bits))
            self.transport.write(cached[1])
            return True
        wire = frame.wire
        if wire is None:
            wire = frame.wire = encode_frame(frame.data, frame.binary)
        self.transport.write(wire)
        return True

    def send_message(self, data: bytes, binary: bool = False) -> bool:
        """Queue one message for this connection only (a reply, an echo); False when closing or gone."""
        if not self.is_open:
            return False
        if self.window_bits:
            self.transport.write(encode_deflated_frame(data, binary, self.window_bits))
        else:
            self.transport.write(encode_frame(data, binary))
        return True

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for the client that the kernel has not taken yet."""
        return self.transport.pending if self.transport is not None else 0

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the connection ends when the client answers or after a timeout."""
        if not self.is_open:
            return
        self.is_open = False
        parser = self._parser()
        if parser.state is not OPEN:
            # the client's close came in the same read as the message being answered (a rule that closes):
            # the parser has already queued its answer to it, which ends the connection
            return
        parser.send_close(code, reason)
        self._write_all(parser.data_to_send())
        self._expect_end()

    def end(self, code: int, reason: str) -> None:
        """What it was sent is over (a replay finished, its stream was removed): close."""
        self.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame (browsers report 1006)."""
        self.is_open = False
        if self.transport is not None and not self.ended:
            self.transport.abort()

    def received_early(self, data: bytes) -> None:
        """Bytes the client sent right behind its handshake, read before the connection started."""
        self.greeting = (self.greeting[0], data)

    # -- asyncio.BufferedProtocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        greeting, early = self.greeting
        self.greeting = None
        transport.write(greeting)
        self.is_open = True
        self.registry.add(self)
        try:
            self.endpoint.on_open(self)
        except Exception:  # one connection's failure must not reach the event loop
            log.exception("%s: unexpected error starting a connection; dropping it", self.path)
            self.abort()
            return
        if isinstance(self.expiry, tuple) and not self.ended:
            seconds, code, reason = self.expiry
            self.expiry = asyncio.get_running_loop().call_later(seconds, self.close, code, reason)
        if early and not self.ended:
            self.data_received(early)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _READ_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_READ_BUFFER[:nbytes])

    def eof_received(self) -> bool:
        parser = self._parser()
        parser.receive_eof()
        self.is_open = False
        self._write_all(parser.data_to_send())
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended:
            return
        self.ended = True
        self.is_open = False
        for timer in (self.close_timer, self.expiry):
            if isinstance(timer, asyncio.TimerHandle):
                timer.cancel()
        self.close_timer = self.expiry = None
        self.registry.discard(self)
        try:
            self.endpoint.on_close(self)
        except Exception:  # the connection is gone either way; the next ones must not suffer
            log.exception("%s: unexpected error ending a connection", self.path)

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # the client does not read what it is sent: stop reading it

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    # -- receiving

    def data_received(self, data: bytes | memoryview) -> None:
        """Handle bytes from the client; a bug met on the way drops this connection, not the server."""
        try:
            self._receive(data)
        except Exception:  # one connection's failure must not reach the event loop
            log.exception("%s: unexpected error handling a client's data; dropping the connection", self.path)
            self.abort()

    def _receive(self, data: bytes | memoryview) -> None:
        """One small frame directly, anything else through the parser."""
        self.alive = True
        n = len(data)
        if 6 <= n <= 131 and self.is_open and (self.scanner is None or self.scanner.at_boundary):
            b0, b1 = data[0], data[1]
            length = b1 - 0x80  # masked: the mask bit is set
            if b0 == 0x8A and n == length + 6:
                return  # a pong: the client is alive, which is all it says
            if b0 == 0x89 and n == length + 6:
                self.transport.write(frame_header(0x8A, length) + apply_mask(data[6:], data[2:6]))
                return  # a ping, answered with a pong carrying the same data
            if ((b0 == 0x81 or b0 == 0x82) and 0 <= length < 126 and n == length + 6
                    and self.fragments is None and length <= self.max_message_bytes):
                payload = apply_mask(data[6:], data[2:6])
                if b0 == 0x82:
                    self.endpoint.on_message(self, payload, True)
                    return
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    pass  # the parser's path fails the connection with 1007
                else:
                    self.endpoint.on_message(self, payload, False)
                    return
        self._parse(data)

    def _parser(self) -> Parser:
        """The parser, created the first time it is needed."""
        if self.parser is None:
            self.parser = Parser(Side.SERVER, max_size=self.max_message_bytes, logger=PARSER_LOG)
            if self.deflate is not None:
                self.parser.extensions = [self.deflate]
            self.scanner = FrameScanner()
        return self.parser

    def _parse(self, data: bytes | memoryview) -> None:
        parser = self._parser()
        scanned = self.scanner.scan(data)
        if scanned.problem is not None:
            # invalid UTF-8 in a text message: fail now, not when the frame or message is complete
            parser.receive_data(data[:scanned.invalid_at])
            self._handle_events()
            if parser.state is OPEN:
                self.is_open = False
                parser.fail(1007, scanned.problem)
                self._write_all(parser.data_to_send())
            return
        if scanned.close_at >= 0:
            # RFC 6455 5.4 lets a close frame arrive between the fragments of a message; websockets
            # fails that with 1002, the conformance suite (7.1.5) expects a normal close: the
            # unfinished message is dropped and the close answered
            parser.receive_data(data[:scanned.close_at])
            self._handle_events()
            parser.current_size = None
            self.fragments = self.utf8 = None
            data = data[scanned.close_at:]
        parser.receive_data(data)
        self._handle_events()

    def _handle_events(self) -> None:
        parser = self.parser
        events = parser.events_received()
        writes = parser.data_to_send()  # the parser's answers (pongs, close), in the order of events
        done = 0
        for frame in events:
            opcode = frame.opcode
            if opcode is _PING:
                self._write(writes[done])
                done += 1
            elif opcode is _CLOSE:
                self.is_open = False
                break
            elif opcode is not _PONG and not self._receive_data_frame(frame):
                self._write_all(parser.data_to_send())  # failed: our close frame, not the rest of the read
                return
        self._write_all(writes[done:])
        if parser.state is not OPEN:
            self.is_open = False
            if parser.close_expected():
                self._expect_end()

    def _receive_data_frame(self, frame: Any) -> bool:
        """Reassemble and deliver messages; False after failing the connection (invalid UTF-8).

        FrameScanner has already checked uncompressed text as it arrived, to fail
        early; this check stays because it is what guarantees that no invalid text
        is delivered: a frame whose bad bytes the scanner found in this very read
        reaches here before the connection is failed, and compressed text is only
        readable here.
        """
        opcode, data = frame.opcode, frame.data
        try:
            if opcode is _CONT:
                if self.fragments is None:
                    return True  # the rest of a message dropped by a close (see _parse)
                self.fragments.append(data)
                if self.utf8 is not None:
                    self.utf8.decode(data, frame.fin)
                if not frame.fin:
                    return True
                data, binary = b"".join(self.fragments), self.fragment_binary
                self.fragments = self.utf8 = None
            elif frame.fin:
                binary = opcode is _BINARY
                if not binary:
                    data.decode("utf-8")
            else:
                self.fragments, self.fragment_binary = [data], opcode is _BINARY
                if opcode is _TEXT:
                    self.utf8 = _Utf8Decoder()
                    self.utf8.decode(data, False)
                return True
        except UnicodeDecodeError as e:
            self.fragments = self.utf8 = None
            if self.parser.state is OPEN:
                self.parser.fail(1007, f"invalid UTF-8: {e.reason} at position {e.start}")
            self.is_open = False
            return False
        if self.is_open:  # still true for a message that arrived in the same read as the client's close
            self.endpoint.on_message(self, data, binary)
        return True

    # -- writing and ending

    def ping(self) -> None:
        """Send a keepalive ping."""
        if self.is_open:
            self.transport.write(PING_FRAME)

    def keepalive(self, now: float, timeout_s: float) -> None:
        """One keepalive sweep: ping an idle client, drop one that did not answer the last ping in time."""
        if self.ping_sent_at is not None and not self.alive:
            if timeout_s and now - self.ping_sent_at >= timeout_s and self.is_open:
                log.debug("%s: no answer to a ping for %.1f s: closing the connection", self.path, timeout_s)
                self.is_open = False
                parser = self._parser()
                parser.fail(1011, "keepalive ping timeout")  # and TCP ends after CLOSE_TIMEOUT_S at most
                self._write_all(parser.data_to_send())
            return
        self.alive = False
        self.ping_sent_at = now
        self.ping()

    def _write(self, data: bytes) -> None:
        if self.ended:
            return
        if data:
            self.transport.write(data)
        else:  # websockets' SEND_EOF: the closing handshake is done or the connection failed
            self.is_open = False
            self.transport.close()  # the server closes TCP first (RFC 6455 7.1.1), once the close frame is out
            self._expect_end()

    def _write_all(self, writes: list[bytes]) -> None:
        for data in writes:
            self._write(data)

    def _expect_end(self) -> None:
        """The peer should close TCP now; drop it if it does not within CLOSE_TIMEOUT_S."""
        if self.close_timer is None and not self.ended:
            self.close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self.abort)


class Connections:
    """Every open WebSocket connection of the server, and the one keepalive timer they share.

    Tornado's own keepalive starts a task per connection; here one sweep every
    ``ping_interval_s`` pings the connections that were idle and drops those
    that did not answer the previous ping within ``ping_timeout_s``.
    """

    def __init__(self, keepalive: Callable[[], tuple[float, float]]) -> None:
        self.keepalive = keepalive  # () -> (ping_interval_s, ping_timeout_s), read at every sweep (live config)
        self.open: set[Connection] = set()
        self.timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self.open)

    def add(self, connection: Connection) -> None:
        """Count a connection that completed its handshake."""
        self.open.add(connection)
        if self.timer is None:
            self._arm()

    def discard(self, connection: Connection) -> None:
        """Forget a connection that ended."""
        self.open.discard(connection)
        if not self.open and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def sweep(self) -> None:
        """Ping idle connections and drop unresponsive ones, then schedule the next sweep."""
        self.timer = None
        interval, timeout = self.keepalive()
        if interval:
            now = asyncio.get_running_loop().time()
            for connection in list(self.open):
                connection.keepalive(now, timeout)
        self._arm()

    def _arm(self) -> None:
        interval, timeout = self.keepalive()
        period = min(interval, timeout) if interval and timeout else interval
        if self.open:
            # with keepalive off, check again later in case a live config edit turns it on
            self.timer = asyncio.get_running_loop().call_later(period or 1.0, self.sweep)
