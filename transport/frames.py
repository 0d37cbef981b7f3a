"""WebSocket frames as the server writes them, and a scanner that follows frame boundaries.

Server frames are unmasked (RFC 6455 5.1), so one encoded frame is valid for
every client that negotiated the same thing: a frame is encoded once and
written to all of them. With permessage-deflate and
``server_no_context_takeover`` every message is compressed on its own, so a
compressed frame is shared too (one per window size).
"""

from __future__ import annotations

import zlib

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
FIN = 0x80
RSV1 = 0x40
_DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: every compressed message ends with it, sent without


def frame_header(first_byte: int, length: int) -> bytes:
    """The header of an unmasked server frame with ``length`` bytes of payload."""
    if length < 126:
        return bytes((first_byte, length))
    if length < 0x10000:
        return bytes((first_byte, 126)) + length.to_bytes(2, "big")
    return bytes((first_byte, 127)) + length.to_bytes(8, "big")


def encode_frame(payload: bytes, binary: bool = False) -> bytes:
    """One unfragmented, unmasked, uncompressed frame holding ``payload``."""
    return frame_header(FIN | (OPCODE_BINARY if binary else OPCODE_TEXT), len(payload)) + payload


def encode_deflated_frame(payload: bytes, binary: bool, window_bits: int) -> bytes:
    """One frame holding ``payload`` compressed on its own (no context kept between messages)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits, 5)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if data.endswith(_DEFLATE_TAIL):
        data = data[:-4]
    return frame_header(FIN | RSV1 | (OPCODE_BINARY if binary else OPCODE_TEXT), len(data)) + data


class FrameScanner:
    """Follows the frame boundaries of what a client sends, reading headers only.

    The parser (websockets' ``Protocol``) buffers an incomplete frame
    internally; knowing where frames end tells the connection when that buffer
    is empty, so a later read holding exactly one small frame can be handled
    without it. It also finds a close frame that interrupts a fragmented
    message (see ``Connection``).
    """

    __slots__ = ("remaining", "head", "fragmented")

    def __init__(self) -> None:
        self.remaining = 0  # bytes of the current frame still to come
        self.head = b""  # the start of a header split across reads
        self.fragmented = False  # a data frame without FIN was seen and its last fragment was not

    @property
    def at_boundary(self) -> bool:
        """Whether everything scanned so far ends exactly at the end of a frame."""
        return self.remaining == 0 and not self.head

    def scan(self, data: bytes | memoryview) -> int:
        """Follow ``data``; returns where a close frame starts inside a fragmented message, else -1."""
        prefix = len(self.head)
        if prefix:
            data = self.head + bytes(data)
            self.head = b""
        n = len(data)
        pos = self.remaining
        interrupting_close = -1
        while pos < n:
            if n - pos < 2:
                break
            b0, b1 = data[pos], data[pos + 1]
            length = b1 & 0x7F
            size = 2 + (4 if b1 & 0x80 else 0)
            if length == 126:
                size += 2
            elif length == 127:
                size += 8
            if n - pos < size:
                break
            if length == 126:
                length = int.from_bytes(data[pos + 2:pos + 4], "big")
            elif length == 127:
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
            opcode = b0 & 0x0F
            if opcode == OPCODE_CLOSE and self.fragmented and interrupting_close < 0:
                interrupting_close = max(0, pos - prefix)  # a header begun in an earlier read: split here
            if opcode in (OPCODE_TEXT, OPCODE_BINARY):
                self.fragmented = not b0 & FIN
            elif opcode == OPCODE_CONTINUATION and b0 & FIN:
                self.fragmented = False
            pos += size + length
        if pos < n:
            self.head = bytes(data[pos:])
            self.remaining = 0
        else:
            self.remaining = pos - n
        return interrupting_close
