"""WebSocket frames as the server writes them, and a scanner that follows frame boundaries.

Server frames are unmasked (RFC 6455 5.1), so one encoded frame is valid for
every client that negotiated the same thing: a frame is encoded once and
written to all of them. With permessage-deflate and
``server_no_context_takeover`` every message is compressed on its own, so a
compressed frame is shared too (one per window size).
"""

from __future__ import annotations

import codecs
import struct
import zlib
from typing import NamedTuple

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
FIN = 0x80
RSV1 = 0x40
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")
_DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: every compressed message ends with it, sent without


_HEADER_7 = struct.Struct("!BB").pack
_HEADER_16 = struct.Struct("!BBH").pack
_HEADER_64 = struct.Struct("!BBQ").pack


def frame_header(first_byte: int, length: int) -> bytes:
    """The header of an unmasked server frame with ``length`` bytes of payload."""
    if length < 126:
        return _HEADER_7(first_byte, length)
    if length < 0x10000:
        return _HEADER_16(first_byte, 126, length)
    return _HEADER_64(first_byte, 127, length)


def encode_frame(payload: bytes, binary: bool = False) -> bytes:
    """One unfragmented, unmasked, uncompressed frame holding ``payload``."""
    return frame_header(0x82 if binary else 0x81, len(payload)) + payload  # FIN and the opcode


def encode_deflated_frame(payload: bytes, binary: bool, window_bits: int) -> bytes:
    """One frame holding ``payload`` compressed on its own (no context kept between messages)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits, 5)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if data.endswith(_DEFLATE_TAIL):
        data = data[:-4]
    return frame_header(FIN | RSV1 | (OPCODE_BINARY if binary else OPCODE_TEXT), len(data)) + data


class FrameScanner:
    """Follows the frames a client sends as their bytes arrive, reading headers and text payloads only.

    websockets' parser hands out a frame once it is whole. Following the same
    bytes here tells the connection three things the parser does not:
    whether everything received ends exactly at a frame boundary (then the
    parser holds nothing, and a later read holding one small frame can skip
    it); where a close frame interrupts a fragmented message (see
    ``Connection._parse``); and where the text of a message stops being valid
    UTF-8, as soon as those bytes arrive, even in the middle of a frame that
    has not arrived whole (compressed messages are checked once decompressed).
    """

    __slots__ = ("remaining", "head", "fragmented", "text", "final", "mask", "offset", "utf8")

    def __init__(self) -> None:
        self.remaining = 0  # payload bytes of the current frame still to come
        self.head = b""  # the start of a header split across reads
        self.fragmented = False  # inside a message whose last fragment has not come yet
        self.text = False  # the current frame's payload is (uncompressed) text to check
        self.final = False  # the current frame ends its message
        self.mask = b""
        self.offset = 0  # payload bytes of the current frame already seen (for the mask's phase)
        self.utf8: codecs.IncrementalDecoder | None = None  # the current text message's decoder

    @property
    def at_boundary(self) -> bool:
        """Whether everything scanned so far ends exactly at the end of a frame."""
        return self.remaining == 0 and not self.head

    def scan(self, data: bytes | memoryview) -> Scanned:
        """Follow ``data``: where a close interrupts a fragmented message, and where text turns invalid."""
        prefix = len(self.head)
        if prefix:
            data = self.head + bytes(data)
            self.head = b""
        n = len(data)
        pos = 0
        close_at = -1
        while pos < n:
            if self.remaining:
                take = min(self.remaining, n - pos)
                if self.text:
                    problem = self._check(data[pos:pos + take], self.final and take == self.remaining)
                    if problem is not None:
                        return Scanned(close_at, max(0, pos + take - prefix), problem)
                pos += take
                self.remaining -= take
                self.offset += take
                continue
            header = _parse_header(data, pos)
            if header is None:
                self.head = bytes(data[pos:])
                break
            size, b0, length, mask = header
            opcode = b0 & 0x0F
            if opcode == OPCODE_CLOSE:
                if self.fragmented and close_at < 0:
                    close_at = max(0, pos - prefix)  # a header begun in an earlier read: split here
                self.fragmented, self.utf8 = False, None  # nothing after a close is a message
            if opcode in (OPCODE_TEXT, OPCODE_BINARY):
                self.fragmented = not b0 & FIN
                checked = opcode == OPCODE_TEXT and not b0 & RSV1 and mask is not None
                self.utf8 = _Utf8Decoder() if checked else None
            elif opcode == OPCODE_CONTINUATION and b0 & FIN:
                self.fragmented = False
            data_frame = opcode in (OPCODE_TEXT, OPCODE_BINARY, OPCODE_CONTINUATION)
            self.text = data_frame and self.utf8 is not None
            self.final = data_frame and bool(b0 & FIN)
            self.mask, self.offset, self.remaining = mask or b"", 0, length
            pos += size
            if self.text and not length and self.final:
                problem = self._check(b"", True)
                if problem is not None:
                    return Scanned(close_at, max(0, pos - prefix), problem)
        return Scanned(close_at, -1, None)

    def _check(self, masked: bytes | memoryview, final: bool) -> str | None:
        """Unmask a piece of text payload and feed it to the message's decoder; the problem, if any."""
        phase = self.offset % 4
        try:
            self.utf8.decode(apply_mask(masked, self.mask[phase:] + self.mask[:phase]), final)
        except UnicodeDecodeError as e:
            self.utf8, self.text = None, False  # the connection fails: nothing more to check
            return f"invalid UTF-8: {e.reason}"
        if final:
            self.utf8 = None
        return None


class Scanned(NamedTuple):
    """What FrameScanner.scan found in one read."""

    close_at: int  # where a close frame interrupting a fragmented message starts, or -1
    invalid_at: int  # the end of the read's first bytes that are not valid UTF-8 text, or -1
    problem: str | None  # why


def _parse_header(data: bytes | memoryview, pos: int) -> tuple[int, int, int, bytes | None] | None:
    """(header size, first byte, payload length, mask) of the frame header at ``pos``; None if incomplete."""
    n = len(data)
    if n - pos < 2:
        return None
    b0, b1 = data[pos], data[pos + 1]
    length = b1 & 0x7F
    size = 2 + (2 if length == 126 else 8 if length == 127 else 0)
    mask_at = size
    if b1 & 0x80:
        size += 4
    if n - pos < size:
        return None
    if length == 126:
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
    elif length == 127:
        length = int.from_bytes(data[pos + 2:pos + 10], "big")
    mask = bytes(data[pos + mask_at:pos + mask_at + 4]) if b1 & 0x80 else None
    return size, b0, length, mask
