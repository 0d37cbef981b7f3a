"""A rules endpoint: a WebSocket with no stream of its own that answers by rules and serves streams as topics."""

from __future__ import annotations

from collections.abc import Sequence

from config import AuthConfig
from handlers.demo import send_demo_page
from handlers.websocket import WebSocketHandler
from streams.conversation import Conversation
from streams.hub import Hub
from transport.connection import Connection


class RulesEndpoint:
    """Gives each connection a conversation: its messages answered by the endpoint's rules."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def on_open(self, connection: Connection) -> None:
        """Count the connection and start its conversation."""
        self.hub.add_socket(connection)
        connection.context = Conversation(connection, self.hub, connection.path)

    def on_message(self, connection: Connection, data: bytes, binary: bool) -> None:
        """Answer by the rules."""
        connection.context.receive(data, binary)

    def on_close(self, connection: Connection) -> None:
        """End the conversation and every subscription it holds."""
        connection.context.end()
        self.hub.remove_socket(connection)


class RulesHandler(WebSocketHandler):
    """The upgrade request for a rules endpoint; a browser tab gets the demo page instead."""

    def subprotocols(self) -> Sequence[str] | None:
        endpoint = self.hub.endpoint_at(self.request.path)
        return endpoint.subprotocols if endpoint is not None else None

    def auth(self) -> AuthConfig | None:
        endpoint = self.hub.endpoint_at(self.request.path)
        return endpoint.auth if endpoint is not None else None

    def get_without_upgrade(self) -> None:
        send_demo_page(self)

    def head(self) -> None:
        send_demo_page(self)
