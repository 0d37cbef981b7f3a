"""HTTP edges Tornado leaves out: ``431 Request Header Fields Too Large`` instead of a silent close.

Tornado closes a connection whose request head is over ``max_header_size``
without a response, so clients see nothing (curl prints ``000``). The server
lets Tornado read heads up to ``HARD_HEAD_LIMIT_BYTES`` and answers anything
over ``HEAD_LIMIT_BYTES`` with 431 and a one-line reason, through Tornado's
public delegate interfaces.
"""

from __future__ import annotations

from typing import Any

from tornado import httputil

HEAD_LIMIT_BYTES = 64 * 1024  # request line + headers, like Tornado's and Node's defaults
HARD_HEAD_LIMIT_BYTES = 1024 * 1024  # beyond this Tornado drops the connection without reading on


class HeadLimit(httputil.HTTPServerConnectionDelegate):
    """Wraps an application: requests whose head is over ``limit`` bytes get 431."""

    def __init__(self, application: httputil.HTTPServerConnectionDelegate, limit: int = HEAD_LIMIT_BYTES) -> None:
        self.application = application
        self.limit = limit

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        """A request starts: check its head before the application sees it."""
        return _LimitedRequest(self.application.start_request(server_conn, request_conn), request_conn, self.limit)

    def on_close(self, server_conn: object) -> None:
        """The connection closed."""
        self.application.on_close(server_conn)


class _LimitedRequest(httputil.HTTPMessageDelegate):
    def __init__(self, inner: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection, limit: int) -> None:
        self.inner = inner
        self.connection = connection
        self.limit = limit
        self.refused = False

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        size = sum(len(part) + 1 for part in start_line) + 1
        size += sum(len(name) + len(value) + 4 for name, value in headers.get_all()) + 2
        if size <= self.limit:
            return self.inner.headers_received(start_line, headers)
        self.refused = True
        body = (f"request head is {size} bytes; the limit is {self.limit}: send fewer or shorter headers "
                "(large cookies are the usual cause)\n").encode()
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 431, "Request Header Fields Too Large"),
            httputil.HTTPHeaders({"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body)),
                                  "Connection": "close"}),
            body)
        self.connection.finish()
        return None

    def data_received(self, chunk: bytes) -> Any:
        return None if self.refused else self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:  # a refused request never reached the application
            self.inner.on_connection_close()
