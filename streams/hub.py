"""The Hub: every stream and WebSocket of one running server, and the config they run on."""

from __future__ import annotations

import asyncio
import logging
from random import Random
from typing import Any

from config import AppConfig, ServerConfig, StreamConfig
from streams.stream import Client, Stream

log = logging.getLogger("mockws.hub")


def stream_rng(seed: int | None, name: str) -> Random:
    """The random generator of one stream: reproducible with a seed, independent of other streams."""
    return Random(f"{seed}/{name}") if seed is not None else Random()


class Hub:
    """The running streams by name and path, the open sockets and the current config."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.streams: dict[str, Stream] = {}
        self.sockets: set[Client] = set()  # every open WebSocket, echo included
        for stream_config in config.streams:
            self.streams[stream_config.name] = self._make_stream(stream_config)
        self._closed = asyncio.Event()

    @property
    def server(self) -> ServerConfig:
        """The current `server:` settings."""
        return self.config.settings.server

    @property
    def echo_path(self) -> str | None:
        """Where the echo WebSocket lives, or None when it is off."""
        echo = self.config.settings.echo
        return echo.path if echo is not None else None

    def stream_at(self, path: str) -> Stream | None:
        """The stream served at a URL path, if any."""
        return next((s for s in self.streams.values() if s.config.path == path), None)

    def _make_stream(self, stream_config: StreamConfig) -> Stream:
        seed = self.config.settings.random_seed
        source = self.config.sources[stream_config.name]
        return Stream(stream_config, source, stream_rng(seed, stream_config.name), self.server)

    # -- sockets

    def add_socket(self, client: Client) -> None:
        """Count an open WebSocket (for max_clients and shutdown)."""
        self.sockets.add(client)
        self._closed.clear()

    def remove_socket(self, client: Client) -> None:
        """Forget a closed WebSocket."""
        self.sockets.discard(client)
        if not self.sockets:
            self._closed.set()

    def at_capacity(self) -> bool:
        """Whether a new WebSocket would exceed server.max_clients."""
        return len(self.sockets) >= self.server.max_clients

    # -- shutdown

    def stop(self) -> None:
        """Stop every stream's clock."""
        for stream in self.streams.values():
            stream.stop()

    def close_all(self, code: int, reason: str) -> None:
        """Close every WebSocket, streams and echo alike."""
        for stream in self.streams.values():
            stream.close_all(code, reason)
        for client in list(self.sockets):
            client.close(code, reason)

    async def wait_closed(self, timeout_s: float) -> bool:
        """Wait until every WebSocket has closed; False if some were still open after the timeout."""
        if not self.sockets:
            return True
        try:
            await asyncio.wait_for(self._closed.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    def describe(self) -> list[dict[str, Any]]:
        """Every stream as the HTTP API lists them."""
        return [stream.describe() for stream in self.streams.values()]
