"""The HTTP API: health and stream listing (read-only, open to every client)."""

from __future__ import annotations

import json
from typing import Any

from tornado.web import RequestHandler

from streams.hub import Hub


class JsonHandler(RequestHandler):
    """JSON in and out, errors included."""

    def initialize(self, hub: Hub | None = None) -> None:
        self.hub = hub

    def write_json(self, value: Any, status: int = 200) -> None:
        """Finish the request with ``value`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(value, ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.write_json({"error": self._reason}, status_code)


class HealthHandler(JsonHandler):
    """GET /healthz: the server is up."""

    def get(self) -> None:
        self.write_json({"status": "ok"})


class StreamsHandler(JsonHandler):
    """GET /api/streams: every stream with its settings and live counters."""

    def get(self) -> None:
        self.write_json(self.hub.describe())
