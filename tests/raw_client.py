"""A WebSocket client written by hand on a plain socket, for tests that misbehave on purpose.

Tornado's own client only sends valid frames and always reads; this one can
stop reading, skip the mask, send broken frames or half a handshake. It runs
on the test's event loop (non-blocking socket), like the server under test.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DROPPED = "dropped"  # what wait_closed() returns when the TCP connection ended without a close frame


def client_frame(payload: bytes, opcode: int = OP_TEXT, *, masked: bool = True, fin: bool = True,
                 rsv: int = 0, mask: bytes = b"\x00\x00\x00\x00") -> bytes:
    """One frame as a client sends it (masked unless told otherwise; the zero mask keeps big payloads cheap)."""
    head = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", head, mask_bit | n)
    elif n <= 0xFFFF:
        header = struct.pack("!BBH", head, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", head, mask_bit | 127, n)
    if not masked:
        return header + payload
    if mask != b"\x00\x00\x00\x00":
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + payload


def handshake_request(path: str, port: int, headers: dict[str, str | None] | None = None) -> bytes:
    """A valid RFC 6455 opening handshake; a header set to None in ``headers`` is left out."""
    fields: dict[str, str | None] = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    fields.update(headers or {})
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawClient:
    """One TCP connection to the test server, driven byte by byte."""

    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock = sock
        self.port = port
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()  # received, not yet parsed
        self.eof = False

    @classmethod
    async def open(cls, port: int, rcvbuf: int | None = None) -> RawClient:
        """A TCP connection, nothing sent yet; ``rcvbuf`` caps what the kernel buffers for a non-reader."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # also turns off autotuning
        sock.setblocking(False)
        client = cls(sock, port)
        try:
            await client.loop.sock_connect(sock, ("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        return client

    @classmethod
    async def connect(cls, port: int, path: str = "/", rcvbuf: int | None = None) -> RawClient:
        """A completed WebSocket handshake (101), or AssertionError."""
        client = await cls.open(port, rcvbuf)
        try:
            status, _, _ = await client.handshake(path)
        except BaseException:
            client.close()
            raise
        if status != 101:
            client.close()
            raise AssertionError(f"handshake answered {status}")
        return client

    async def handshake(self, path: str, headers: dict[str, str | None] | None = None,
                        timeout: float = 2.0, then: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """Send an opening handshake, and ``then`` in the same write; returns the status, headers and
        (for non-101 answers) the body."""
        await self.send(handshake_request(path, self.port, headers) + then)
        while b"\r\n\r\n" not in self.buffer:
            if not await self._fill(timeout):
                raise ConnectionError(f"connection closed during the handshake: {bytes(self.buffer)!r}")
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)  # frames sent right after the 101 stay for read_frame
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
        body = b""
        if int(status_line.split()[1]) != 101:
            length = int(fields.get("content-length", 0))
            while len(self.buffer) < length and await self._fill(timeout):
                pass
            body, self.buffer = bytes(self.buffer[:length]), self.buffer[length:]
        return int(status_line.split()[1]), fields, body

    async def send(self, data: bytes, timeout: float = 5.0) -> None:
        """Write raw bytes."""
        await asyncio.wait_for(self.loop.sock_sendall(self.sock, data), timeout)

    async def send_frame(self, payload: bytes, opcode: int = OP_TEXT, **options) -> None:
        """Write one client frame (see client_frame for the options)."""
        await self.send(client_frame(payload, opcode, **options))

    async def read_frame(self, timeout: float = 2.0) -> tuple[int, bytes] | None:
        """The next server frame as (opcode, payload); None when the connection ended."""
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            if not await self._fill(timeout):
                return None

    async def read_wire(self, timeout: float = 2.0) -> bytes | None:
        """The next server frame exactly as it came (header and payload); None when the connection ended."""
        while (size := self._frame_size()) is None:
            if not await self._fill(timeout):
                return None
        wire = bytes(self.buffer[:sum(size)])
        del self.buffer[:sum(size)]
        return wire

    async def wait_closed(self, timeout: float = 2.0) -> int | str:
        """Read until the server ends the connection: its close code, or DROPPED for a bare TCP close."""
        while (frame := await self.read_frame(timeout)) is not None:
            opcode, payload = frame
            if opcode == OP_CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return DROPPED

    def close(self) -> None:
        """Close the TCP connection abruptly (no close frame)."""
        self.sock.close()

    async def _fill(self, timeout: float) -> bool:
        """Receive more bytes into the buffer; False at EOF or reset."""
        if self.eof:
            return False
        try:
            chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, 1 << 16), timeout)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def _frame_size(self) -> tuple[int, int] | None:
        """(header bytes, payload bytes) of the frame at the start of the buffer, once all of it is there."""
        buf = self.buffer
        if len(buf) < 2:
            return None
        n, start = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, start = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, start = struct.unpack_from("!Q", buf, 2)[0], 10
        return (start, n) if len(buf) >= start + n else None

    def _parse(self) -> tuple[int, bytes] | None:
        size = self._frame_size()
        if size is None:
            return None
        start, n = size
        opcode, payload = self.buffer[0] & 0x0F, bytes(self.buffer[start:start + n])
        del self.buffer[:start + n]
        return opcode, payload
