"""A stream's WebSocket: subscribes the client to the stream at its path and answers its messages.

A plain GET of a stream path (no Upgrade header, i.e. a browser tab) gets the
demo page, so ``http://localhost:3030/`` works although a stream lives at ``/``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from tornado.websocket import WebSocketClosedError

from handlers.demo import send_demo_page
from handlers.websocket import HubWebSocketHandler


class PushHandler(HubWebSocketHandler):
    """Connects one WebSocket to the stream served at the request path."""

    def get(self, *args: Any, **kwargs: Any) -> Awaitable[None] | None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            send_demo_page(self)
            return None
        return super().get(*args, **kwargs)  # not awaited here: see HubWebSocketHandler.get

    def head(self, *args: Any, **kwargs: Any) -> None:
        send_demo_page(self)  # `curl -I` of a stream path: the page's headers

    def open(self, *args: str, **kwargs: str) -> None:
        super().open()
        self.stream = self.hub.stream_at(self.request.path)
        if self.stream is None:  # removed between routing and handshake
            self.close(1001, "stream removed")
            return
        self.stream.subscribe(self)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        if self.stream is None:
            return None
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        reply = self.stream.reply_to(message)
        if reply is None:
            return None
        try:
            return self.send(reply)  # no more reading until it is out (see EchoHandler)
        except WebSocketClosedError:
            return None  # the client left before its reply

    def on_close(self) -> None:
        if getattr(self, "stream", None) is not None:
            self.stream.unsubscribe(self)
        super().on_close()
