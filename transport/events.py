"""Server-Sent Events: a stream's frames as a ``text/event-stream`` response, on the lean transport.

Once the request is checked, the handler detaches the connection from
Tornado (like a WebSocket after its handshake) and an ``EventStream`` owns
it: the response head goes out, then one event per frame::

    id: 42
    event: stats
    data: {"face": ...}

The response has no length and no chunked encoding (``Connection: close``):
it ends when the server closes the connection, which every EventSource and
``curl -N`` read as the end of the stream. A frame is encoded once per number
for all its clients (cached on the frame). What the client sends after its
request is read and dropped.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any, Protocol

log = logging.getLogger("mockws.transport")

BINARY_EVENT = "binary"  # binary frames go out base64-encoded under this event name
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_DISCARD = memoryview(bytearray(4096))  # what the client sends after its request: read and dropped


class Frame(Protocol):
    """What EventStream.send needs of a frame (``streams.sources.Frame`` is one)."""

    data: bytes
    binary: bool
    event: str | None
    sse: tuple[int | None, str | None, bytes] | None  # the last encoding, filled in here


class Endpoint(Protocol):
    """What runs an event stream (handlers.events)."""

    def on_open(self, stream: EventStream) -> None: ...

    def on_close(self, stream: EventStream) -> None: ...


def encode_event(data: bytes, binary: bool, seq: int | None, event: str | None) -> bytes:
    """One event: ``id:`` the frame's number, ``event:`` its name, a ``data:`` line per line of the frame."""
    if binary:
        data, event = base64.b64encode(data), BINARY_EVENT
    head = (b"id: %d\n" % seq if seq is not None else b"") + (b"event: %s\n" % event.encode() if event else b"")
    if b"\n" not in data and b"\r" not in data:
        return head + b"data: " + data + b"\n\n"
    return head + b"".join(b"data: " + line + b"\n" for line in _LINE_BREAK.split(data)) + b"\n"


def response_head(retry_ms: int, headers: dict[str, str]) -> bytes:
    """The HTTP response head of an event stream, and its first event (how soon to reconnect)."""
    lines = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream; charset=utf-8", "Cache-Control: no-cache",
             "Connection: close", "X-Accel-Buffering: no"]  # tells nginx not to buffer the stream
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + b"retry: %d\n\n" % retry_ms


class EventStream:
    """One EventSource client: a connection the server writes events to until either side closes it.

    Implements the domain's client interface (``streams.client.Client``) and the
    protocol interface the transports drive (``transport.adopt``).
    """

    __slots__ = ("transport", "endpoint", "context", "path", "event", "head", "registry", "is_open", "ended")
    kind = "sse"

    def __init__(self, endpoint: Endpoint, path: str, head: bytes, *, event: str | None, registry: Any,
                 context: Any = None) -> None:
        self.transport: Any = None
        self.endpoint = endpoint
        self.context = context  # the endpoint's per-connection state (first: where the client resumes)
        self.path = path
        self.event = event  # the stream's sse_event: None sends unnamed events (EventSource's onmessage)
        self.head = head
        self.registry = registry
        self.is_open = False
        self.ended = False

    # -- the client interface (streams.client.Client)

    def send(self, frame: Frame, seq: int | None = None) -> bool:
        """Queue a frame as an event, encoded once per number for every client."""
        if not self.is_open:
            return False
        event = frame.event or self.event
        cached = frame.sse
        if cached is None or cached[0] != seq or cached[1] != event:
            cached = frame.sse = (seq, event, encode_event(frame.data, frame.binary, seq, event))
        self.transport.write(cached[2])
        return True

    def send_message(self, data: bytes, binary: bool = False) -> bool:
        """Queue one event for this client only, without a number."""
        if not self.is_open:
            return False
        self.transport.write(encode_event(data, binary, None, self.event))
        return True

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for the client that the kernel has not taken yet."""
        return self.transport.pending if self.transport is not None else 0

    def close(self, code: int = 1000, reason: str = "") -> None:
        """End the response once what is queued is out (an EventSource then reconnects by itself)."""
        if self.is_open:
            self.is_open = False
            self.transport.close()

    def end(self, code: int, reason: str) -> None:
        """The stream has no more frames: end the response."""
        self.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        self.is_open = False
        if self.transport is not None and not self.ended:
            self.transport.abort()

    def keepalive(self, now: float, timeout_s: float) -> None:
        """A comment line, so proxies and load balancers keep an idle stream open."""
        if self.is_open:
            self.transport.write(b":\n\n")

    # -- the protocol interface (transport.adopt)

    def received_early(self, data: bytes) -> None:
        """Bytes the client sent behind its request: nothing an event stream reads."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.head)
        self.head = b""
        self.is_open = True
        self.registry.add(self)
        try:
            self.endpoint.on_open(self)
        except Exception:  # one client's failure must not reach the event loop
            log.exception("%s: unexpected error starting an event stream; dropping it", self.path)
            self.abort()

    def get_buffer(self, sizehint: int) -> memoryview:
        return _DISCARD

    def buffer_updated(self, nbytes: int) -> None:
        pass

    def data_received(self, data: bytes | memoryview) -> None:
        pass

    def eof_received(self) -> bool:
        self.is_open = False
        return False  # the client is gone: the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended:
            return
        self.ended = True
        self.is_open = False
        self.registry.discard(self)
        try:
            self.endpoint.on_close(self)
        except Exception:  # the client is gone either way; the next ones must not suffer
            log.exception("%s: unexpected error ending an event stream", self.path)

    def pause_writing(self) -> None:
        pass  # the slow-client bound reads pending_bytes on every frame

    def resume_writing(self) -> None:
        pass
