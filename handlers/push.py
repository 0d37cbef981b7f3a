"""A stream's WebSocket: subscribes the client to the stream at its path and answers its messages.

A plain GET of a stream path (no Upgrade header, i.e. a browser tab) gets the
demo page, so ``http://localhost:3030/`` works although a stream lives at ``/``.
"""

from __future__ import annotations

from collections.abc import Sequence

from config import AuthConfig
from handlers.demo import send_demo_page
from handlers.events import EventsEndpoint, resume_point, serve_events, wants_events
from handlers.websocket import WebSocketHandler
from streams.conversation import Conversation
from streams.hub import MAX_PATH_VALUES, Hub
from streams.stream import Stream
from transport.connection import Connection, Connections, Endpoint


class PushEndpoint:
    """Connects each WebSocket to the stream at its path; the stream's rules (or `reply`) answer messages."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def on_open(self, connection: Connection) -> None:
        """Subscribe the connection to its stream (after the frame it saw last, with ?since=N)."""
        since, connection.context = connection.context, None
        self.hub.add_socket(connection)
        stream = self.hub.stream_for_client(connection.path)
        if stream is None and self.hub.stream_at(connection.path) is not None:  # a path value, and no room left
            connection.close(1013, "too many path values served; try again later")
            return
        if stream is None:  # removed between the handshake and now
            connection.close(1001, "stream removed")
            return
        connection.context = stream
        stream.subscribe(connection, since=since)

    def on_message(self, connection: Connection, data: bytes, binary: bool) -> None:
        """Answer by the stream's rules, if it has any; the conversation starts with the first message."""
        context = connection.context
        if isinstance(context, Stream):
            if self.hub.rules_at(connection.path) is None:
                return
            context = connection.context = Conversation(connection, self.hub, connection.path, own=context)
        if context is not None:
            context.receive(data, binary)

    def on_close(self, connection: Connection) -> None:
        """Unsubscribe the connection, and end its conversation."""
        context, connection.context = connection.context, None
        if isinstance(context, Conversation):
            context.end()
        elif context is not None:
            context.unsubscribe(connection)
        self.hub.remove_socket(connection)


class PushHandler(WebSocketHandler):
    """A stream path: the WebSocket upgrade, an event stream (SSE), or the demo page for a browser tab."""

    def initialize(self, hub: Hub, connections: Connections, endpoint: Endpoint, events: Connections,
                   events_endpoint: EventsEndpoint) -> None:
        super().initialize(hub, connections, endpoint)
        self.events = events
        self.events_endpoint = events_endpoint

    def subprotocols(self) -> Sequence[str] | None:
        stream = self.hub.stream_at(self.request.path)
        return stream.config.subprotocols if stream is not None else None

    def auth(self) -> AuthConfig | None:
        stream = self.hub.stream_at(self.request.path)
        return stream.config.auth if stream is not None else None

    def admitted(self, auth: AuthConfig | None) -> bool:
        """The checks of every endpoint, and room for one more value of a parameterized stream (else 503)."""
        if not super().admitted(auth):
            return False
        if self.hub.path_values_full(self.request.path):
            self.set_header("Retry-After", "5")
            self.refuse(503, f"no room for another value of {self.hub.stream_at(self.request.path).config.path}: "
                             f"{MAX_PATH_VALUES} path values are served already; try again when clients leave")
            return False
        return True

    def connection_context(self) -> int | None:
        """Where the client resumes: ?since=N continues after frame N."""
        return resume_point(self)

    def get_without_upgrade(self) -> None:
        stream = self.hub.stream_at(self.request.path)
        if stream is None or not wants_events(self):
            send_demo_page(self)
        elif self.admitted(stream.config.auth):
            serve_events(self, self.hub, stream, self.events, self.events_endpoint)

    def head(self) -> None:
        send_demo_page(self)  # `curl -I` of a stream path: the page's headers
