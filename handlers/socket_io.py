"""Socket.IO on the same port: each stream served in a namespace, its frames emitted as events.

python-socketio speaks the protocol (Engine.IO long-polling and WebSocket,
namespaces, acks, its own ping/pong); this module is the glue between it and
the domain. A client that joins a stream's namespace becomes a
``SocketIoSession``, a client of the stream like a WebSocket connection
(``streams.client.Client``), so the stream's clock, per-client timeline,
pause, push and faults apply unchanged; only the wire differs: frames go out
as events, and what the client emits is answered by the stream's rules.

Namespaces are looked up per connect (python-socketio accepts any with
``namespaces='*'``), so a stream added or removed by a live edit gets or loses
its namespace at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import deque
from typing import Any
from urllib.parse import parse_qs

import socketio
from engineio.exceptions import EngineIOError
from socketio import exceptions as sio_errors
from socketio.packet import BINARY_EVENT, EVENT, Packet
from tornado.web import RequestHandler
from tornado.websocket import WebSocketHandler

from streams.conversation import Conversation
from streams.hub import MAX_PATH_VALUES, Hub
from streams.jsontext import dumps
from streams.rules import Context, MessageTemplate
from streams.sources import Frame
from streams.stream import Stream

log = logging.getLogger("mockws.socketio")

# python-socketio logs each emit at INFO and engine.io each refused poll at WARNING: only real problems here
SOCKETIO_LOG = logging.getLogger("mockws.socketio.server")
SOCKETIO_LOG.setLevel(logging.WARNING)
ENGINEIO_LOG = logging.getLogger("mockws.socketio.engine")
ENGINEIO_LOG.setLevel(logging.ERROR)

# Engine.IO cannot switch its ping off (a client that hears none gives up), so ping_interval_s: 0 means these
DEFAULT_PING_INTERVAL_S = 25.0
DEFAULT_PING_TIMEOUT_S = 20.0
DROP_WAIT_S = 5.0  # how long a dropped connection's close packet may wait for the client to fetch it
SHUTDOWN_DROP_WAIT_S = 0.5  # the same at shutdown, which must be over within 2 s
FRAME_CACHE_SIZE = 256  # frames whose parsed value is kept, so a frame many clients get is parsed once

WANTS_ACK = object()  # the last argument of an event whose sender passed an ack callback (AckAwarePacket)
POLLING_OFF = ("this server runs several worker processes on one port, so Socket.IO is served over WebSocket "
               "only (long-polling needs every request of a session to reach one process): connect with "
               "io(url, {transports: ['websocket']})")
_DISCONNECT = object()  # outbox entries that end the session instead of emitting
_DROP = object()


class AckAwarePacket(Packet):
    """Socket.IO's packet format, telling the event handler whether the client waits for an ack.

    python-socketio sends a handler's return value as the ack when the client
    asked for one, and drops it otherwise, without telling the handler which.
    A rule's first reply must be the ack *instead of* an event, so the handler
    has to know: an event that carries an ack id gets ``WANTS_ACK`` as its last
    argument. A custom packet class is python-socketio's documented way to
    change decoding (the ``serializer`` argument).
    """

    def decode(self, encoded_packet: Any) -> int:
        attachments = super().decode(encoded_packet)
        if self.packet_type in (EVENT, BINARY_EVENT) and self.id is not None and isinstance(self.data, list):
            self.data.append(WANTS_ACK)
        return attachments


class SocketIoSession:
    """One client in one stream's namespace: the stream's frames as events, rule replies as events or an ack.

    Emitting is a coroutine in python-socketio and the stream sends from its
    clock, so what is sent waits in ``outbox`` and one task per busy session
    hands it over in order (a disconnect too, so a replay's last frame goes
    out before the disconnect that ends it).
    """

    kind = "socketio"  # for the API's count of clients by transport

    def __init__(self, gateway: SocketIoGateway, sid: str, namespace: str, stream: Stream) -> None:
        self.gateway = gateway
        self.sid = sid
        self.namespace = namespace
        self.stream = stream
        self.conversation: EventConversation | None = None  # made with the first event, if the stream has rules
        self.is_open = True
        self.gone = False  # python-socketio reported the disconnect
        self.outbox: deque[tuple[Any, Any, int]] = deque()  # (event, value, bytes)
        self.pending_bytes = 0  # in the outbox: python-socketio takes each entry on the loop's next turn
        self.writer: asyncio.Task | None = None
        self.ack: list[Any] | None = None  # while answering an event that wants an ack: its first reply
        self.websocket: WebSocketHandler | None = None  # the connection's WebSocket, when it began as one
        self.expiry: asyncio.TimerHandle | None = None  # an expiring token (auth.expires_after_s) ends it then

    # -- the client interface (streams.client.Client)

    def send(self, frame: Frame, seq: int | None = None) -> bool:
        """Emit a frame as the stream's event (``seq`` is for transports that resume; unused here)."""
        if not self.is_open:
            return False
        self._queue(self.stream.config.socketio_event, self.gateway.frame_value(frame), len(frame.data))
        return True

    def send_message(self, data: bytes, binary: bool = False) -> bool:
        """Emit a message that is not a reply (a topic frame in its envelope) as the event `message`."""
        if not self.is_open:
            return False
        self._queue("message", data if binary else json_or_text(data.decode("utf-8")), len(data))
        return True

    def close(self, code: int, reason: str) -> None:
        """Disconnect the namespace as a server does: the client's reason is 'io server disconnect' (no retry)."""
        if self.is_open:
            self.is_open = False
            self._queue(_DISCONNECT, None, 0)

    def end(self, code: int, reason: str) -> None:
        """The stream has nothing more (a replay finished, the stream was removed): disconnect."""
        self.close(code, reason)

    def expire(self) -> None:
        """The token's time is up (auth.expires_after_s): disconnect, so the client must connect again with a new
        one (Socket.IO's disconnect packet carries no reason: the client sees 'io server disconnect')."""
        self.expiry = None
        log.info("%s: a Socket.IO client's token expired; disconnecting it", self.namespace)
        self.close(4001, "token expired")

    def abort(self) -> None:
        """Drop the Engine.IO connection like a network failure: 'transport close', and the client reconnects."""
        self.is_open = False
        self.outbox.clear()
        self.pending_bytes = 0
        self._queue(_DROP, None, 0)

    # -- what the client emits

    def receive(self, event: str, args: tuple[Any, ...]) -> Any:
        """Answer an event by the stream's rules; returns the ack's argument (None: nothing to acknowledge with)."""
        wants_ack = bool(args) and args[-1] is WANTS_ACK
        if wants_ack:
            args = args[:-1]
        if self.conversation is None:
            path = self.stream.config.path
            if path is None or self.gateway.hub.rules_at(path) is None:
                return None
            self.conversation = EventConversation(self, self.gateway.hub, path, own=self.stream)
        data, binary = message_of(args)
        self.ack = [] if wants_ack else None
        try:
            self.conversation.receive(data, binary, event)
        finally:
            ack, self.ack = self.ack, None
        return ack[0] if ack else None

    def answer(self, event: str, value: Any, size: int) -> bool:
        """A rule's reply to ``event``: the ack's argument if the event wants one not yet given, else an event."""
        if not self.is_open:
            return False
        if self.ack is not None and not self.ack:
            self.ack.append(value)
        else:
            self._queue(event, value, size)
        return True

    def disconnected(self) -> None:
        """python-socketio says the client is gone: leave the stream, end the conversation, uncount."""
        self.gone = True
        self.is_open = False
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        self.outbox.clear()
        self.pending_bytes = 0
        if self.conversation is not None:
            self.conversation.end()  # unsubscribes from the stream too
        else:
            self.stream.unsubscribe(self)
        self.gateway.hub.remove_socket(self)

    # -- handing over to python-socketio, in order

    def _queue(self, event: Any, value: Any, size: int) -> None:
        if self.gone:
            return
        self.outbox.append((event, value, size))
        self.pending_bytes += size
        if self.writer is None:
            self.writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        sio = self.gateway.sio
        try:
            while self.outbox:
                event, value, size = self.outbox.popleft()
                self.pending_bytes -= size
                if event is _DISCONNECT:
                    await sio.disconnect(self.sid, namespace=self.namespace)
                elif event is _DROP:
                    await self.gateway.drop(self)
                else:
                    await sio.emit(event, value, to=self.sid, namespace=self.namespace)
        except (EngineIOError, sio_errors.SocketIOError):
            self.outbox.clear()  # the connection is gone; python-socketio reports the disconnect
            self.pending_bytes = 0
        except Exception:  # a task's error would be logged only when collected; one client's failure stays its own
            log.exception("%s: sending to a Socket.IO client failed; dropping it", self.namespace)
            self.outbox.clear()
            self.pending_bytes = 0
            await self.gateway.drop(self)
        finally:
            self.writer = None


class EventConversation(Conversation):
    """A conversation whose replies are events: the event they answer (or the ack it asked for).

    A text template's reply is a string; a JSON template's is the JSON value.
    """

    __slots__ = ()

    def reply(self, template: MessageTemplate, context: Context) -> None:
        text = self.text(template, context)
        event = context.message.event if context.message is not None else None
        self.client.answer(event or "message", text if template.text else json_or_text(text), len(text))


class SocketIoGateway:
    """The Socket.IO server of a hub: one session per client and namespace, streams looked up per connect.

    ``polling=False`` serves WebSocket only: long-polling needs every request of
    a session to reach this process, which a port shared by several worker
    processes cannot promise (the kernel picks a worker per connection).
    """

    def __init__(self, hub: Hub, polling: bool = True) -> None:
        self.hub = hub
        self.polling = polling
        self.polling_refused = False  # logged once
        server = hub.server
        self.manager = socketio.AsyncManager()
        self.sio = socketio.AsyncServer(
            async_mode="tornado", client_manager=self.manager, namespaces="*", serializer=AckAwarePacket,
            transports=["polling", "websocket"] if polling else ["websocket"],
            cors_allowed_origins=self.origin_allowed, max_http_buffer_size=server.max_message_bytes,
            ping_interval=server.ping_interval_s or DEFAULT_PING_INTERVAL_S,
            ping_timeout=server.ping_timeout_s or DEFAULT_PING_TIMEOUT_S,
            logger=SOCKETIO_LOG, engineio_logger=ENGINEIO_LOG)
        self.sio.on("connect", self.on_connect, namespace="*")
        self.sio.on("disconnect", self.on_disconnect, namespace="*")
        self.sio.on("*", self.on_event, namespace="*")
        self.sessions: dict[str, SocketIoSession] = {}
        self.values: dict[int, tuple[Frame, Any]] = {}  # id(frame) -> (frame, what it is emitted as)
        self.upgraded: dict[str, WebSocketHandler] = {}  # Engine.IO sid -> the WebSocket a polling client moved to

    def origin_allowed(self, origin: str | None, environ: dict[str, Any] | None = None) -> bool:
        """CORS and the WebSocket origin check follow `server.allowed_origins`, patterns included, live.

        python-socketio asks with None for a request without an Origin (a script, not a page): it needs no
        CORS header, and is never refused (python-socketio checks origins only when there is one)."""
        return origin is not None and self.hub.server.origin_allowed(origin)

    # -- python-socketio's handlers (catch-all namespace)

    def on_connect(self, namespace: str, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Join the stream served in the namespace, or refuse with a reason (the client's connect_error)."""
        stream = self.hub.stream_in_namespace(namespace)
        if stream is None:
            if self.hub.path_values_full(namespace):
                raise sio_errors.ConnectionRefusedError(
                    f"no room for another value of {self.hub.stream_at(namespace).config.path}: {MAX_PATH_VALUES} "
                    "path values are served already; try again when clients leave")
            raise sio_errors.ConnectionRefusedError(self.hub.path_refusal(namespace) or (
                f"no stream in the namespace {namespace}; namespaces: {', '.join(self.hub.namespaces()) or 'none'}"))
        refusal = self.auth_refusal(stream, environ, auth)
        if refusal is not None:
            raise sio_errors.ConnectionRefusedError(refusal)
        if self.hub.at_capacity():
            limit, why = self.hub.client_limit()
            raise sio_errors.ConnectionRefusedError(f"server is at its limit of {limit} clients ({why})")
        session = self.sessions[sid] = SocketIoSession(self, sid, namespace, stream)
        # python-engineio's Tornado driver hands the request's handler over in the environ: when the
        # connection began as a WebSocket, that is it (one that moves to WebSocket later is in `upgraded`)
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            session.websocket = environ.get("tornado.handler")
        self.hub.add_socket(session)
        stream.subscribe(session)  # a per-client timeline starts now, the first frame with it
        if stream.config.auth is not None and stream.config.auth.expires_after_s:
            session.expiry = asyncio.get_running_loop().call_later(stream.config.auth.expires_after_s,
                                                                   session.expire)

    def on_disconnect(self, namespace: str, sid: str, reason: str | None = None) -> None:
        """The client left the namespace (or its connection went)."""
        session = self.sessions.pop(sid, None)
        if session is not None:
            session.disconnected()

    def on_event(self, event: str, namespace: str, sid: str, *args: Any) -> Any:
        """Any event a client emits: answered by its stream's rules; the return value is the ack's argument."""
        session = self.sessions.get(sid)
        if session is None:
            return None
        try:
            return session.receive(event, args)
        except Exception:  # one client's failure must not reach python-socketio's task
            log.exception("%s: unexpected error answering a Socket.IO event; dropping the client", namespace)
            session.abort()
            return None

    # -- helpers for the sessions

    def auth_refusal(self, stream: Stream, environ: dict[str, Any], auth: Any) -> str | None:
        """Why a stream's `auth:` refuses this client (None: accepted): a query token may come in the
        Socket.IO auth payload (``io(url, {auth: {token}})``) or the handshake's query string."""
        config = stream.config.auth
        if config is None:
            return None
        query = None
        if config.query is not None:
            sent = auth.get(config.query) if isinstance(auth, dict) else None
            query = sent if isinstance(sent, str) else parse_qs(environ.get("QUERY_STRING", "")).get(
                config.query, [None])[0]
        header = environ.get("HTTP_" + config.header.upper().replace("-", "_")) if config.header else None
        return config.refusal(config.token(query, header))

    def frame_value(self, frame: Frame) -> Any:
        """What a frame is emitted as: a JSON frame's value, text as a string, binary as bytes.

        Parsed once per frame, not once per client: a shared frame, a push or a
        replay entry goes to many clients, and a parsed value is only read.
        """
        cached = self.values.get(id(frame))
        if cached is not None and cached[0] is frame:
            return cached[1]
        if frame.binary:
            value: Any = frame.data
        elif frame.is_json:
            value = json.loads(frame.data)
        else:
            value = frame.data.decode("utf-8")
        if len(self.values) >= FRAME_CACHE_SIZE:
            del self.values[next(iter(self.values))]  # the oldest; holding the frame keeps its id unique
        self.values[id(frame)] = (frame, value)
        return value

    async def drop(self, session: SocketIoSession, wait_s: float = DROP_WAIT_S) -> None:
        """Close a session's Engine.IO connection (every namespace it joined) as a network failure would.

        A WebSocket is closed from here: engine.io-client acts on Engine.IO's
        close packet only on long-polling, and python-socketio closes the
        WebSocket itself only once its queue has stayed empty for a ping
        timeout. A long-polling client gets the close packet with its next
        poll; bounded, as a vanished poller never comes for it.
        """
        eio_sid = self.manager.eio_sid_from_sid(session.sid, session.namespace)
        websocket = session.websocket or (self.upgraded.get(eio_sid) if eio_sid is not None else None)
        if websocket is not None:
            websocket.close()  # python-socketio hears of it and reports the disconnect
        elif eio_sid is not None:
            try:
                await asyncio.wait_for(self.sio.eio.disconnect(eio_sid), wait_s)
            except asyncio.TimeoutError:
                pass  # closed on our side already; only the client's copy of the news is lost

    async def shutdown(self) -> None:
        """Drop every connection (clients retry until a server is back, as after a network loss), then stop
        python-socketio's background task."""
        by_connection: dict[str | None, SocketIoSession] = {}
        for session in list(self.sessions.values()):
            session.is_open = False  # nothing more goes out: the drop is the last word
            by_connection.setdefault(self.manager.eio_sid_from_sid(session.sid, session.namespace), session)
        await asyncio.gather(*(self.drop(session, SHUTDOWN_DROP_WAIT_S) for session in by_connection.values()))
        await self.sio.shutdown()


def socketio_handler(gateway: SocketIoGateway) -> type[RequestHandler]:
    """python-socketio's Tornado handler for ``/socket.io/``, with the `server:` origin list and compression.

    ``check_origin`` and ``get_compression_options`` are Tornado's documented
    hooks; python-socketio's own check cannot take a pattern list.
    """
    base: type[RequestHandler] = socketio.get_tornado_handler(gateway.sio)

    class SocketIoHandler(base):
        async def get(self, *args: Any, **kwargs: Any) -> None:
            if not gateway.polling and self.request.headers.get("Upgrade", "").lower() != "websocket":
                # a client that starts with long-polling, as socket.io-client does by default
                origin = self.request.headers.get("Origin")
                if gateway.origin_allowed(origin):  # so the page's script can read why
                    self.set_header("Access-Control-Allow-Origin", origin)
                if not gateway.polling_refused:
                    gateway.polling_refused = True
                    log.warning("a Socket.IO client asked for long-polling: %s", POLLING_OFF)
                self.set_status(400)
                self.finish({"error": POLLING_OFF})
                return
            await super().get(*args, **kwargs)

        def check_origin(self, origin: str) -> bool:
            return gateway.origin_allowed(origin)

        def get_compression_options(self) -> dict[str, Any] | None:
            return {} if gateway.hub.server.compression else None

        async def open(self, *args: Any, **kwargs: Any) -> None:
            sid = self.get_query_argument("sid", None)
            if sid is not None:  # a long-polling connection moving to WebSocket
                gateway.upgraded[sid] = self
            await super().open(*args, **kwargs)

        def on_close(self) -> None:
            sid = self.get_query_argument("sid", None)
            if sid is not None and gateway.upgraded.get(sid) is self:
                del gateway.upgraded[sid]
            super().on_close()

    return SocketIoHandler


def message_of(args: tuple[Any, ...]) -> tuple[bytes, bool]:
    """An event's arguments as a message for the rules: a string as its text, bytes as a binary message,
    anything else (several arguments: a JSON array of them) as JSON text; no argument as empty text."""
    if not args:
        return b"", False
    if len(args) == 1 and isinstance(args[0], str):
        return args[0].encode("utf-8"), False
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0]), True
    return dumps(_base64_bytes(args[0] if len(args) == 1 else list(args))).encode("utf-8"), False


def _base64_bytes(value: Any) -> Any:
    """A decoded event argument with its binary parts as base64 strings, so it can be JSON text."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [_base64_bytes(v) for v in value]
    if isinstance(value, dict):
        return {k: _base64_bytes(v) for k, v in value.items()}
    return value


def json_or_text(text: str) -> Any:
    """Text as an event argument: its JSON value when it is JSON, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text
