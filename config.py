"""The config schema (typed, validated once, immutable) and check_config().

The bottom layer: it imports nothing else of the project. ``check_config``
reads a file and validates it against the schema; the domain
(``streams.build.load_config``) then compiles templates and loads mock files,
and every problem of both steps is reported at once, each as
``config.yaml:14: streams[1].interval_ms: must be an integer >= 1, got -5``.
Units are converted here, once: ``interval_s`` next to ``interval_ms``.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

MiB = 1024 * 1024
RESERVED_PATHS = ("/healthz", "/api", "/static", "/socket.io")

Number = Annotated[float, Field(strict=False)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
StreamName = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
UrlPath = Annotated[StrictStr, Field(pattern=r"^/[^\s?#]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Model):
    """The `server.tls:` block: serve https:// and wss:// with this certificate."""

    cert_file: StrictStr  # PEM, relative to the config file's folder
    key_file: StrictStr


Subprotocols = tuple[Annotated[StrictStr, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")], ...]


class ServerConfig(_Model):
    """The `server:` block: where to listen and the limits every client lives by."""

    host: StrictStr = "127.0.0.1"
    port: Annotated[StrictInt, Field(ge=0, le=65535)] = 3030
    allowed_origins: tuple[StrictStr, ...] = ("*",)
    api_token: StrictStr | None = None
    max_body_bytes: PositiveInt = 1 * MiB
    max_message_bytes: PositiveInt = 1 * MiB
    max_pending_bytes: PositiveInt = 1 * MiB
    slow_clients: Literal["close", "drop"] = "close"
    max_clients: PositiveInt = 10_000
    ping_interval_s: Annotated[Number, Field(ge=0)] = 20.0
    ping_timeout_s: Annotated[Number, Field(ge=0)] = 20.0
    compression: StrictBool = False  # permessage-deflate with clients that offer it
    tls: TlsConfig | None = None
    max_subscriptions_per_client: PositiveInt = 100  # topic subscriptions one connection may hold (rules)
    sse_heartbeat_s: Annotated[Number, Field(ge=0)] = 15.0  # a comment line this often keeps proxies open; 0: off
    workers: Annotated[StrictInt, Field(ge=1, le=256)] | Literal["auto"] = 1  # processes on the port; auto: one per CPU

    def origin_allowed(self, origin: str) -> bool:
        """Whether a browser page at ``origin`` may open a WebSocket here."""
        origin = origin.lower()
        return any(fnmatch.fnmatchcase(origin, allowed.lower()) for allowed in self.allowed_origins)


Rate = Annotated[float, Field(ge=0, le=1, strict=False)]
Millis = Annotated[StrictInt, Field(ge=0, le=60_000)]
UNSENDABLE_CLOSE_CODES = (1005, 1006, 1015)  # RFC 6455 7.4.1: never sent in a close frame


class FaultsConfig(_Model):
    """A stream's `faults:` block; every fault is off unless set (streams.faults does the misbehaving)."""

    disconnect_every_s: Annotated[float, Field(gt=0, strict=False)] | None = None
    disconnect_code: Annotated[StrictInt, Field(ge=1000, le=4999)] | None = None
    latency_ms: tuple[Millis, Millis] | None = None
    drop_rate: Rate = 0.0
    duplicate_rate: Rate = 0.0
    malformed_rate: Rate = 0.0
    reorder: StrictBool = False

    @field_validator("disconnect_code")
    @classmethod
    def _sendable(cls, code: int | None) -> int | None:
        if code in UNSENDABLE_CLOSE_CODES:
            raise PydanticCustomError(
                "close_code", "must not be 1005, 1006 or 1015, which are never sent in a close frame; "
                              "leave disconnect_code out for an abrupt drop, which browsers report as 1006")
        return code

    @field_validator("latency_ms", mode="before")
    @classmethod
    def _min_max(cls, value: Any) -> Any:
        if value is not None and not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise PydanticCustomError("latency_range", "must be [min, max] in milliseconds, e.g. [50, 300]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FaultsConfig:
        if self.latency_ms is not None and self.latency_ms[0] > self.latency_ms[1]:
            raise PydanticCustomError("latency_order", "latency_ms must be [min, max] with min <= max")
        if self.disconnect_code is not None and self.disconnect_every_s is None:
            raise PydanticCustomError("disconnect_code_alone",
                                      "disconnect_code needs disconnect_every_s (when to disconnect)")
        return self

    def enabled(self) -> bool:
        """Whether any fault is switched on."""
        return (self.disconnect_every_s is not None or self.latency_ms is not None or self.reorder
                or self.drop_rate > 0 or self.duplicate_rate > 0 or self.malformed_rate > 0)

    def summary(self) -> str:
        """The faults that are on, for the start-up banner: 'disconnect_every_s 30, drop_rate 0.05'."""
        on = {key: value for key, value in self.model_dump(mode="json").items() if value not in (None, 0, False)}
        return ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                         for key, value in on.items())


class AuthConfig(_Model):
    """An endpoint's `auth:` block: a token the WebSocket handshake must carry, and when it expires."""

    query: StrictStr | None = None  # the query parameter that carries the token, e.g. token (?token=...)
    header: StrictStr | None = None  # or the header, e.g. Authorization
    scheme: StrictStr | None = None  # the header value's prefix, e.g. Bearer ("Authorization: Bearer <token>")
    values: tuple[StrictStr, ...] | None = None  # the accepted tokens; None: any non-empty one
    expires_after_s: Annotated[float, Field(gt=0, strict=False)] | None = None
    expired_code: Annotated[StrictInt, Field(ge=4000, le=4999)] = 4001

    @model_validator(mode="after")
    def _one_carrier(self) -> AuthConfig:
        if (self.query is None) == (self.header is None):
            raise PydanticCustomError("auth_carrier", "set either query (e.g. token) or header (e.g. "
                                                      "Authorization, with scheme: Bearer), not both or neither")
        if self.scheme is not None and self.header is None:
            raise PydanticCustomError("auth_scheme", "scheme goes with header (e.g. header: Authorization)")
        return self

    def token(self, query_argument: str | None, header: str | None) -> str:
        """The token a handshake carries ('' when it carries none)."""
        if self.query is not None:
            return query_argument or ""
        value = (header or "").strip()
        if self.scheme is not None:
            prefix = self.scheme + " "
            return value[len(prefix):].strip() if value.lower().startswith(prefix.lower()) else ""
        return value

    def refusal(self, token: str) -> str | None:
        """Why a token is refused, in a sentence for the client; None when it is accepted."""
        where = (f"the query parameter ?{self.query}=" if self.query is not None else
                 f"the header '{self.header}: {self.scheme + ' ' if self.scheme else ''}<token>'")
        if not token:
            return f"missing token: send it in {where}"
        if self.values is not None and token not in self.values:
            return f"token not accepted: send one of the configured tokens in {where}"
        return None

    def describe(self) -> dict[str, Any]:
        """Where a client puts its token, for the HTTP API (never the accepted tokens)."""
        return {"query": self.query, "header": self.header, "scheme": self.scheme,
                "expires_after_s": self.expires_after_s}


# -- conversations: rules that answer what a client sends (streams.rules does the answering)

ACTIONS = ("reply", "subscribe", "unsubscribe", "snapshot", "delay", "close")
Template = Any  # a text template (a string with {{...}} holes) or a JSON template ($ generators); streams.rules


class MatchConfig(_Model):
    """A rule's `match:` block: every condition given must hold (none given: every message matches)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    text: StrictStr | None = None  # the whole message, exactly
    regex: StrictStr | None = None  # searched in the message text (or in `field`); named groups are captured
    subset: Any = Field(None, alias="json")  # `json:` a mapping the message's JSON must contain (nested)
    field: StrictStr | None = None  # a JSON path (payload.query, params.0) that regex / equals test
    equals: Any = None  # the value at `field` equals this (JSON); `equals: null` tests for null
    binary: StrictBool | None = None  # only binary (true) or only text (false) messages
    event: StrictStr | None = None  # the Socket.IO event name, exactly; WebSocket messages have none

    @model_validator(mode="after")
    def _consistent(self) -> MatchConfig:
        if "equals" in self.model_fields_set and self.field is None:
            raise PydanticCustomError("equals_alone", "equals needs field (the JSON path whose value it tests)")
        return self


class SubscribeConfig(_Model):
    """A `subscribe:` action: the connection receives a stream's frames as a topic, each wrapped in an envelope."""

    stream: StrictStr  # a stream name, or a text template naming one: "{{message.params.0}}"
    id: StrictStr | None = None  # text template of the subscription id; default: the stream's name
    envelope: Template = None  # wraps each frame ({$frame: true} / {{frame}}); default: the frame unchanged
    error: Template = None  # answered when the subscription cannot be made; default {"error": "<why>"}
    if_subscribed: tuple[ActionConfig, ...] | None = None  # instead, when the id is taken; default: replace it


class UnsubscribeConfig(_Model):
    """An `unsubscribe:` action: ends this connection's subscription by id, or every one to a stream."""

    id: StrictStr | None = None  # text template of the subscription id
    stream: StrictStr | None = None  # or every subscription of this connection to that stream

    @model_validator(mode="after")
    def _one(self) -> UnsubscribeConfig:
        if (self.id is None) == (self.stream is None):
            raise PydanticCustomError("unsubscribe_target", "set either id or stream, not both or neither")
        return self


class SnapshotConfig(_Model):
    """A `snapshot:` action: one frame of a stream at once (initial state, then updates)."""

    stream: StrictStr  # a stream name or a text template naming one
    id: StrictStr | None = None  # what {{id}} is in the envelope; default: the stream's name
    envelope: Template = None  # default: the frame unchanged
    error: Template = None  # answered when the stream does not exist; default {"error": "<why>"}


class CloseConfig(_Model):
    """A `close:` action: the server closes the connection with this code and reason."""

    code: Annotated[StrictInt, Field(ge=1000, le=4999)] = 1000
    reason: StrictStr = ""  # a text template; at most 123 bytes once rendered

    @field_validator("code")
    @classmethod
    def _sendable(cls, code: int) -> int:
        if code in UNSENDABLE_CLOSE_CODES or 1016 <= code <= 2999 or code == 1004:
            raise PydanticCustomError("close_code", "must be 1000-1003, 1007-1014 or 3000-4999 "
                                                    "(codes a close frame may carry)")
        return code


class ActionConfig(_Model):
    """One step of a rule: exactly one of the keys below."""

    reply: Template = None  # send a message to this client: a text or JSON template
    subscribe: SubscribeConfig | None = None
    unsubscribe: UnsubscribeConfig | None = None
    snapshot: SnapshotConfig | None = None
    delay: Annotated[StrictInt, Field(ge=0, le=60_000)] | None = None  # ms before the next action
    close: CloseConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_action(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise PydanticCustomError("action_shape", "an action is a mapping with one key: {actions}",
                                      {"actions": ", ".join(ACTIONS)})
        unknown = [key for key in value if key not in ACTIONS]
        if unknown:
            hint = difflib.get_close_matches(str(unknown[0]), ACTIONS, n=1)
            raise PydanticCustomError("unknown_action", "unknown action '{name}'{hint} (actions: {actions})",
                                      {"name": unknown[0], "hint": f"; did you mean {hint[0]!r}?" if hint else "",
                                       "actions": ", ".join(ACTIONS)})
        if len(value) != 1:
            raise PydanticCustomError("action_count", "an action has exactly one key ({actions}), got {keys}; "
                                                      "write each action as its own list item",
                                      {"actions": ", ".join(ACTIONS), "keys": ", ".join(map(str, value)) or "none"})
        return value

    @property
    def kind(self) -> str:
        """Which action this is: 'reply', 'subscribe', ..."""
        return next(iter(self.model_fields_set))


class RuleConfig(_Model):
    """One rule: when a message matches, run the actions in order."""

    match: MatchConfig | None = None  # None: every message (a catch-all)
    do: tuple[ActionConfig, ...] = ()  # nothing: the message is ignored
    example: Any = None  # a message this rule expects, offered by the demo page's send box


class EndpointConfig(_Model):
    """A WebSocket endpoint with no stream of its own: it answers by rules and serves streams as topics."""

    path: UrlPath
    rules: tuple[RuleConfig, ...] = ()
    fallback: tuple[ActionConfig, ...] = ()  # when no rule matches; nothing: the message is ignored
    subprotocols: Subprotocols | None = None
    auth: AuthConfig | None = None


# what socket.io-client keeps for itself: an event of one of these names never reaches the page's listeners
SOCKETIO_RESERVED_EVENTS = ("connect", "connect_error", "disconnect", "disconnecting", "newListener",
                            "removeListener")


class SocketIoConfig(_Model):
    """A stream's `socketio:` block: the Socket.IO namespace it is served in and the event its frames are."""

    event: Annotated[StrictStr, Field(min_length=1, max_length=128)] | None = None  # default: the stream's name
    namespace: UrlPath | None = None  # default: the stream's path

    @field_validator("event")
    @classmethod
    def _not_reserved(cls, event: str | None) -> str | None:
        if event in SOCKETIO_RESERVED_EVENTS:
            raise PydanticCustomError("reserved_event", "is reserved by Socket.IO, so a page could never listen to it; "
                                                        "pick another name (reserved: {names})",
                                      {"names": ", ".join(SOCKETIO_RESERVED_EVENTS)})
        return event


class ParamConfig(_Model):
    """What a `{name}` segment of a stream's path accepts: one of `enum`, else a full match of `pattern`, else
    any non-empty segment."""

    enum: Annotated[tuple[StrictStr, ...], Field(min_length=1)] | None = None
    pattern: StrictStr | None = None  # a Python regular expression the whole segment must match

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as e:
                raise PydanticCustomError("pattern", "is not a regular expression: {why}", {"why": str(e)}) from None
        return pattern

    def refusal(self, name: str, value: str) -> str | None:
        """Why ``value`` is not allowed for parameter ``name``, or None when it is."""
        if self.enum is not None:
            return None if value in self.enum else f"{name} must be one of {', '.join(self.enum)}, got {value!r}"
        if self.pattern is not None:
            return None if re.fullmatch(self.pattern, value) else f"{name} must match {self.pattern}, got {value!r}"
        return None


PATH_PARAM = re.compile(r"^\{([^{}]+)\}$")  # a whole path segment naming a parameter: {symbol}


def path_param_names(path: str | None) -> list[str]:
    """The parameters a path names as whole segments: /v1/marketdata/{symbol} -> ['symbol']."""
    return [m.group(1) for m in map(PATH_PARAM.match, (path or "").split("/")) if m]


def match_path(route: str, path: str, params: Mapping[str, ParamConfig]) -> tuple[dict[str, str] | None, str | None]:
    """Match a request path against a parameterized route: (the values, None) when it is served, (None, why not)
    when it has the route's shape but a value is not allowed, (None, None) when it has another shape."""
    want, got = route.split("/"), path.split("/")
    if len(want) != len(got):
        return None, None
    values, wrong = {}, []
    for pattern, part in zip(want, got, strict=True):
        name = PATH_PARAM.match(pattern)
        if name is None:
            if pattern != part:
                return None, None
            continue
        if not part:
            return None, None
        refusal = params[name.group(1)].refusal(name.group(1), part) if name.group(1) in params else None
        if refusal is not None:
            wrong.append(refusal)
        values[name.group(1)] = part
    return (None, "; ".join(wrong)) if wrong else (values, None)


class StreamConfig(_Model):
    """One pushed stream: where it lives, what it sends and how often."""

    name: StreamName
    path: UrlPath | None = None  # None: reachable only as a topic (subscribe actions) and by the HTTP API
    source: Literal["random", "replay"]
    interval_ms: PositiveInt = 3000
    timeline: Literal["per-client", "shared"] = "per-client"
    send_on_connect: StrictBool = True
    reply: StrictStr | None = None
    template: Any = None
    file: StrictStr | None = None
    loop: StrictBool = True
    timing: Literal["interval", "recorded"] = "interval"
    speed: Annotated[Number, Field(gt=0)] = 1.0
    faults: FaultsConfig | None = None  # off unless set (streams.faults)
    subprotocols: Subprotocols | None = None  # None: accept the first protocol a client offers
    auth: AuthConfig | None = None  # None: anyone may connect
    history: Annotated[StrictInt, Field(ge=0, le=100_000)] = 100  # shared: frames kept for clients that resume
    sse_event: Annotated[StrictStr, Field(pattern=r"^[^\r\n:]+$")] | None = None  # SSE event name; None: message
    sse_retry_ms: Annotated[StrictInt, Field(ge=0)] = 1000  # how soon an EventSource reconnects
    rules: tuple[RuleConfig, ...] = ()  # answers to what clients send (before `reply`)
    fallback: tuple[ActionConfig, ...] = ()  # when no rule matches (`reply` is the one-line form)
    socketio: SocketIoConfig | None = None  # None: the namespace is the path, the event is the name
    faker_locale: StrictStr | None = None  # $faker values' language and country; None: the top-level one
    # the path's parameters, for {$param: name}: a fixed value (symbol: BTCUSD), or for a {name} segment of
    # the path what it accepts (symbol: {pattern: '[A-Z]+-[A-Z]+'}; undeclared: any value)
    params: dict[StrictStr, StrictStr | ParamConfig] = {}

    @model_validator(mode="after")
    def _one_fallback(self) -> StreamConfig:
        if self.reply is not None and self.fallback:
            raise PydanticCustomError("reply_and_fallback", "set reply or fallback, not both: reply is the "
                                                            "one-line fallback (fallback: [{reply: ...}])")
        return self

    @model_validator(mode="after")
    def _no_fixed_namespace_for_values(self) -> StreamConfig:
        if self.parameterized and self.socketio is not None and self.socketio.namespace is not None:
            raise PydanticCustomError("namespace_with_params", "socketio.namespace: a stream whose path has {segment} "
                                      "segments is served over Socket.IO in the namespace of each value's path "
                                      "(like {example}); leave socketio.namespace out",
                                      {"segment": "{name}", "example": "/v1/marketdata/BTC-USD"})
        return self

    @model_validator(mode="after")
    def _params_fit_the_path(self) -> StreamConfig:
        names = path_param_names(self.path)
        for name, param in self.params.items():
            if isinstance(param, ParamConfig) and name not in names:
                raise PydanticCustomError("param_not_in_path", "params.{name}: enum / pattern describe a "
                                          "{segment} segment of the path, and the path has none",
                                          {"name": name, "segment": "{" + name + "}"})
            if isinstance(param, str) and name in names:
                raise PydanticCustomError("param_in_path", "params.{name}: the path has a {segment} segment, so the "
                                          "value comes from each request: give enum: [...] or pattern: ... "
                                          "(or leave it out: any value)", {"name": name, "segment": "{" + name + "}"})
        return self

    @property
    def parameterized(self) -> bool:
        """Whether the path has {name} segments, served for each allowed value (/v1/marketdata/{symbol})."""
        return bool(path_param_names(self.path))

    def match(self, path: str) -> tuple[dict[str, str] | None, str | None]:
        """A parameterized stream's values at a request path, or why it does not serve it (see match_path)."""
        if not self.parameterized:
            return None, None
        specs = {k: v for k, v in self.params.items() if isinstance(v, ParamConfig)}
        return match_path(self.path, path, specs)

    @property
    def socketio_namespace(self) -> str | None:
        """The Socket.IO namespace the stream is served in (None: none, a topic-only stream)."""
        if self.parameterized:
            return self.path  # a namespace per value: /v1/marketdata/BTC-USD (socketio.namespace is refused)
        if self.socketio is not None and self.socketio.namespace is not None:
            return self.socketio.namespace
        return self.path

    @property
    def socketio_event(self) -> str:
        """The Socket.IO event each frame is emitted as."""
        return self.socketio.event if self.socketio is not None and self.socketio.event is not None else self.name

    @property
    def interval_s(self) -> float:
        """``interval_ms`` in seconds (what the clock works in)."""
        return self.interval_ms / 1000

    def reply_to(self, message: str) -> str | None:
        """The text answered to a client's message, or None when the stream does not reply."""
        return None if self.reply is None else self.reply.replace("{message}", message)


class EchoConfig(_Model):
    """The `echo:` block: a WebSocket that sends every message back unchanged."""

    path: UrlPath = "/echo"
    subprotocols: Subprotocols | None = None
    auth: AuthConfig | None = None


class ClusterConfig(_Model):
    """The `cluster:` block: server processes with the same Redis and name form one mock server (streams.cluster)."""

    redis: Annotated[StrictStr, Field(pattern=r"^(redis|rediss|unix)://")]  # e.g. redis://127.0.0.1:6379/0
    name: StreamName = "mockws"  # processes with another name on the same Redis are another cluster


class AsyncApiConfig(_Model):
    """The `asyncapi:` block: serve the WebSocket channels of an AsyncAPI document (streams.asyncapi reads it)."""

    file: StrictStr  # an AsyncAPI 2.x or 3.x document, YAML or JSON, relative to the config file's folder
    interval_ms: PositiveInt = 1000  # a channel's interval unless the channel sets x-interval-ms


class Settings(_Model):
    """A whole config file, validated."""

    server: ServerConfig = ServerConfig()
    streams: tuple[StreamConfig, ...] = ()
    echo: EchoConfig | None = EchoConfig()
    endpoints: tuple[EndpointConfig, ...] = ()
    random_seed: StrictInt | None = None
    faker_locale: StrictStr = "en_US"  # $faker values' language and country (streams.fake checks the name)
    cluster: ClusterConfig | None = None  # None: this process serves alone
    asyncapi: AsyncApiConfig | None = None  # None: no AsyncAPI document


class ConfigError(Exception):
    """Everything wrong with a config file, one line per problem."""

    def __init__(self, problems: list[str], mock_files: list[Path] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.mock_files = mock_files or []  # files it names, found or not: a watcher waits for them


@dataclass
class CheckedConfig:
    """A config file checked against the schema: the settings if they validated, and every problem so far."""

    file: Path
    data: dict[str, Any]  # the file as parsed, for what the schema leaves to the domain (templates, mock files)
    settings: Settings | None
    problems: list[str]
    where: Locator

    def raw_streams(self) -> list[tuple[int, Any]]:
        """Every entry of `streams:` as written, with its index (valid or not)."""
        raw = self.data.get("streams")
        return list(enumerate(raw)) if isinstance(raw, list) else []

    def valid_streams(self) -> list[tuple[int, StreamConfig]]:
        """The streams that validate, with their index, even when the rest of the file does not."""
        if self.settings is not None:
            return list(enumerate(self.settings.streams))
        return _valid_streams(self.data.get("streams"))

    def valid_endpoints(self) -> list[tuple[int, EndpointConfig]]:
        """The endpoints that validate, with their index, even when the rest of the file does not."""
        if self.settings is not None:
            return list(enumerate(self.settings.endpoints))
        valid = []
        raw = self.data.get("endpoints")
        for i, item in enumerate(raw if isinstance(raw, list) else []):
            try:
                valid.append((i, EndpointConfig.model_validate(item)))
            except ValidationError:
                pass  # already reported by the whole-config validation
        return valid


def add_generated(checked: CheckedConfig, streams: list[dict[str, Any]], endpoints: list[dict[str, Any]],
                  origin: str) -> None:
    """Append generated `streams:` and `endpoints:` entries (an AsyncAPI document's) and check them with the rest;
    their problems are reported at ``origin`` (e.g. the asyncapi.file key)."""
    data = dict(checked.data)
    own_streams = list(data.get("streams") or []) if isinstance(data.get("streams"), list) else []
    own_endpoints = list(data.get("endpoints") or []) if isinstance(data.get("endpoints"), list) else []
    data["streams"], data["endpoints"] = own_streams + streams, own_endpoints + endpoints
    checked.data = data
    if checked.settings is None:
        return
    origin_loc = ("asyncapi", "file")
    try:
        checked.settings = Settings.model_validate(data)
    except ValidationError as e:
        checked.problems += [checked.where.say(origin_loc, f"{origin}: generated {format_loc(tuple(err['loc']))}: "
                                                           f"{_describe(err)}") for err in e.errors()]
        checked.settings = None
        return
    before = set(checked.problems)
    found = _check_names_and_paths(checked.valid_streams(), checked.settings.echo.path if checked.settings.echo
                                   else None, [(i, e.path) for i, e in enumerate(checked.settings.endpoints)],
                                   checked.where)
    checked.problems += [checked.where.say(origin_loc, f"{origin}: generated entry: {problem.split(': ', 1)[1]}")
                         for problem in found if problem not in before]


def check_config(path: str | Path) -> CheckedConfig:
    """Read a config file and check it against the schema; raises ConfigError only when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found (pass another one with -c PATH)"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot read the config file: {e}"]) from None
    return check_config_text(text, path)


def check_config_text(text: str, path: Path) -> CheckedConfig:
    """check_config for text read from ``path`` (mock and TLS files are relative to its folder)."""
    node, data = _parse_yaml(text, path)
    where = Locator(path, node)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([where.say((), f"the config must be a mapping of keys (server, streams, ...), "
                                         f"got {type(data).__name__}")])
    problems: list[str] = []
    try:
        settings: Settings | None = Settings.model_validate(data)
    except ValidationError as e:
        problems += [where.say(err["loc"], _describe(err)) for err in e.errors()]
        settings = None
    checked = CheckedConfig(path, data, settings, problems, where)
    echo_path = settings.echo.path if settings and settings.echo else _valid_echo_path(data.get("echo", {}))
    endpoint_paths = ([(i, e.path) for i, e in enumerate(settings.endpoints)] if settings is not None
                      else _valid_endpoint_paths(data.get("endpoints")))
    problems += _check_names_and_paths(checked.valid_streams(), echo_path, endpoint_paths, where)
    if settings is not None and settings.server.workers != 1 and settings.cluster is None:
        problems.append(where.say(("server", "workers"), f"workers: {settings.server.workers} needs a cluster: "
                                  "block (cluster: {redis: redis://127.0.0.1:6379/0}): the workers share timelines "
                                  "and the control API through Redis (apt-get install redis-server starts one)"))
    if settings is not None and settings.server.tls is not None:
        try:
            tls_context(settings.server.tls, path.parent)
        except TlsError as e:
            problems.append(where.say(("server", "tls", e.key), e.message))
    return checked


def _valid_streams(raw: Any) -> list[tuple[int, StreamConfig]]:
    """The streams of an otherwise invalid config that validate on their own, with their index."""
    valid = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            valid.append((i, StreamConfig.model_validate(item)))
        except ValidationError:
            pass  # already reported by the whole-config validation
    return valid


def _valid_endpoint_paths(raw: Any) -> list[tuple[int, str]]:
    """The paths of an otherwise invalid config's endpoints that have a valid one, with their index."""
    paths = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        path = item.get("path") if isinstance(item, dict) else None
        if isinstance(path, str) and path.startswith("/"):
            paths.append((i, path))
    return paths


def _valid_echo_path(raw: Any) -> str | None:
    try:
        return EchoConfig.model_validate(raw).path if raw is not None else None
    except ValidationError:
        return None


class YamlSyntaxError(ValueError):
    """Text that is not one YAML (or JSON) document: ``line`` (1-based) where known, and what is wrong."""

    def __init__(self, line: int | None, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem

    def where(self, path: Path) -> str:
        """``path:line``, or the path alone when no line is known."""
        return f"{path}:{self.line}" if self.line is not None else str(path)


def parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the value of one YAML document; YamlSyntaxError when it does not
    parse (invalid syntax, a character YAML does not allow, two documents, ...)."""
    try:
        loader = yaml.SafeLoader(text)  # it reads the whole text at once: a character YAML refuses fails here
    except yaml.reader.ReaderError as e:
        raise YamlSyntaxError(text.count("\n", 0, e.position) + 1,
                              f"character U+{e.character:04X} is not allowed in YAML (a control character?)") from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or "syntax error"
        if e.context:
            started = f" started at line {e.context_mark.line + 1}" if e.context_mark else ""
            problem += f" ({e.context}{started})"
        raise YamlSyntaxError(mark.line + 1 if mark else None, problem) from None
    except yaml.YAMLError as e:
        raise YamlSyntaxError(None, str(e).replace("\n", " ")) from None
    finally:
        loader.dispose()
    return node, data


def _parse_yaml(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    try:
        return parse_yaml(text)
    except YamlSyntaxError as e:
        raise ConfigError([f"{e.where(path)}: invalid YAML: {e.problem}"]) from None


class Locator:
    """Turns a field path into ``file:line: streams[1].interval_ms`` using the YAML nodes."""

    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path = path
        self.root = root

    def line(self, loc: tuple) -> int | None:
        """The line of the deepest YAML node that ``loc`` reaches."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
                if match is None:
                    break
                line, node = match[0].start_mark.line + 1, match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def say(self, loc: tuple, message: str) -> str:
        """One user-facing problem line."""
        line = self.line(loc)
        field = format_loc(loc)
        return f"{self.path}{f':{line}' if line else ''}: {field + ': ' if field else ''}{message}"


def format_loc(loc: tuple) -> str:
    """('streams', 1, 'interval_ms') -> 'streams[1].interval_ms'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# where each block of the schema lives in a file, to tell a misplaced key where it belongs
_BLOCKS: dict[str, type[BaseModel]] = {"": Settings, "server": ServerConfig, "server.tls": TlsConfig,
                                       "streams[]": StreamConfig, "streams[].faults": FaultsConfig,
                                       "streams[].auth": AuthConfig, "streams[].socketio": SocketIoConfig,
                                       "echo": EchoConfig, "echo.auth": AuthConfig, "asyncapi": AsyncApiConfig,
                                       "endpoints[]": EndpointConfig, "endpoints[].auth": AuthConfig,
                                       "rules[]": RuleConfig, "rules[].match": MatchConfig,
                                       "subscribe": SubscribeConfig, "unsubscribe": UnsubscribeConfig,
                                       "snapshot": SnapshotConfig, "close": CloseConfig,
                                       "cluster": ClusterConfig}


def _block_of(loc: tuple) -> str:
    """The block a field path is in: ('streams', 2, 'faults', 'x') -> 'streams[].faults'; ('endpoints', 0,
    'rules', 1, 'match', 'x') -> 'rules[].match'."""
    names: list[str] = []
    for part in loc[:-1]:
        if isinstance(part, int):
            if names:
                names[-1] += "[]"
        else:
            names.append(str(part))
    # the innermost block the schema knows: rules nest in streams and endpoints, actions in rules
    for start in range(len(names)):
        block = ".".join(names[start:])
        if block in _BLOCKS:
            return block
    return ".".join(name.removesuffix("[]") for name in names)


def _unknown_key(loc: tuple, block: str) -> str:
    """'unknown key', with where the key belongs or which key was meant."""
    key = str(loc[-1])
    here = _BLOCKS.get(block)
    homes = [name for name, model in _BLOCKS.items() if key in model.model_fields and name != block]
    if homes:
        where = " or ".join(f"{home}.{key}" if home else f"{key} (top level)" for home in homes)
        return f"unknown key at this level; it belongs at {where}"
    if here is not None:
        hint = difflib.get_close_matches(key, list(here.model_fields), n=1)
        if hint:
            return f"unknown key; did you mean '{hint[0]}'?"
    for name, model in _BLOCKS.items():
        hint = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.75)
        if hint:
            return f"unknown key; did you mean {name + '.' if name else ''}{hint[0]}?"
    return "unknown key"


def validation_problems(error: ValidationError, prefix: tuple = (), block: str | None = None) -> list[str]:
    """A pydantic error as 'field: message, got value' lines, worded like config file problems.

    ``block`` names where the validated model lives in a config file (e.g. 'streams[].faults')."""
    problems = []
    for err in error.errors():
        field = format_loc(prefix + tuple(err["loc"]))
        problems.append(f"{field}: {_describe(err, block)}" if field else _describe(err, block))
    return problems


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True).strip()
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(err: Mapping[str, Any], block: str | None = None) -> str:
    """A pydantic error, said the way a config file's author thinks about it."""
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        loc = tuple(err["loc"])
        return _unknown_key(loc, _block_of(loc) if block is None else block)
    if kind == "missing":
        return "is required"
    # a float field's bounds are floats (0.0): "must be a number >= 0", even when it was given an int
    bound = next((ctx[k] for k in ("ge", "gt", "le") if k in ctx), None)
    number = "a number" if isinstance(bound, float) or not isinstance(got, int) else "an integer"
    ctx = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ctx.items()}
    messages = {
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "bool_type": "must be true or false",
        "string_type": "must be a string (quote it)",
        "tuple_type": "must be a list",
        "model_type": "must be a mapping of keys",
        "greater_than_equal": f"must be {number} >= {ctx.get('ge')}",
        "greater_than": f"must be {number} > {ctx.get('gt')}",
        "less_than_equal": f"must be {number} <= {ctx.get('le')}",
        "literal_error": f"must be one of {ctx.get('expected')}",
        "string_pattern_mismatch": _pattern_message(err["loc"]),
        "string_too_long": f"must be at most {ctx.get('max_length')} characters",
    }
    message = messages.get(kind) or err["msg"][0].lower() + err["msg"][1:]
    return f"{message}, got {_show(got)}"


def _pattern_message(loc: tuple) -> str:
    if loc and loc[-1] == "redis":
        return "must be a Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS, unix:// for a socket)"
    if loc and loc[-1] == "name":
        return "must be letters, digits, '-', '_' or '.' (it is used in URLs), starting with a letter or digit"
    return "must be a URL path starting with '/', without spaces, '?' or '#'"


class TlsError(Exception):
    """A certificate or key that cannot be used, and which key of `server.tls` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def tls_context(tls: TlsConfig, base: Path) -> ssl.SSLContext:
    """The server's TLS context from `server.tls` (files relative to ``base``); raises TlsError."""
    cert, key = base / tls.cert_file, base / tls.key_file
    for name, file in (("cert_file", cert), ("key_file", key)):
        try:
            file.read_bytes()
        except FileNotFoundError:
            raise TlsError(name, f"file not found: {file} (a PEM file; docs/configuration.md shows how to "
                                 "make a local certificate)") from None
        except OSError as e:
            raise TlsError(name, f"cannot read {file}: {e.strerror}") from None
    block = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                      cert.read_text(encoding="ascii", errors="replace"), re.DOTALL)
    try:
        ssl.PEM_cert_to_DER_cert(block.group(0) if block else "")
    except ValueError:
        raise TlsError("cert_file", f"{cert} is not a PEM certificate (it should start with "
                                    "-----BEGIN CERTIFICATE-----)") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as e:
        # the certificate parsed above, so what is left is the key
        if "KEY_VALUES_MISMATCH" in str(e):
            raise TlsError("key_file", f"{key} is not the key of the certificate {cert}") from None
        raise TlsError("key_file", f"{key} is not an unencrypted PEM private key for {cert} "
                                   f"({e.reason or e})") from None
    return context


def is_reserved(path: str) -> bool:
    """Whether a URL path belongs to the server's own endpoints."""
    return any(path == r or path.startswith(r + "/") for r in RESERVED_PATHS)


def _check_names_and_paths(streams: list[tuple[int, StreamConfig]], echo_path: str | None,
                           endpoints: list[tuple[int, str]], where: Locator) -> list[str]:
    problems: list[str] = []
    names: dict[str, int] = {}
    paths: dict[str, tuple] = {}  # path -> where it is set
    if echo_path is not None:
        paths[echo_path] = ("echo", "path")
    for i, stream in streams:
        if stream.name in names:
            problems.append(where.say(("streams", i, "name"), f"duplicate stream name {stream.name!r} "
                                                             f"(also streams[{names[stream.name]}])"))
        names.setdefault(stream.name, i)
    owners = [(("streams", i, "path"), stream.path) for i, stream in streams if stream.path is not None]
    owners += [(("endpoints", i, "path"), path) for i, path in endpoints]
    for loc, path in owners:
        if path in paths:
            other = paths[path]
            problems.append(where.say(loc, f"duplicate path {path!r} "
                                           f"(also {format_loc(other if other[0] == 'echo' else other[:-1])})"))
        paths.setdefault(path, loc)
    for path, loc in paths.items():
        if is_reserved(path):
            problems.append(where.say(loc, f"{path!r} is reserved for the server itself "
                                           f"({', '.join(RESERVED_PATHS)}); pick another path"))
    return problems + _check_namespaces(streams, where)


def _check_namespaces(streams: list[tuple[int, StreamConfig]], where: Locator) -> list[str]:
    """Each Socket.IO namespace serves one stream (a stream's namespace is its path unless socketio.namespace)."""
    problems: list[str] = []
    owners: dict[str, int] = {}
    for i, stream in streams:
        namespace = stream.socketio_namespace
        if namespace is None:
            continue
        if namespace in owners:
            explicit = stream.socketio is not None and stream.socketio.namespace is not None
            loc = ("streams", i, "socketio", "namespace") if explicit else ("streams", i, "path")
            problems.append(where.say(loc, f"Socket.IO namespace {namespace!r} is also streams[{owners[namespace]}]'s "
                                           "(a stream's namespace is its path); set socketio.namespace on one of them"))
        owners.setdefault(namespace, i)
    return problems
