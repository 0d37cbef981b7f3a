"""The echo WebSocket: every message goes back unchanged, text as text, binary as binary."""

from __future__ import annotations

from collections.abc import Sequence

from config import AuthConfig
from handlers.websocket import WebSocketHandler
from streams.hub import Hub
from transport.connection import Connection


class EchoEndpoint:
    """Sends each message back to its sender."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def on_open(self, connection: Connection) -> None:
        """Count the connection (server.max_clients, shutdown)."""
        self.hub.add_socket(connection)

    def on_message(self, connection: Connection, data: bytes, binary: bool) -> None:
        """Echo it."""
        connection.send_message(data, binary)

    def on_close(self, connection: Connection) -> None:
        """Forget the connection."""
        self.hub.remove_socket(connection)


class EchoHandler(WebSocketHandler):
    """The upgrade request for the echo path."""

    def subprotocols(self) -> Sequence[str] | None:
        echo = self.hub.config.settings.echo
        return echo.subprotocols if echo is not None else None

    def auth(self) -> AuthConfig | None:
        echo = self.hub.config.settings.echo
        return echo.auth if echo is not None else None
