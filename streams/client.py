"""How the domain sees a connected client: a few verbs, whatever the transport behind them."""

from __future__ import annotations

from typing import Protocol

from streams.sources import Frame


class Client(Protocol):
    """A connected client (``transport.connection.Connection`` is one; tests use a fake)."""

    @property
    def is_open(self) -> bool:
        """Whether frames can still be sent (false once closing or gone)."""

    @property
    def pending_bytes(self) -> int:
        """Bytes sent to the client that the network has not taken yet."""

    def send(self, frame: Frame) -> bool:
        """Queue one frame; False when the client is closing or gone."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code`` and ``reason``."""

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake."""
