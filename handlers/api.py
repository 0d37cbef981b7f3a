"""The read-only HTTP API: health and the stream list, open to every client."""

from __future__ import annotations

import json
from typing import Any

from tornado import httputil
from tornado.web import HTTPError, RequestHandler

from streams.hub import Hub


class ApiError(HTTPError):
    """An HTTP error whose message goes to the client as {"error": message}."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code)
        self.message = message


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
        error = kwargs.get("exc_info", (None, None, None))[1]
        self.write_json({"error": error.message if isinstance(error, ApiError)
                         else httputil.responses.get(status_code, "Unknown error")}, status_code)


class HealthHandler(JsonHandler):
    """GET /healthz: the server is up; in a cluster, 503 with the reason while Redis is not connected."""

    def get(self) -> None:
        cluster = self.hub.cluster
        health = cluster.health() if cluster is not None else {"status": "ok"}
        self.write_json(health, 200 if health["status"] == "ok" else 503)


class ApiNotFoundHandler(JsonHandler):
    """Any other /api/ URL: a JSON 404 instead of an HTML page."""

    def prepare(self) -> None:
        raise ApiError(404, f"no API endpoint {self.request.path}; see GET /api/streams")


class ParamNotFoundHandler(JsonHandler):
    """A parameterized stream path with a value no stream serves: a JSON 404 naming the allowed values."""

    def prepare(self) -> None:
        raise ApiError(404, self.hub.path_refusal(self.request.path) or f"nothing at {self.request.path}")


class StreamsHandler(JsonHandler):
    """GET /api/streams: every stream with its settings and live counters."""

    def get(self) -> None:
        self.write_json(self.hub.describe())


class EndpointsHandler(JsonHandler):
    """GET /api/endpoints: every WebSocket path that answers by rules, its example messages and subscriptions."""

    def get(self) -> None:
        self.write_json(self.hub.describe_endpoints())
