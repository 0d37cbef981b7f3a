"""The WebSocket upgrade every endpoint shares: origin allow-list, client limit, handshake, hand-over.

Tornado routes the request here and this handler checks it; once the
handshake is accepted the connection is detached from Tornado and owned by the
transport (``transport.adopt``), which calls the endpoint (push, echo) for
what happens after.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tornado.web import RequestHandler

from config import AuthConfig
from streams.hub import Hub
from transport.adopt import adopt
from transport.connection import Connection, Connections, Endpoint
from transport.handshake import Accepted, accept, is_upgrade


class WebSocketHandler(RequestHandler):
    """Upgrades a request to a WebSocket served by ``endpoint``, within the hub's `server:` limits."""

    def initialize(self, hub: Hub, connections: Connections, endpoint: Endpoint) -> None:
        self.hub = hub
        self.connections = connections
        self.endpoint = endpoint

    def subprotocols(self) -> Sequence[str] | None:
        """The protocols this endpoint speaks; None accepts whichever the client offers first."""
        return None

    def auth(self) -> AuthConfig | None:
        """The token this endpoint requires, if any."""
        return None

    def get_without_upgrade(self) -> None:
        """A GET that does not ask for a WebSocket."""
        self.refuse(400, 'Can "Upgrade" only to "WebSocket".')

    def get(self) -> None:
        """Check the upgrade request, answer 101 and hand the connection to the transport."""
        headers = self.request.headers
        if not is_upgrade(headers):
            self.get_without_upgrade()
            return
        auth = self.auth()
        if not self.admitted(auth):
            return
        outcome = accept(headers, self.subprotocols(), self.hub.server.compression)
        if not isinstance(outcome, Accepted):
            for name, value in outcome.headers.items():
                self.set_header(name, value)
            self.refuse(outcome.status, outcome.message)
            return
        expires = (auth.expires_after_s, auth.expired_code, "token expired") if auth and auth.expires_after_s else None
        connection = Connection(self.endpoint, self.request.path, outcome.response,
                                subprotocol=outcome.subprotocol, deflate=outcome.deflate,
                                max_message_bytes=self.hub.server.max_message_bytes, registry=self.connections,
                                expires=expires)
        connection.context = self.connection_context()
        adopt(self.detach(), connection)

    def connection_context(self) -> Any:
        """What the endpoint finds in ``connection.context`` when the connection opens."""
        return None

    def admitted(self, auth: AuthConfig | None) -> bool:
        """The checks every client passes before it is served: origin, token, client limit; False: refused."""
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.hub.server.origin_allowed(origin):
            self.refuse(403, f"origin {origin} is not allowed (server.allowed_origins)")
            return False
        if auth is not None and not self.authorized(auth):
            return False
        if self.hub.at_capacity():
            # refused before the handshake, so existing clients are unaffected
            self.set_header("Retry-After", "5")
            limit, why = self.hub.client_limit()
            self.refuse(503, f"server is at its limit of {limit} clients ({why})")
            return False
        return True

    def authorized(self, auth: AuthConfig) -> bool:
        """Whether the request carries an accepted token; if not, it is answered with 401."""
        token = auth.token(self.get_query_argument(auth.query, None) if auth.query else None,
                           self.request.headers.get(auth.header) if auth.header else None)
        refusal = auth.refusal(token)
        if refusal is None:
            return True
        if auth.header is not None and auth.scheme is not None:
            self.set_header("WWW-Authenticate", f'{auth.scheme} realm="mock WebSocket"')
        self.refuse(401, refusal)
        return False

    def refuse(self, status: int, message: str) -> None:
        """Answer an upgrade request with an HTTP error and a JSON reason."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))
