"""A lean transport for a plain TCP socket, on the event loop's public reader/writer callbacks.

asyncio's own socket transport keeps about 1.5 KB per connection (a dict of
extra info with the peer's and our address, a deque, a TransportSocket
wrapper, a weak reference from the loop); with tens of thousands of idle
dashboard tabs that is most of the server's memory. This one keeps the
socket, a few flags and the bytes the kernel has not taken yet. It offers the
part of the asyncio transport interface ``Connection`` uses, with the same
meaning: ``write``, ``close`` (after the queued bytes are out), ``abort``,
``pause_reading``/``resume_reading``, ``get_extra_info("socket")``, and
``pause_writing``/``resume_writing`` calls on the protocol around the
high/low-water marks; what asyncio's ``get_write_buffer_size()`` returns is
the ``pending`` attribute here, read on every push.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

HIGH_WATER_BYTES = 64 * 1024  # asyncio's defaults
LOW_WATER_BYTES = 16 * 1024
_RETRY = (BlockingIOError, InterruptedError)


class SocketTransport:
    """Moves bytes between a connected non-blocking socket and a buffered protocol."""

    __slots__ = ("sock", "fd", "loop", "protocol", "buffer", "pending", "reading", "closing", "writing_paused")

    def __init__(self, sock: socket.socket, protocol: Any) -> None:
        sock.setblocking(False)
        # frames go out as they are due: without this, Nagle's algorithm and the peer's delayed ACK
        # hold a frame for ~40 ms after the client has sent anything
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = asyncio.get_running_loop()
        self.protocol = protocol
        self.buffer: bytearray | None = None  # what the kernel has not taken yet
        self.pending = 0  # its length (read on every push, so kept rather than computed)
        self.reading = False
        self.closing = False
        self.writing_paused = False
        protocol.connection_made(self)
        if not self.closing:
            self.resume_reading()

    # -- reading

    def _read_ready(self) -> None:
        buffer = self.protocol.get_buffer(-1)
        try:
            n = self.sock.recv_into(buffer)
        except _RETRY:
            return
        except OSError as e:
            self._force_close(e)
            return
        if n:
            self.protocol.buffer_updated(n)
            return
        self.pause_reading()  # end of stream: the peer will send nothing more
        if not self.protocol.eof_received():
            self.close()

    def pause_reading(self) -> None:
        """Stop reading (the protocol's back-pressure)."""
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.fd)

    def resume_reading(self) -> None:
        """Read again."""
        if not self.reading and not self.closing:
            self.reading = True
            self.loop.add_reader(self.fd, self._read_ready)

    # -- writing

    def write(self, data: bytes) -> None:
        """Send ``data`` after whatever is queued; queue what the kernel does not take now."""
        if self.closing:
            return
        if self.buffer is None:
            try:
                sent = self.sock.send(data)
            except _RETRY:
                sent = 0
            except OSError as e:
                self._force_close(e)
                return
            if sent == len(data):
                return
            self.buffer = bytearray(memoryview(data)[sent:])
            self.loop.add_writer(self.fd, self._write_ready)
        else:
            self.buffer += data
        self.pending = len(self.buffer)
        if not self.writing_paused and self.pending > HIGH_WATER_BYTES:
            self.writing_paused = True
            self.protocol.pause_writing()

    def _write_ready(self) -> None:
        buffer = self.buffer
        if buffer is None:
            return
        try:
            sent = self.sock.send(buffer)
        except _RETRY:
            return
        except OSError as e:
            self._force_close(e)
            return
        del buffer[:sent]
        self.pending = len(buffer)
        if buffer:
            if self.writing_paused and len(buffer) <= LOW_WATER_BYTES:
                self.writing_paused = False
                self.protocol.resume_writing()
            return
        self.buffer = None
        self.loop.remove_writer(self.fd)
        if self.writing_paused:
            self.writing_paused = False
            self.protocol.resume_writing()
        if self.closing:
            self.loop.call_soon(self._connection_lost, None)

    # -- ending

    def close(self) -> None:
        """Stop reading, and close the socket once everything queued is out."""
        if self.closing:
            return
        self.closing = True
        self.pause_reading()
        if self.buffer is None:
            self.loop.call_soon(self._connection_lost, None)

    def abort(self) -> None:
        """Close the socket now, dropping whatever is queued."""
        self._force_close(None)

    def _force_close(self, exc: Exception | None) -> None:
        # once the socket is closed its descriptor number may belong to a new connection:
        # the reader and writer are removed here, before that, and never touched again
        if self.buffer is not None:
            self.buffer, self.pending = None, 0
            self.loop.remove_writer(self.fd)
        self.closing = True
        self.pause_reading()
        self.loop.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: Exception | None) -> None:
        if self.sock.fileno() == -1:
            return  # already reported
        try:
            self.protocol.connection_lost(exc)
        finally:
            self.sock.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``socket``: the socket (the only extra this transport keeps)."""
        return self.sock if name == "socket" else default
