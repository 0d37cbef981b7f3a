"""How the domain sees a connected client: a few verbs, whatever the transport behind them."""

from __future__ import annotations

from typing import Protocol

from streams.sources import Frame


class Client(Protocol):
    """A connected client (``transport.connection.Connection`` is one; tests use a fake)."""

    kind: str  # the transport it came by, for the API's counts: websocket, sse, socketio

    @property
    def is_open(self) -> bool:
        """Whether frames can still be sent (false once closing or gone)."""

    @property
    def pending_bytes(self) -> int:
        """Bytes sent to the client that the network has not taken yet."""

    def send(self, frame: Frame, seq: int | None = None) -> bool:
        """Queue one frame, number ``seq`` of its timeline (None: pushed); False when the client is closing or gone.

        The number is what a client resumes from (SSE ``id:``); a WebSocket has no use for it."""

    def send_message(self, data: bytes, binary: bool = False) -> bool:
        """Queue one message for this client only (a reply); False when it is closing or gone."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code`` and ``reason``."""

    def end(self, code: int, reason: str) -> None:
        """The stream has nothing more for this client: a connection closes, a topic subscription ends."""

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake."""
