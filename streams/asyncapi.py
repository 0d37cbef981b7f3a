"""AsyncAPI 2.x and 3.x documents as mocks: each WebSocket channel becomes config streams and rules.

    translation = translate_document(Path("asyncapi.yaml"), interval_ms=1000)
    translation.streams, translation.endpoints    # entries of `streams:` / `endpoints:`, as a config file holds them

The document is translated into the project's own config model, so everything
a hand-written stream has (SSE, Socket.IO, faults, the control API, live
reload, the demo page) works on AsyncAPI channels unchanged, and
``server.py import`` can write the translation as YAML for the user to edit:

- a channel the server sends on is a random stream at its address; its frames
  are the messages' ``examples`` in order, or an instance of their ``payload``
  schema (``$schema``), the messages taking turns (``$cycle``; ``x-weight``
  repeats a message);
- a path parameter becomes a ``{name}`` segment of the stream's path, served
  for each value its ``enum`` (else ``pattern``) allows, or any value without
  either; other values get a 404 naming the allowed ones;
- a message the client sends with a ``reply`` (3.x) or ``x-reply`` (2.x)
  becomes a rule matching its ``const``/``enum`` fields;
- channels on other protocols (kafka, mqtt, ...) are listed and skipped.

Every problem names the document, the line and the JSON pointer. Pure: no Tornado.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any
from urllib.parse import unquote, urlsplit

from config import Locator, YamlSyntaxError, parse_yaml
from streams.schema import SchemaError, compile_schema

WEBSOCKET_PROTOCOLS = ("ws", "wss")
DEFAULT_INTERVAL_MS = 1000
Pointer = tuple  # a JSON pointer as its parts: ("channels", "quotes", "messages", 0)


class AsyncApiError(ValueError):
    """Everything wrong with a document, one `file:line: #/pointer: message` line per problem."""

    def __init__(self, problems: list[str], files: frozenset[Path]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.files = files  # the documents read, found or not: a watcher waits for them


@dataclass
class Translation:
    """A document as config entries: streams, endpoints, and the channels it skipped (one line each)."""

    streams: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)


class _DocumentError(Exception):
    def __init__(self, where: Where, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


@dataclass
class Where:
    """A place in a document: which file, which pointer."""

    doc: _Document
    pointer: Pointer

    def __truediv__(self, part: str | int) -> Where:
        return Where(self.doc, self.pointer + (part,))

    def say(self, message: str) -> str:
        line = self.doc.locator.line(self.pointer) if self.doc.locator is not None else None
        return f"{self.doc.path}{f':{line}' if line else ''}: {pointer_text(self.pointer)}: {message}"


def pointer_text(pointer: Pointer) -> str:
    """('channels', 'a/b', 0) -> '#/channels/a~1b/0'."""
    return "#" + "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in pointer)


class _Document:
    def __init__(self, path: Path, data: Any, locator: Locator | None) -> None:
        self.path = path
        self.data = data
        self.locator = locator


class _Reader:
    """Reads documents and follows `$ref`s, within a file and to neighbouring files."""

    def __init__(self, files: set[Path]) -> None:
        self.docs: dict[Path, _Document] = {}
        self.files = files

    def load(self, path: Path, referrer: Where | None = None) -> _Document:
        path = path.resolve() if referrer is not None else path
        doc = self.docs.get(path)
        if doc is not None:
            return doc
        self.files.add(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            message = "file not found" if isinstance(e, FileNotFoundError) else f"cannot read: {e}"
            if referrer is not None:
                raise _DocumentError(referrer, f"$ref to {path.name}: {message}") from None
            raise AsyncApiError([f"{path}: {message}"], frozenset(self.files)) from None
        try:
            node, data = parse_yaml(text)
        except YamlSyntaxError as e:
            raise AsyncApiError([f"{e.where(path)}: invalid YAML or JSON: {e.problem}"],
                                frozenset(self.files)) from None
        doc = self.docs[path] = _Document(path, data, Locator(path, node))
        return doc

    def at(self, where: Where) -> Any:
        """The value at a place (already known to exist)."""
        value = where.doc.data
        for part in where.pointer:
            value = value[part]
        return value

    def follow(self, value: Any, where: Where) -> tuple[Any, Where]:
        """``value`` with its `$ref` chain followed: the value referred to and where it is."""
        seen: set[tuple[Path, Pointer]] = set()
        while isinstance(value, dict) and isinstance(value.get("$ref"), str):
            ref = value["$ref"]
            target = self._target(ref, where / "$ref")
            if (target.doc.path, target.pointer) in seen:
                raise _DocumentError(where, f"$ref {ref!r} refers to itself")
            seen.add((target.doc.path, target.pointer))
            value, where = self._get(target, ref, where / "$ref")
        return value, where

    def inline(self, value: Any, where: Where, stack: tuple = ()) -> Any:
        """``value`` with every `$ref` in it replaced by what it refers to (a schema or an example, whole)."""
        value, where = self.follow(value, where)
        key = (where.doc.path, where.pointer)
        if key in stack:
            raise _DocumentError(where, "a recursive schema ($ref to an enclosing schema) cannot be inlined; "
                                  "the mock supports schemas without cycles")
        if isinstance(value, dict):
            return {k: self.inline(v, where / k, stack + (key,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.inline(v, where / i, stack + (key,)) for i, v in enumerate(value)]
        return value

    def _target(self, ref: str, at: Where) -> Where:
        file, _, fragment = ref.partition("#")
        doc = at.doc if not file else self.load(at.doc.path.parent / unquote(file), at)
        if fragment and not fragment.startswith("/"):
            raise _DocumentError(at, f"$ref {ref!r}: the part after # must be a JSON pointer (#/components/...)")
        parts = [unquote(p).replace("~1", "/").replace("~0", "~") for p in fragment.split("/")[1:]]
        return Where(doc, tuple(parts))

    def _get(self, target: Where, ref: str, at: Where) -> tuple[Any, Where]:
        value, pointer = target.doc.data, []
        for part in target.pointer:
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
                pointer.append(int(part))
            elif isinstance(value, dict) and part in value:
                value = value[part]
                pointer.append(part)
            else:
                raise _DocumentError(at, f"$ref {ref!r} cannot be resolved: "
                                         f"{pointer_text(tuple(pointer))} has no {part!r}")
        return value, Where(target.doc, tuple(pointer))  # list indexes as ints, for line numbers


def translate_document(path: Path, interval_ms: int = DEFAULT_INTERVAL_MS) -> Translation:
    """The config entries that serve a document's WebSocket channels; raises AsyncApiError listing every problem."""
    translation = Translation()
    reader = _Reader(translation.files)
    doc = reader.load(path)
    root = Where(doc, ())
    if not isinstance(doc.data, dict):
        raise AsyncApiError([root.say("an AsyncAPI document is a mapping with asyncapi, info and channels")],
                            frozenset(translation.files))
    version = str(doc.data.get("asyncapi", ""))
    problems: list[str] = []
    if not re.match(r"^[23]\.\d+", version):
        raise AsyncApiError([(root / "asyncapi").say(
            f"must be the AsyncAPI version, 2.x or 3.x (e.g. asyncapi: 3.0.0), got {doc.data.get('asyncapi')!r}"
            if "asyncapi" in doc.data else "is required: the AsyncAPI version, 2.x or 3.x (e.g. asyncapi: 3.0.0)")],
            frozenset(translation.files))
    try:
        channels = _channels_v3(reader, root) if version.startswith("3") else _channels_v2(reader, root)
    except _DocumentError as e:
        raise AsyncApiError([e.where.say(e.message)], frozenset(translation.files)) from None
    for channel in channels:
        try:
            _translate_channel(reader, channel, interval_ms, translation)
        except _DocumentError as e:
            problems.append(e.where.say(e.message))
    if problems:
        raise AsyncApiError(problems, frozenset(translation.files))
    return translation


@dataclass
class _Channel:
    """One channel, whatever the version: where it is, what the server sends, what the client sends."""

    where: Where
    address: str | None
    value: dict[str, Any]
    protocols: list[str]
    prefix: str  # the server's path (a 2.x url's, a 3.x pathname)
    sends: list[tuple[Any, Where]] = field(default_factory=list)  # messages the server sends
    requests: list[tuple[Any, Where, list[tuple[Any, Where]]]] = field(default_factory=list)  # message, replies


def _servers(reader: _Reader, root: Where) -> dict[str, tuple[str, str]]:
    """Each server by name: its protocol and its path prefix."""
    servers, raw = {}, root.doc.data.get("servers") or {}
    for name, server in (raw.items() if isinstance(raw, dict) else []):
        server, _ = reader.follow(server, root / "servers" / name)
        if not isinstance(server, dict):
            continue
        protocol = str(server.get("protocol", "")).lower()
        if "pathname" in server:  # 3.x: host + pathname
            prefix = str(server.get("pathname") or "")
        else:  # 2.x: a url, maybe with a path
            prefix = urlsplit(str(server.get("url", "")) if "://" in str(server.get("url", ""))
                              else "ws://" + str(server.get("url", ""))).path
        servers[name] = (protocol, prefix.rstrip("/"))
    return servers


def _channel_servers(reader: _Reader, channel: dict, where: Where, servers: dict) -> list[tuple[str, str]]:
    names = []
    for i, item in enumerate(channel.get("servers") or []):
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and isinstance(item.get("$ref"), str):
            names.append(item["$ref"].rsplit("/", 1)[-1])
        else:
            raise _DocumentError(where / "servers" / i, "must name a server (2.x) or $ref one (3.x)")
    return [servers[n] for n in names if n in servers] if names else list(servers.values())


def _messages(reader: _Reader, value: Any, where: Where) -> list[tuple[Any, Where]]:
    """A 2.x operation's message (one, or `oneOf` several) or a 3.x list or map of messages, refs followed."""
    value, where = reader.follow(value, where)
    if isinstance(value, dict) and "oneOf" in value and "payload" not in value:
        return [m for i, item in enumerate(value["oneOf"]) for m in _messages(reader, item, where / "oneOf" / i)]
    if isinstance(value, list):
        return [m for i, item in enumerate(value) for m in _messages(reader, item, where / i)]
    if not isinstance(value, dict):
        raise _DocumentError(where, "must be a message (a mapping with payload or examples)")
    return [(value, where)]


def _channels_v2(reader: _Reader, root: Where) -> list[_Channel]:
    servers, channels = _servers(reader, root), []
    raw = root.doc.data.get("channels")
    if not isinstance(raw, dict):
        raise AsyncApiError([(root / "channels").say("is required: a mapping of channel addresses")],
                            frozenset(reader.files))
    for address, channel in raw.items():
        where = root / "channels" / address
        channel, where = reader.follow(channel, where)
        used = _channel_servers(reader, channel, where, servers)
        item = _Channel(where, address, channel, [p for p, _ in used], next((x for p, x in used if p in
                                                                             WEBSOCKET_PROTOCOLS), ""))
        if isinstance(channel.get("subscribe"), dict) and "message" in channel["subscribe"]:
            item.sends = _messages(reader, channel["subscribe"]["message"], where / "subscribe" / "message")
        publish = channel.get("publish")
        if isinstance(publish, dict) and "message" in publish and isinstance(publish.get("x-reply"), dict):
            reply, at = publish["x-reply"], where / "publish" / "x-reply"
            replies = (_messages(reader, reply["message"], at / "message") if "message" in reply
                       else _messages(reader, reply, at))
            for message in _messages(reader, publish["message"], where / "publish" / "message"):
                item.requests.append((*message, replies))
        channels.append(item)
    return channels


def _channels_v3(reader: _Reader, root: Where) -> list[_Channel]:
    servers, by_pointer = _servers(reader, root), {}
    raw = root.doc.data.get("channels") or {}
    if not isinstance(raw, dict):
        raise AsyncApiError([(root / "channels").say("must be a mapping of channels")], frozenset(reader.files))
    for key, channel in raw.items():
        where = root / "channels" / key
        channel, where = reader.follow(channel, where)
        if not isinstance(channel, dict):
            raise AsyncApiError([where.say("must be a channel (a mapping with address and messages)")],
                                frozenset(reader.files))
        used = _channel_servers(reader, channel, where, servers)
        by_pointer[(where.doc.path, where.pointer)] = _Channel(
            where, channel.get("address", key), channel, [p for p, _ in used],
            next((x for p, x in used if p in WEBSOCKET_PROTOCOLS), ""))
    operations = root.doc.data.get("operations") or {}
    for op_id, operation in (operations.items() if isinstance(operations, dict) else []):
        where = root / "operations" / op_id
        operation, where = reader.follow(operation, where)
        channel_ref = operation.get("channel") if isinstance(operation, dict) else None
        if not isinstance(channel_ref, dict) or "$ref" not in channel_ref:
            raise AsyncApiError([(where / "channel").say("is required: {$ref: '#/channels/<id>'}")],
                                frozenset(reader.files))
        _, channel_where = reader.follow(channel_ref, where / "channel")
        channel = by_pointer.get((channel_where.doc.path, channel_where.pointer))
        if channel is None:
            raise AsyncApiError([(where / "channel").say("must refer to a channel under #/channels")],
                                frozenset(reader.files))
        if operation.get("messages"):
            messages = _messages(reader, operation["messages"], where / "messages")
        else:  # every message of the channel
            messages = [_messages(reader, m, channel.where / "messages" / k)[0]
                        for k, m in (channel.value.get("messages") or {}).items()]
        action = operation.get("action")
        if action == "send":
            channel.sends += messages
        elif action == "receive":
            reply = operation.get("reply")
            if isinstance(reply, dict):
                reply, reply_where = reader.follow(reply, where / "reply")
                replies = (_messages(reader, reply["messages"], reply_where / "messages") if reply.get("messages")
                           else _reply_channel_messages(reader, reply, reply_where))
                channel.requests += [(*message, replies) for message in messages]
        else:
            raise AsyncApiError([(where / "action").say(f"must be send or receive, got {action!r}")],
                                frozenset(reader.files))
    return list(by_pointer.values())


def _reply_channel_messages(reader: _Reader, reply: dict, where: Where) -> list[tuple[Any, Where]]:
    channel, channel_where = reader.follow(reply.get("channel"), where / "channel")
    if not isinstance(channel, dict) or not channel.get("messages"):
        raise _DocumentError(where, "a reply needs messages, or a channel with messages")
    return [_messages(reader, m, channel_where / "messages" / k)[0] for k, m in channel["messages"].items()]


def _translate_channel(reader: _Reader, channel: _Channel, interval_ms: int, out: Translation) -> None:
    if channel.address is None:
        out.skipped.append(f"{pointer_text(channel.where.pointer)}: no address (a dynamic channel), skipped")
        return
    if channel.protocols and not set(channel.protocols) & set(WEBSOCKET_PROTOCOLS):
        out.skipped.append(f"{channel.address} ({', '.join(sorted(set(channel.protocols)))}): "
                           "not a WebSocket server, skipped")
        return
    if not channel.sends and not any(replies for _, _, replies in channel.requests):
        out.skipped.append(f"{channel.address}: the server sends nothing and answers nothing, skipped")
        return
    interval = channel.value.get("x-interval-ms", interval_ms)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise _DocumentError(channel.where / "x-interval-ms",
                             f"must be an integer >= 1 (milliseconds), got {interval!r}")
    template = _turns(reader, channel.sends) if channel.sends else None
    rules = [_rule(reader, message, where, replies) for message, where, replies in channel.requests if replies]
    path = "/" + "/".join(p for p in (channel.prefix.strip("/"), channel.address.strip("/")) if p)
    params = _params(reader, channel)
    if template is not None:
        stream: dict[str, Any] = {"name": _name(path), "path": path, "source": "random", "interval_ms": interval,
                                  "template": template}
        if params:
            stream["params"] = params
        if rules:
            stream["rules"] = rules
        out.streams.append(stream)
    else:
        out.endpoints.append({"path": path, "rules": rules})


def _params(reader: _Reader, channel: _Channel) -> dict[str, dict[str, Any]]:
    """What each parameter of the address accepts: its `enum`, else its `pattern`, else any value (a stream's
    `params`; the values are matched per request)."""
    params: dict[str, dict[str, Any]] = {}
    declared = channel.value.get("parameters") or {}
    for name in re.findall(r"\{([^{}]+)\}", channel.address or ""):
        where = channel.where / "parameters" / name
        param, where = reader.follow(declared.get(name, {}), where)  # undeclared: any value
        param = param if isinstance(param, dict) else {}
        schema, schema_where = reader.follow(param.get("schema", {}), where / "schema")  # 2.x: a schema
        schema = schema if isinstance(schema, dict) else {}
        values = param.get("enum") or schema.get("enum")
        pattern = param.get("pattern") or schema.get("pattern")
        if isinstance(values, list) and values:
            params[name] = {"enum": [str(v) for v in values]}
        elif isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as e:
                at = where / "pattern" if "pattern" in param else schema_where / "pattern"
                raise _DocumentError(at, f"is not a regular expression the mock can use: {e}") from None
            params[name] = {"pattern": pattern}
        else:
            params[name] = {}  # any non-empty value
    return params


def _name(path: str) -> str:
    """A stream name from its path: /v1/marketdata/BTC-USD -> v1-marketdata-BTC-USD."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path).strip("-.") or "root"
    return name[:64]


def _turns(reader: _Reader, messages: list[tuple[Any, Where]]) -> Any:
    """A template whose frames are the messages in turn (x-weight repeats one), each its examples or its schema."""
    options = []
    for message, where in messages:
        weight = message.get("x-weight", 1)
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise _DocumentError(where / "x-weight", f"must be an integer >= 1 (turns per round), got {weight!r}")
        options += [_message_template(reader, message, where)] * weight
    return options[0] if len(options) == 1 else {"$cycle": options}


def _message_template(reader: _Reader, message: dict, where: Where) -> Any:
    examples = [(e, where / "examples" / i) for i, e in enumerate(message.get("examples") or [])
                if isinstance(e, dict) and "payload" in e]
    if examples:
        payloads = [{"$literal": reader.inline(e["payload"], w / "payload")} for e, w in examples]
        return payloads[0] if len(payloads) == 1 else {"$cycle": payloads}
    if "payload" not in message:
        raise _DocumentError(where, "a message needs a payload schema or examples with a payload")
    return {"$schema": _schema(reader, message, where)}


def _schema(reader: _Reader, message: dict, where: Where) -> Any:
    payload, payload_where = message["payload"], where / "payload"
    schema_format = message.get("schemaFormat")
    if isinstance(payload, dict) and "schemaFormat" in payload and "schema" in payload:  # 3.x multi-format
        schema_format, payload, payload_where = payload["schemaFormat"], payload["schema"], payload_where / "schema"
    if schema_format is not None and not re.match(r"application/(vnd\.aai\.asyncapi|schema)", str(schema_format)):
        raise _DocumentError(where, f"schemaFormat {schema_format!r} is not supported (AsyncAPI or JSON Schema only)")
    schema = reader.inline(payload, payload_where)
    try:
        compile_schema(schema)
    except SchemaError as e:
        raise _DocumentError(Where(payload_where.doc, payload_where.pointer + tuple(e.pointer)), e.message) from None
    return schema


def _rule(reader: _Reader, message: dict, where: Where, replies: list[tuple[Any, Where]]) -> dict[str, Any]:
    """A rule answering ``message`` with the replies: it matches the message's const / enum fields."""
    payload, _ = reader.follow(message.get("payload", {}), where / "payload")
    if isinstance(payload, dict) and "schemaFormat" in payload and "schema" in payload:
        payload, _ = reader.follow(payload["schema"], where / "payload" / "schema")
    fields: dict[str, Any] = {}
    properties = payload.get("properties") if isinstance(payload, dict) else None
    for key, prop in (properties.items() if isinstance(properties, dict) else []):
        prop, _ = reader.follow(prop, where / "payload" / "properties" / key)
        if isinstance(prop, dict) and "const" in prop:
            fields[key] = prop["const"]
        elif isinstance(prop, dict) and isinstance(prop.get("enum"), list) and len(prop["enum"]) == 1:
            fields[key] = prop["enum"][0]
    rule: dict[str, Any] = {"match": {"json": fields}} if fields else {}
    rule["do"] = [{"reply": _turns(reader, replies)}]
    example = next((e["payload"] for e in message.get("examples") or [] if isinstance(e, dict) and "payload" in e),
                   None)
    if example is None and "payload" in message:  # a valid message for the demo page's send box, the same every time
        example = compile_schema(_schema(reader, message, where)).generate(Random(0))
    if example is not None:
        rule["example"] = example
    return rule
