"""What every WebSocket endpoint shares: origin allow-list, client limit, keepalive, size limit."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from tornado.concurrent import Future
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol, WebSocketProtocol13

from streams.hub import Hub
from streams.stream import takes_raw_frames, write_frame
from streams.wire import ws_frame

_DATA_AND_CONTROL_OPCODES = (0x0, 0x1, 0x2, 0x8, 0x9, 0xA)


class StrictProtocol(WebSocketProtocol13):
    """Tornado's RFC 6455 protocol plus the client checks it leaves out.

    Tornado accepts unmasked client frames and drops the TCP connection on
    invalid UTF-8 or an unknown opcode; RFC 6455 says a server must fail an
    unmasked frame (5.1) and suggests 1002 and 1007, which tell the developer
    of a broken client what it did wrong. Tornado's private ``_frame_mask``
    is the only place where it remembers whether a frame was masked.
    """

    async def _receive_frame(self) -> None:
        self._frame_mask = None  # set by Tornado only when the frame carries a mask
        await super()._receive_frame()
        if self._frame_mask is None and not self.client_terminated:
            # an unmasked fragment, which Tornado buffered without delivering
            self._fail(1002, "client frames must be masked")

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if self.client_terminated:
            return None
        if self._frame_mask is None:
            return self._fail(1002, "client frames must be masked")
        if opcode not in _DATA_AND_CONTROL_OPCODES:
            return self._fail(1002, f"unknown opcode {opcode:#x}")
        if opcode == 0x1 and self._decompressor is None:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(1007, "text frame is not valid UTF-8")
        return super()._handle_message(opcode, data)

    def _fail(self, code: int, reason: str) -> None:
        """Send a close frame, then drop the connection (as Tornado does for 1009)."""
        self.close(code, reason)
        self._abort()


class HubWebSocketHandler(WebSocketHandler):
    """A WebSocket that lives by the hub's current `server:` limits and counts itself in the hub."""

    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    def get(self, *args: Any, **kwargs: Any) -> Awaitable[None] | None:
        # not a coroutine: Tornado awaits the handshake's coroutine we return, and one frame
        # fewer stays alive for as long as the connection is open (memory per idle client)
        if self.request.headers.get("Upgrade", "").lower() == "websocket" and self.hub.at_capacity():
            # refuse before the handshake so existing clients are unaffected
            self.set_status(503)
            self.set_header("Content-Type", "application/json")
            self.set_header("Retry-After", "5")
            self.finish(json.dumps({"error": f"server is at its limit of {self.hub.server.max_clients} "
                                             "WebSocket clients (server.max_clients)"}))
            return None
        return super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        """Browsers send Origin; non-browser clients without one are always allowed."""
        return self.hub.server.origin_allowed(origin)

    # Tornado reads these per connection, so a live config change applies to new connections.
    @property
    def max_message_size(self) -> int:
        return self.hub.server.max_message_bytes

    @property
    def ping_interval(self) -> float | None:
        return self.hub.server.ping_interval_s or None

    @property
    def ping_timeout(self) -> float | None:
        return self.hub.server.ping_timeout_s or None

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        protocol = super().get_websocket_protocol()
        return StrictProtocol(self, False, protocol.params) if protocol is not None else None

    def open(self, *args: str, **kwargs: str) -> None:
        # frames are pushed as they are due: without this, Nagle's algorithm and the peer's
        # delayed ACK hold a frame for ~40 ms after the client has sent anything
        self.set_nodelay(True)
        self.hub.add_socket(self)

    def on_close(self) -> None:
        self.hub.remove_socket(self)

    def send(self, message: str | bytes, binary: bool = False) -> Awaitable[None] | None:
        """Send one message: None when it is already out, else an awaitable done once it is.

        Replies and echoes go out as one frame written straight to the socket
        (``streams.stream.write_frame``): ``write_message`` creates an asyncio
        Task per message. With compression negotiated, or over TLS, it is
        ``write_message`` as usual. Raises WebSocketClosedError when the client has gone.
        """
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            raise WebSocketClosedError()
        if not takes_raw_frames(connection):
            return _until_sent(self.write_message(message, binary=binary))
        data = message.encode("utf-8") if isinstance(message, str) else message
        try:
            pending = write_frame(connection.stream, ws_frame(data, binary))
        except StreamClosedError:
            raise WebSocketClosedError() from None
        return None if pending is None else _until_sent(pending)


async def _until_sent(pending: Future[None]) -> None:
    """Wait until a queued message is out; a client that left meanwhile is not an error."""
    try:
        await pending
    except (StreamClosedError, WebSocketClosedError):
        pass
