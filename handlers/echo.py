"""The echo WebSocket: every message goes back unchanged, text as text, binary as binary."""

from __future__ import annotations

from tornado.websocket import WebSocketClosedError

from handlers.websocket import HubWebSocketHandler


class EchoHandler(HubWebSocketHandler):
    """Sends each message back to its sender."""

    async def on_message(self, message: str | bytes) -> None:
        try:
            # Tornado reads this client's next message only once the echo has gone out, so a
            # client that sends without reading fills its own socket, not the server's memory
            await self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            pass  # the client left before its echo
