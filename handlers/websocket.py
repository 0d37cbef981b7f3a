"""What every WebSocket endpoint shares: origin allow-list, client limit, keepalive, size limit."""

from __future__ import annotations

import json
from typing import Any

from tornado.websocket import WebSocketHandler

from streams.hub import Hub


class HubWebSocketHandler(WebSocketHandler):
    """A WebSocket that lives by the hub's current `server:` limits and counts itself in the hub."""

    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket" and self.hub.at_capacity():
            # refuse before the handshake so existing clients are unaffected
            self.set_status(503)
            self.set_header("Content-Type", "application/json")
            self.set_header("Retry-After", "5")
            self.finish(json.dumps({"error": f"server is at its limit of {self.hub.server.max_clients} "
                                             "WebSocket clients (server.max_clients)"}))
            return
        await super().get(*args, **kwargs)

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

    def open(self, *args: str, **kwargs: str) -> None:
        # frames are pushed as they are due: without this, Nagle's algorithm and the peer's
        # delayed ACK hold a frame for ~40 ms after the client has sent anything
        self.set_nodelay(True)
        self.hub.add_socket(self)

    def on_close(self) -> None:
        self.hub.remove_socket(self)
