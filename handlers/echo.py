"""The echo WebSocket: every message goes back unchanged, text as text, binary as binary."""

from __future__ import annotations

from collections.abc import Awaitable

from tornado.websocket import WebSocketClosedError

from handlers.websocket import HubWebSocketHandler


class EchoHandler(HubWebSocketHandler):
    """Sends each message back to its sender."""

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        try:
            # Tornado reads this client's next message only once the echo has gone out (it awaits
            # what we return), so a client that sends without reading fills its own socket, not
            # the server's memory
            return self.send(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            return None  # the client left before its echo
