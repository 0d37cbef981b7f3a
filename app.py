"""make_app(): the Tornado application for a hub, the one seam tests and server.py share."""

from __future__ import annotations

from pathlib import Path

from tornado.httputil import HTTPServerRequest
from tornado.log import access_log
from tornado.routing import Matcher, PathMatches, Rule
from tornado.web import Application, RequestHandler, StaticFileHandler

from handlers.api import ApiNotFoundHandler, EndpointsHandler, HealthHandler, ParamNotFoundHandler, StreamsHandler
from handlers.control import FaultsHandler, PauseHandler, PushFrameHandler, ResumeHandler, SeekHandler, StreamHandler
from handlers.demo import DemoHandler
from handlers.echo import EchoEndpoint, EchoHandler
from handlers.events import EventsEndpoint
from handlers.push import PushEndpoint, PushHandler
from handlers.rules import RulesEndpoint, RulesHandler
from handlers.socket_io import SocketIoGateway, socketio_handler
from streams.hub import Hub
from transport.connection import Connections

STATIC_PATH = Path(__file__).parent / "static"


class NoCacheStaticFileHandler(StaticFileHandler):
    """Static files revalidated on every load (ETag), so an upgrade never mixes old and new modules."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


class StreamPathMatches(Matcher):
    """Matches a request for the path of one of the hub's streams (looked up per request)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def match(self, request: HTTPServerRequest) -> dict | None:
        return {} if self.hub.stream_at(request.path) is not None else None


class EchoPathMatches(Matcher):
    """Matches a request for the echo path (looked up per request)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def match(self, request: HTTPServerRequest) -> dict | None:
        return {} if request.path == self.hub.echo_path else None


class EndpointPathMatches(Matcher):
    """Matches a request for the path of one of the hub's rules endpoints (looked up per request)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def match(self, request: HTTPServerRequest) -> dict | None:
        return {} if self.hub.endpoint_at(request.path) is not None else None


def log_request(handler: RequestHandler) -> None:
    """Tornado's access log line, but none for /healthz: a cluster logs its Redis state once per change,
    and a probe every second would repeat a 503 line all through an outage."""
    if handler.request.path == "/healthz":
        return
    status = handler.get_status()
    level = access_log.info if status < 400 else access_log.warning if status < 500 else access_log.error
    request = handler.request
    level("%d %s %s (%s) %.2fms", status, request.method, request.uri, request.remote_ip,
          1000.0 * request.request_time())


class ParamPathMatches(Matcher):
    """Matches a parameterized stream path (/v1/marketdata/{symbol}) with a value that no stream serves."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def match(self, request: HTTPServerRequest) -> dict | None:
        return {} if self.hub.path_refusal(request.path) is not None else None


def make_app(hub: Hub, socketio_polling: bool = True, **settings: object) -> Application:
    """The application serving a hub's streams (over WebSocket and Socket.IO), echo, API and demo page.

    ``socketio_polling=False`` serves Socket.IO over WebSocket only (a worker on a shared port).
    ``settings["socket_io"]`` is the Socket.IO gateway, for the shutdown sequence.
    """
    socket_io = SocketIoGateway(hub, polling=socketio_polling)
    connections = Connections(lambda: (hub.server.ping_interval_s, hub.server.ping_timeout_s))
    echo = {"hub": hub, "connections": connections, "endpoint": EchoEndpoint(hub)}
    events = Connections(lambda: (hub.server.sse_heartbeat_s, 0.0))  # event streams: a comment line as heartbeat
    push = {"hub": hub, "connections": connections, "endpoint": PushEndpoint(hub), "events": events,
            "events_endpoint": EventsEndpoint(hub)}
    rules = {"hub": hub, "connections": connections, "endpoint": RulesEndpoint(hub)}
    return Application(
        [
            (r"/healthz", HealthHandler, {"hub": hub}),
            (r"/api/streams", StreamsHandler, {"hub": hub}),
            (r"/api/streams/([^/]+)", StreamHandler, {"hub": hub}),
            (r"/api/streams/([^/]+)/push", PushFrameHandler, {"hub": hub}),
            (r"/api/streams/([^/]+)/pause", PauseHandler, {"hub": hub}),
            (r"/api/streams/([^/]+)/resume", ResumeHandler, {"hub": hub}),
            (r"/api/streams/([^/]+)/seek", SeekHandler, {"hub": hub}),
            (r"/api/streams/([^/]+)/faults", FaultsHandler, {"hub": hub}),
            (r"/api/endpoints", EndpointsHandler, {"hub": hub}),
            (r"/api/.*", ApiNotFoundHandler),
            (r"/socket\.io/", socketio_handler(socket_io)),
            Rule(EchoPathMatches(hub), EchoHandler, echo),
            Rule(StreamPathMatches(hub), PushHandler, push),
            Rule(EndpointPathMatches(hub), RulesHandler, rules),
            Rule(ParamPathMatches(hub), ParamNotFoundHandler, {"hub": hub}),
            Rule(PathMatches(r"/"), DemoHandler),
        ],
        static_path=str(STATIC_PATH),  # also serves /static/...
        static_handler_class=NoCacheStaticFileHandler,
        socket_io=socket_io,
        log_function=log_request,
        **settings,
    )
