"""The config schema (typed, validated once, immutable) and load_config().

Every problem in a config file is reported at once, each as
``config.yaml:14: streams[1].interval_ms: must be an integer >= 1, got -5``.
"""

from __future__ import annotations

import difflib
import fnmatch
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from streams.faults import FaultsConfig
from streams.sources import MockFileError, RandomSource, ReplaySource, load_replay_file
from streams.template import TemplateError, compile_template

MiB = 1024 * 1024
RESERVED_PATHS = ("/healthz", "/api", "/static")

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

    def origin_allowed(self, origin: str) -> bool:
        """Whether a browser page at ``origin`` may open a WebSocket here."""
        origin = origin.lower()
        return any(fnmatch.fnmatchcase(origin, allowed.lower()) for allowed in self.allowed_origins)


class StreamConfig(_Model):
    """One pushed stream: where it lives, what it sends and how often."""

    name: StreamName
    path: UrlPath
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

    def reply_to(self, message: str) -> str | None:
        """The text answered to a client's message, or None when the stream does not reply."""
        return None if self.reply is None else self.reply.replace("{message}", message)


class EchoConfig(_Model):
    """The `echo:` block: a WebSocket that sends every message back unchanged."""

    path: UrlPath = "/echo"
    subprotocols: Subprotocols | None = None


class Settings(_Model):
    """A whole config file, validated."""

    server: ServerConfig = ServerConfig()
    streams: tuple[StreamConfig, ...] = ()
    echo: EchoConfig | None = EchoConfig()
    random_seed: StrictInt | None = None


Source = RandomSource | ReplaySource


@dataclass(frozen=True)
class AppConfig:
    """A config file, validated, with every stream's frame source built from it."""

    file: Path
    settings: Settings
    sources: Mapping[str, Source]  # by stream name
    mock_files: Mapping[str, Path]  # by stream name, replay streams only

    @property
    def streams(self) -> tuple[StreamConfig, ...]:
        """The configured streams, in file order."""
        return self.settings.streams


class ConfigError(Exception):
    """Everything wrong with a config file, one line per problem."""

    def __init__(self, problems: list[str], mock_files: list[Path] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.mock_files = mock_files or []  # files it names, found or not: a watcher waits for them


def load_config(path: str | Path) -> AppConfig:
    """Read, validate and build a config file, or raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found (pass another one with -c PATH)"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot read the config file: {e}"]) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> AppConfig:
    """Validate config text read from ``path`` (mock files are relative to its folder)."""
    node, data = _parse_yaml(text, path)
    where = _Locator(path, node)
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
    # check and build what did validate, so mock-file problems show up with the rest
    streams = list(enumerate(settings.streams)) if settings else _valid_streams(data.get("streams"))
    echo_path = settings.echo.path if settings and settings.echo else _valid_echo_path(data.get("echo", {}))
    problems += _check_names_and_paths(streams, echo_path, where)
    if settings is not None and settings.server.tls is not None:
        try:
            tls_context(settings.server.tls, path.parent)
        except TlsError as e:
            problems.append(where.say(("server", "tls", e.key), e.message))
    sources, mock_files = _build_sources(streams, path.parent, where, problems)
    if problems or settings is None:
        raise ConfigError(problems, list(mock_files.values()))
    return AppConfig(path, settings, sources, mock_files)


def _valid_streams(raw: Any) -> list[tuple[int, StreamConfig]]:
    """The streams of an otherwise invalid config that validate on their own, with their index."""
    valid = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            valid.append((i, StreamConfig.model_validate(item)))
        except ValidationError:
            pass  # already reported by the whole-config validation
    return valid


def _valid_echo_path(raw: Any) -> str | None:
    try:
        return EchoConfig.model_validate(raw).path if raw is not None else None
    except ValidationError:
        return None


def _parse_yaml(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = e.problem or "syntax error"
        if e.context:
            started = f" started at line {e.context_mark.line + 1}" if e.context_mark else ""
            problem += f" ({e.context}{started})"
        raise ConfigError([f"{path}{line}: invalid YAML: {problem}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: invalid YAML: {e}"]) from None
    finally:
        loader.dispose()
    return node, data


class _Locator:
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


_KNOWN_KEYS = sorted({name for model in (Settings, ServerConfig, TlsConfig, StreamConfig, EchoConfig, FaultsConfig)
                      for name in model.model_fields})


def validation_problems(error: ValidationError, prefix: tuple = ()) -> list[str]:
    """A pydantic error as 'field: message, got value' lines, worded like config file problems."""
    problems = []
    for err in error.errors():
        field = format_loc(prefix + tuple(err["loc"]))
        problems.append(f"{field}: {_describe(err)}" if field else _describe(err))
    return problems


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True).strip()
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(err: Mapping[str, Any]) -> str:
    """A pydantic error, said the way a config file's author thinks about it."""
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(str(err["loc"][-1]), _KNOWN_KEYS, n=1)
        return "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else "")
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
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e) or e.reason == "KEY_VALUES_MISMATCH":
            raise TlsError("key_file", f"{key} is not the key of the certificate {cert}") from None
        if "PEM" in str(e) and "key" not in str(e).lower():
            raise TlsError("cert_file", f"{cert} is not a PEM certificate ({e.reason})") from None
        raise TlsError("key_file", f"cannot use {cert} with {key}: {e.reason or e} "
                                   "(both must be PEM: the certificate and its unencrypted private key)") from None
    return context


def is_reserved(path: str) -> bool:
    """Whether a URL path belongs to the server's own endpoints."""
    return any(path == r or path.startswith(r + "/") for r in RESERVED_PATHS)


def _check_names_and_paths(streams: list[tuple[int, StreamConfig]], echo_path: str | None,
                           where: _Locator) -> list[str]:
    problems: list[str] = []
    names: dict[str, int] = {}
    paths: dict[str, str] = {}
    if echo_path is not None:
        paths[echo_path] = "echo.path"
    for i, stream in streams:
        if stream.name in names:
            problems.append(where.say(("streams", i, "name"), f"duplicate stream name {stream.name!r} "
                                                             f"(also streams[{names[stream.name]}])"))
        names.setdefault(stream.name, i)
        if stream.path in paths:
            problems.append(where.say(("streams", i, "path"), f"duplicate path {stream.path!r} "
                                                             f"(also {paths[stream.path]})"))
        paths.setdefault(stream.path, f"streams[{i}]")
    for path, owner in paths.items():
        if is_reserved(path):
            loc = ("echo", "path") if owner == "echo.path" else ("streams", int(owner[8:-1]), "path")
            problems.append(where.say(loc, f"{path!r} is reserved for the server itself "
                                           f"({', '.join(RESERVED_PATHS)}); pick another path"))
    return problems


def _build_sources(streams: list[tuple[int, StreamConfig]], base: Path, where: _Locator,
                   problems: list[str]) -> tuple[dict[str, Source], dict[str, Path]]:
    """Compile every template and load every mock file, recording problems as they come."""
    sources: dict[str, Source] = {}
    files: dict[str, Path] = {}
    for i, stream in streams:
        loc = ("streams", i)
        if stream.timing == "recorded" and stream.source != "replay":
            problems.append(where.say(loc + ("timing",), "'recorded' timing needs source: replay"))
        if stream.source == "random":
            if stream.template is None:
                problems.append(where.say(loc + ("template",), "is required when source is random "
                                                               "(a mapping whose leaves may be generators)"))
                continue
            try:
                sources[stream.name] = RandomSource(compile_template(stream.template))
            except TemplateError as e:
                problems.append(where.say(loc + ("template",) + e.path, e.message))
        else:
            if stream.file is None:
                problems.append(where.say(loc + ("file",), "is required when source is replay "
                                                           "(a .json, .jsonl or .ndjson mock file)"))
                continue
            file = base / stream.file
            files[stream.name] = file
            try:
                sources[stream.name] = load_replay_file(file)
            except MockFileError as e:
                problems.append(where.say(loc + ("file",), str(e)))
                continue
            if stream.timing == "recorded" and sources[stream.name].offsets_s is None:
                problems.append(where.say(loc + ("timing",), f"{file}: has no recorded timing: 'recorded' needs "
                                                             "a .jsonl file of "
                                                             "{\"t\": ms, \"data\"|\"text\"|\"b64\": ...} "
                                                             "lines (python server.py record URL writes one)"))
    return sources, files
