"""The echo WebSocket: every message goes back unchanged, text as text, binary as binary."""

from __future__ import annotations

from tornado.websocket import WebSocketClosedError

from handlers.websocket import HubWebSocketHandler


class EchoHandler(HubWebSocketHandler):
    """Sends each message back to its sender."""

    def on_message(self, message: str | bytes) -> None:
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            pass  # the client left before its echo
