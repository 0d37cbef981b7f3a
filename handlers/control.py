"""The control API: inspect one stream, push a frame, pause, resume, seek and set faults.

POST and PUT endpoints change what clients see, so they answer only loopback clients,
unless ``server.api_token`` is set: then every client, local or not, must send
``Authorization: Bearer <token>``. GET endpoints stay open (the demo page reads
them from any device).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from tornado.web import stream_request_body

from config import FaultsConfig, validation_problems
from handlers.api import ApiError, JsonHandler
from streams.hub import NotSeekableError, SeekRangeError, UnknownStreamError
from streams.jsontext import dumps
from streams.sources import Frame, JsonFrame


class StreamHandler(JsonHandler):
    """GET /api/streams/{name}: settings and live state of one stream."""

    def get(self, name: str) -> None:
        with domain_errors():
            self.write_json(self.hub.stream(name).detail())


@stream_request_body
class ControlHandler(JsonHandler):
    """A POST/PUT endpoint: authorised clients only, bodies bounded by server.max_body_bytes."""

    def prepare(self) -> None:
        self._body = bytearray()
        self._check_access()
        limit = self.hub.server.max_body_bytes
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise ApiError(413, f"body too large: {length} bytes, the limit is {limit} "
                                        "(server.max_body_bytes)")
        self.request.connection.set_max_body_size(limit)

    def data_received(self, chunk: bytes) -> None:
        self._body += chunk

    def _check_access(self) -> None:
        token = self.hub.server.api_token
        if token is not None:
            sent = self.request.headers.get("Authorization", "")
            if not (sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), token.encode())):
                self.set_header("WWW-Authenticate", 'Bearer realm="mock-ws control API"')
                raise ApiError(401, "missing or wrong token: send 'Authorization: Bearer <server.api_token>'")
        elif not _is_loopback(self.request.remote_ip):
            raise ApiError(403, "the control API answers only this machine (loopback) unless "
                                        "server.api_token is set; then send 'Authorization: Bearer <token>'")

    def json_body(self) -> Any:
        """The request body parsed as JSON, or 400 with the parser's message."""
        try:
            return json.loads(self._body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(400, f"invalid JSON body: {e}") from None


class PushFrameHandler(ControlHandler):
    """POST /api/streams/{name}/push: send a frame to every client now, outside the schedule."""

    def post(self, name: str) -> None:
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "text/plain":
            try:
                frame = Frame.text(self._body.decode("utf-8"))
            except UnicodeDecodeError:
                raise ApiError(400, "text/plain body is not UTF-8") from None
        elif content_type == "application/octet-stream":
            frame = Frame(bytes(self._body), binary=True)
        else:
            if not self._body:
                raise ApiError(400, "empty body: send JSON, or text with Content-Type: text/plain")
            frame = JsonFrame.text(dumps(self.json_body()))
        with domain_errors():
            self.write_json({"sent_to": self.hub.push(name, frame)})


class PauseHandler(ControlHandler):
    """POST /api/streams/{name}/pause: stop the stream's clock; clients stay connected."""

    def post(self, name: str) -> None:
        with domain_errors():
            self.write_json(self.hub.pause(name).detail())


class ResumeHandler(ControlHandler):
    """POST /api/streams/{name}/resume: restart the clock where it stopped."""

    def post(self, name: str) -> None:
        with domain_errors():
            self.write_json(self.hub.resume(name).detail())


class SeekHandler(ControlHandler):
    """POST /api/streams/{name}/seek {"index": N}: jump a shared replay timeline to entry N."""

    def post(self, name: str) -> None:
        with domain_errors():
            self.hub.stream(name)  # 404 before the body is looked at
        body = self.json_body()
        index = body.get("index") if isinstance(body, dict) else None
        if not isinstance(index, int) or isinstance(index, bool):
            index = -1  # out of range: the hub says which indexes there are, after checking the stream can seek
        with domain_errors(body=body):
            self.write_json(self.hub.seek(name, index).detail())


class FaultsHandler(ControlHandler):
    """PUT /api/streams/{name}/faults: replace the stream's faults; the body is a `faults:` block as JSON."""

    def put(self, name: str) -> None:
        with domain_errors():
            self.hub.stream(name)
        body = self.json_body()
        if body is not None and not isinstance(body, dict):
            raise ApiError(400, f'send a JSON object like the faults: block, e.g. {{"disconnect_every_s": 30}} '
                                f"({{}} turns every fault off), got {_short(body)}")
        try:
            faults = FaultsConfig.model_validate(body or {})
        except ValidationError as e:
            raise ApiError(400, "; ".join(validation_problems(e, ("faults",), "streams[].faults"))) from None
        with domain_errors():
            self.write_json(self.hub.set_faults(name, faults).detail())


@contextmanager
def domain_errors(body: Any = None) -> Iterator[None]:
    """Turn the hub's errors into API errors: 404 for an unknown stream, 409 and 400 for a seek."""
    try:
        yield
    except UnknownStreamError as e:
        raise ApiError(404, str(e)) from None
    except NotSeekableError as e:
        raise ApiError(409, str(e)) from None
    except SeekRangeError as e:
        raise ApiError(400, f'send {{"index": N}} with N from 0 to {e.length - 1}, got {_short(body)}') from None


def _is_loopback(ip: str | None) -> bool:
    try:
        return ip is not None and ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False  # e.g. a unix socket peer: not provably local


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
