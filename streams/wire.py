"""WebSocket frames as the server sends them (RFC 6455 section 5.2).

A server frame is unmasked, so one encoded frame is valid for every client
that did not negotiate an extension: a stream builds it once per message and
writes the same bytes to all of them (see ``streams.stream``).
"""

from __future__ import annotations

import struct

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
_FIN = 0x80


def ws_frame(payload: bytes, binary: bool = False) -> bytes:
    """One unfragmented, unmasked, uncompressed frame holding ``payload``."""
    head = _FIN | (OPCODE_BINARY if binary else OPCODE_TEXT)
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", head, n) + payload
    if n <= 0xFFFF:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload
