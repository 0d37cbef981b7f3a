"""Taking a connection over from Tornado once its WebSocket handshake is accepted.

After ``RequestHandler.detach()`` Tornado forgets the connection. On plain TCP
its socket moves into a ``SocketTransport`` that feeds a ``Connection``
directly. Bytes the client sent right behind its
request (a first frame in the same TCP segment) may already sit in the
IOStream's buffer: they are taken out first and handed over with the socket.
A TLS connection cannot change hands (the TLS session lives in its socket
object), so it stays with its IOStream, driven through the IOStream's public
reads and writes by ``IOStreamTransport``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tornado.concurrent import Future
from tornado.iostream import IOStream, SSLIOStream, StreamClosedError

from transport.connection import READ_BUFFER_BYTES, Connection
from transport.sockets import HIGH_WATER_BYTES, LOW_WATER_BYTES, SocketTransport

log = logging.getLogger("mockws.transport")



def adopt(iostream: IOStream, connection: Connection) -> None:
    """Hand a detached IOStream to ``connection``: the 101 response goes out and the connection runs."""
    if isinstance(iostream, SSLIOStream):
        IOStreamTransport(iostream, connection).start()
        return
    try:
        pending = iostream.read_bytes(READ_BUFFER_BYTES, partial=True)
    except StreamClosedError:
        return  # the client left during its handshake
    early = b""
    if pending.done():
        try:
            early = pending.result()
        except StreamClosedError:
            return
    else:
        pending.add_done_callback(_ignore_closed)  # failed by close() below: nothing was read
    try:
        sock = iostream.socket.dup()  # close() unregisters and closes Tornado's descriptor; the dup keeps TCP open
    except OSError:
        return
    iostream.close()
    connection.received_early(early)
    SocketTransport(sock, connection)


def _ignore_closed(future: Future[Any]) -> None:
    future.exception()


class IOStreamTransport:
    """The part of an asyncio transport a ``Connection`` uses, over a Tornado IOStream (TLS connections)."""

    def __init__(self, iostream: IOStream, protocol: Connection) -> None:
        self.iostream = iostream
        self.protocol = protocol
        self.pending = 0  # written, not yet flushed
        self.eof = False
        self.writing_paused = False
        self.reading = asyncio.Event()
        self.reading.set()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the connection and its read loop."""
        self.iostream.set_nodelay(True)
        self.task = asyncio.ensure_future(self.run())  # referenced from here, so it is not collected

    async def run(self) -> None:
        """Feed what the client sends to the connection until the IOStream closes."""
        self.protocol.connection_made(self)
        try:
            while not self.iostream.closed():
                if not self.reading.is_set():
                    await self.reading.wait()
                self.protocol.data_received(await self.iostream.read_bytes(READ_BUFFER_BYTES, partial=True))
        except StreamClosedError:
            pass
        finally:
            self.iostream.close()
            self.protocol.connection_lost(None)

    def write(self, data: bytes) -> None:
        """Queue bytes; tells the protocol to stop reading while too much is queued."""
        if self.eof or self.iostream.closed():
            return
        size = len(data)
        try:
            written = self.iostream.write(data)
        except StreamClosedError:
            return
        self.pending += size
        written.add_done_callback(lambda future: self._written(size, future))
        if not self.writing_paused and self.pending > HIGH_WATER_BYTES:
            self.writing_paused = True
            self.protocol.pause_writing()

    def _written(self, size: int, future: Future[None]) -> None:
        future.exception()  # a closed IOStream is reported by the read loop
        self.pending -= size
        if self.writing_paused and self.pending <= LOW_WATER_BYTES:
            self.writing_paused = False
            self.protocol.resume_writing()
        if self.eof and not self.pending:
            self.iostream.close()

    def close(self) -> None:
        """Close once everything queued is out."""
        self.eof = True
        if not self.pending:
            self.iostream.close()

    def pause_reading(self) -> None:
        self.reading.clear()

    def resume_reading(self) -> None:
        self.reading.set()

    def abort(self) -> None:
        self.iostream.close()
