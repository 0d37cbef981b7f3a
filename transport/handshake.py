"""The opening handshake (RFC 6455 4.2): validate an upgrade request and build the 101 response.

Pure: it reads request headers and returns either the response bytes with
what was negotiated, or the HTTP error to answer with. Subprotocols: without a
list the first protocol the client offers is accepted (what the Node ``ws``
server does); with one, the first of the client's offers that is on it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from websockets.exceptions import InvalidHeader, NegotiationError
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from websockets.headers import build_extension, parse_extension

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Every message the server sends is compressed on its own (server_no_context_takeover), so one
# compressed frame serves every client; a client's messages are decompressed with a 4 KiB window
# at most, which keeps a compressing connection's memory small.
DEFLATE = ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_max_window_bits=12,
                                         compress_settings={"memLevel": 5})


class Headers(Protocol):
    """The request headers (Tornado's HTTPHeaders)."""

    def get(self, name: str, default: str = "") -> str: ...

    def get_list(self, name: str) -> list[str]: ...


@dataclass(frozen=True)
class Rejection:
    """An upgrade request refused: the HTTP status, a one-line reason and extra headers."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    """An accepted upgrade: the 101 response to send and what it negotiated."""

    response: bytes
    subprotocol: str | None
    deflate: PerMessageDeflate | None


def is_upgrade(headers: Headers) -> bool:
    """Whether a request asks for a WebSocket (a browser tab asking for the page does not)."""
    return "websocket" in _tokens(headers.get("Upgrade", ""))


def accept(headers: Headers, subprotocols: Sequence[str] | None, compression: bool) -> Accepted | Rejection:
    """Validate an upgrade request and negotiate it; ``subprotocols`` None accepts any offer."""
    if not is_upgrade(headers):
        return Rejection(400, 'Can "Upgrade" only to "WebSocket".')
    if "upgrade" not in _tokens(headers.get("Connection", "")):
        return Rejection(400, '"Connection" must be "Upgrade".')
    if headers.get("Sec-WebSocket-Version", "") != "13":
        return Rejection(426, "Upgrade Required: this server speaks WebSocket version 13",
                         {"Sec-WebSocket-Version": "13"})
    key = headers.get("Sec-WebSocket-Key", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        return Rejection(400, "Sec-WebSocket-Key must be 16 random bytes in base64")
    offered = [p for value in headers.get_list("Sec-WebSocket-Protocol") for p in _items(value)]
    subprotocol = select_subprotocol(offered, subprotocols)
    if offered and subprotocol is None:
        return Rejection(400, f"none of the offered subprotocols ({', '.join(offered)}) is supported here; "
                              f"supported: {', '.join(subprotocols or ())}")
    deflate, extension_header = _negotiate_deflate(headers) if compression else (None, None)
    accept_key = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
    lines = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade",
             b"Sec-WebSocket-Accept: " + accept_key]
    if subprotocol is not None:
        lines.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode())
    if extension_header is not None:
        lines.append(b"Sec-WebSocket-Extensions: " + extension_header.encode())
    return Accepted(b"\r\n".join(lines) + b"\r\n\r\n", subprotocol, deflate)


def select_subprotocol(offered: Sequence[str], supported: Sequence[str] | None) -> str | None:
    """The first offered protocol (any, or one on the ``supported`` list); None if there is none."""
    if supported is None:
        return offered[0] if offered else None
    return next((p for p in offered if p in supported), None)


def _negotiate_deflate(headers: Headers) -> tuple[PerMessageDeflate | None, str | None]:
    """permessage-deflate with the first offer that can be accepted; (None, None) without one."""
    for value in headers.get_list("Sec-WebSocket-Extensions"):
        try:
            offers = parse_extension(value)
        except InvalidHeader:
            continue  # an extension we cannot parse is not accepted (RFC 6455 9.1)
        for name, params in offers:
            if name != DEFLATE.name:
                continue
            try:
                response_params, extension = DEFLATE.process_request_params(params, [])
            except NegotiationError:
                continue
            return extension, build_extension([(name, response_params)])
    return None, None


def _tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",")]


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
