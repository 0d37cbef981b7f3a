"""Server-Sent Events on a stream's path: ``GET`` with ``Accept: text/event-stream`` (what EventSource sends).

The request is checked like a WebSocket handshake (origin, token, client
limit); then the connection is detached from Tornado and an
``transport.events.EventStream`` serves it. A client that reconnects with
``Last-Event-ID: N`` (EventSource does so by itself) or ``?since=N``
continues after frame N (``streams.stream.Stream.subscribe``).
"""

from __future__ import annotations

from tornado.web import RequestHandler

from streams.hub import Hub
from streams.stream import Stream
from transport.adopt import adopt
from transport.connection import Connections
from transport.events import EventStream, response_head


def wants_events(handler: RequestHandler) -> bool:
    """Whether a GET asks for an event stream."""
    return "text/event-stream" in handler.request.headers.get("Accept", "")


def resume_point(handler: RequestHandler) -> int | None:
    """The frame number a client continues after (Last-Event-ID, else ?since=); -1 when it is not a number."""
    value = handler.request.headers.get("Last-Event-ID")
    if value is None:
        value = handler.get_query_argument("since", None)
    if value is None or value == "":
        return None
    value = value.strip()
    return int(value) if value.isdigit() else -1


def cors_headers(hub: Hub, origin: str | None) -> dict[str, str]:
    """CORS response headers for a page at ``origin`` (per server.allowed_origins), so another port can listen."""
    if origin is None:
        return {}
    if hub.server.allowed_origins == ("*",):
        return {"Access-Control-Allow-Origin": "*"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


class EventsEndpoint:
    """Subscribes each event stream to the stream at its path."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def on_open(self, events: EventStream) -> None:
        """Subscribe, continuing after the frame the client last saw, if it says."""
        since, events.context = events.context, None
        self.hub.add_socket(events)
        stream = self.hub.stream_for_client(events.path)
        if stream is None:  # removed between the request and now, or (a path value) no room for one more
            events.close()
            return
        events.context = stream
        stream.subscribe(events, since=since)

    def on_close(self, events: EventStream) -> None:
        """Unsubscribe."""
        stream, events.context = events.context, None
        if isinstance(stream, Stream):
            stream.unsubscribe(events)
        self.hub.remove_socket(events)


def serve_events(handler: RequestHandler, hub: Hub, stream: Stream, registry: Connections,
                 endpoint: EventsEndpoint) -> None:
    """Answer the request with the stream's events, the connection handed to an EventStream."""
    head = response_head(stream.config.sse_retry_ms, cors_headers(hub, handler.request.headers.get("Origin")))
    events = EventStream(endpoint, handler.request.path, head, event=stream.config.sse_event, registry=registry,
                         context=resume_point(handler))
    adopt(handler.detach(), events)
