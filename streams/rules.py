"""Rules: what an endpoint answers to what a client sends. Pure: compiled once per config, no I/O.

A rule is a matcher and a list of actions. ``RuleSet.answer`` finds the first
rule whose matcher accepts a message (or the fallback) and returns its actions
with what the match captured; ``streams.conversation`` carries the actions out.

Templates here may read the conversation: a text template (a YAML string)
fills ``{{...}}`` holes and produces exactly its bytes (newlines, a trailing
NUL: STOMP frames); a JSON template (a mapping or a list) is a stream template
whose leaves may also be ``{$message: path}``, ``{$group: name}``, ``{$id: true}``,
``{$stream: true}``, ``{$frame: true}`` or ``{$error: true}``. Nothing here
evaluates code, and regular expressions look at the first ``MAX_REGEX_CHARS``
characters of a message only.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any, NamedTuple

from config import ActionConfig, MatchConfig, RuleConfig
from streams.fake import DEFAULT_LOCALE
from streams.jsontext import dumps
from streams.sources import Frame
from streams.template import TemplateError, compile_template


class TemplateOptions(NamedTuple):
    """How the generators of a rule's JSON templates compile: like the templates of the stream (or config)
    the rule belongs to."""

    faker_locale: str = DEFAULT_LOCALE  # for $faker
    base_path: Path | None = None  # where $schema files are (the config file's folder)


DEFAULT_OPTIONS = TemplateOptions()

MAX_REGEX_CHARS = 4096  # a regex sees at most this many characters of a message, so matching stays bounded

TEXT_HOLES = ("message", "message.<path>", "group.<name>", "id", "stream", "frame", "seq", "error")
CONTEXT_GENERATORS = ("$message", "$group", "$id", "$stream", "$frame", "$error")


class RuleError(ValueError):
    """A rule problem, with the path inside the rule where it is."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


# -- messages and JSON paths

_UNPARSED = object()
INVALID = object()  # a message that is not JSON
_scan_json = json.JSONDecoder().scan_once  # the C scanner under json.loads


class Message:
    """A client's message: its text, its Socket.IO event name if it has one, and its JSON value parsed on first use."""

    __slots__ = ("text", "binary", "event", "_value")

    def __init__(self, text: str, binary: bool, event: str | None = None) -> None:
        self.text = text
        self.binary = binary
        self.event = event  # None for a WebSocket message
        self._value: Any = _UNPARSED

    @property
    def value(self) -> Any:
        """The message parsed as JSON, or INVALID."""
        value = self._value
        if value is _UNPARSED:
            value = self._value = INVALID if self.binary else _parse_json(self.text)
        return value


def _parse_json(text: str) -> Any:
    """``json.loads(text)``, or INVALID; a few calls shorter when nothing surrounds the value (what clients send)."""
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError):  # no value right at the start (whitespace first?), or a broken one
        end = -1
    if end == len(text):
        return value
    try:
        return json.loads(text)  # whitespace around the value, or not JSON: json.loads decides
    except ValueError:
        return INVALID


_MISSING = object()
_NO_GROUPS: dict[str, str | None] = {}  # what a match without a regex captured; never changed


def parse_path(path: str) -> tuple[str, ...]:
    """'payload.query', 'params.0', 'params[0]', '$.a.b' -> its segments; raises ValueError."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:].lstrip(".")
    segments = tuple(s for s in re.split(r"\.|\[(\d+)\]", text) if s)
    if not segments or any(not s.strip() for s in segments):
        raise ValueError(f"{path!r} is not a JSON path; write keys and list indexes with dots: "
                         "payload.query, params.0")
    return segments


def lookup(value: Any, segments: Sequence[str]) -> Any:
    """The value at a JSON path, or _MISSING."""
    for segment in segments:
        if isinstance(value, dict):
            value = value.get(segment, _MISSING)
        elif isinstance(value, list) and segment.isdigit():
            index = int(segment)
            value = value[index] if index < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def subset_test(subset: Any) -> Callable[[Any], bool]:
    """Whether a value holds ``subset``: a mapping's keys (recursively); any other value, equal.

    Compiled once per rule, since it runs for every message: text and null
    values of a mapping, the usual ``{type: subscribe}``, are compared in place.
    """
    if not isinstance(subset, dict):
        return lambda value: _same(value, subset)
    plain = tuple((k, v) for k, v in subset.items() if v is None or isinstance(v, str))
    nested = tuple((k, subset_test(v)) for k, v in subset.items() if not (v is None or isinstance(v, str)))

    def test(value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        for k, v in plain:
            if value.get(k, _MISSING) != v:  # a text or null equals only the same text or null
                return False
        return not nested or all(k in value and inner(value[k]) for k, inner in nested)
    return test


def _jsonable(value: Any) -> Any:
    """A YAML value as JSON sees it: mapping keys are strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# -- matching

class Matcher:
    """A rule's `match:` block, compiled."""

    __slots__ = ("text", "regex", "subset", "field", "equals", "binary", "event", "group_names")

    def __init__(self, config: MatchConfig | None) -> None:
        config = config or MatchConfig()
        self.text = config.text
        self.binary = config.binary
        self.event = config.event
        self.subset = subset_test(_jsonable(config.subset)) if config.subset is not None else None
        self.equals = _jsonable(config.equals) if "equals" in config.model_fields_set else _MISSING
        try:
            self.field = parse_path(config.field) if config.field is not None else None
        except ValueError as e:
            raise RuleError(("match", "field"), str(e)) from None
        try:
            self.regex = re.compile(config.regex) if config.regex is not None else None
        except re.error as e:
            where = f" at position {e.pos}" if e.pos is not None else ""
            raise RuleError(("match", "regex"), f"invalid regular expression: {e.msg}{where}: {config.regex!r}") \
                from None
        # the groups a template of this rule may name: 'name' and '1', '2', ...
        self.group_names = (set(self.regex.groupindex) | {str(i) for i in range(self.regex.groups + 1)}
                            if self.regex is not None else set())

    def match(self, message: Message) -> dict[str, str | None] | None:
        """The groups captured (empty without a regex) when the message matches, else None."""
        if self.binary is not None and message.binary != self.binary:
            return None
        if self.event is not None and message.event != self.event:
            return None
        if self.text is not None and message.text != self.text:
            return None
        if self.subset is not None and not self.subset(message.value):
            return None
        subject = message.text
        if self.field is not None:
            value = message.value
            value = lookup(value, self.field) if value is not INVALID else _MISSING
            if value is _MISSING:
                return None
            if self.equals is not _MISSING and not _same(value, self.equals):
                return None
            subject = value if isinstance(value, str) else dumps(value)
        if self.regex is None:
            return _NO_GROUPS
        found = self.regex.search(subject, 0, MAX_REGEX_CHARS)
        if found is None:
            return None
        groups: dict[str, str | None] = {str(i): found.group(i) for i in range(self.regex.groups + 1)}
        groups.update(found.groupdict())
        return groups


# -- templates that read the conversation

class Context:
    """What a template may read: the message, the match, the subscription, the frame."""

    __slots__ = ("message", "groups", "id", "stream", "frame", "error", "missing")

    def __init__(self, message: Message | None = None, groups: dict[str, str | None] | None = None) -> None:
        self.message = message
        self.groups = groups or {}
        self.id: str | None = None
        self.stream: str | None = None
        self.frame: Frame | None = None
        self.error: str | None = None
        self.missing: list[str] | None = None  # message fields a template asked for and did not find

    def field(self, segments: Sequence[str]) -> Any:
        """A field of the message, or _MISSING (noted in ``missing``)."""
        found = lookup(self.message.value, segments) if self.message is not None else _MISSING  # INVALID: missing
        if found is _MISSING:
            self.missed(segments)
        return found

    def missed(self, segments: Sequence[str]) -> None:
        """Note a message field a template asked for and did not find."""
        if self.missing is None:
            self.missing = []
        self.missing.append(".".join(segments))


def frame_json(frame: Frame) -> str:
    """A frame as a JSON value: JSON frames as they are, text as a string, binary as a base64 string."""
    if frame.is_json:
        return frame.data.decode("utf-8")
    if frame.binary:
        return '"' + base64.b64encode(frame.data).decode("ascii") + '"'
    return dumps(frame.data.decode("utf-8"))


def frame_text(frame: Frame) -> str:
    """A frame as text (binary frames as base64)."""
    return base64.b64encode(frame.data).decode("ascii") if frame.binary else frame.data.decode("utf-8")


Hole = Callable[[Context], str]


def _text_hole(name: str, path: tuple) -> tuple[Hole, str]:
    """A ``{{name}}`` hole of a text template: its reader and what it reads ('frame', 'seq', 'group.x', ...)."""
    head, _, rest = name.partition(".")
    if head == "message":
        if not rest:
            return (lambda ctx: ctx.message.text if ctx.message is not None else ""), "message"
        try:
            segments = parse_path(rest)
        except ValueError as e:
            raise RuleError(path, str(e)) from None

        def field(ctx: Context) -> str:
            value = ctx.field(segments)
            return "" if value is _MISSING else value if isinstance(value, str) else dumps(value)
        return field, "message"
    if head == "group" and rest:
        return (lambda ctx: ctx.groups.get(rest) or ""), "group." + rest
    if head in ("id", "stream", "error") and not rest:
        return (lambda ctx: getattr(ctx, head) or ""), head
    if head == "frame" and not rest:
        return (lambda ctx: frame_text(ctx.frame) if ctx.frame is not None else ""), "frame"
    if head == "seq" and not rest:
        return (lambda ctx: ""), "seq"  # filled in by the template from its own state
    raise RuleError(path, f"unknown hole {{{{{name}}}}} (holes: {', '.join('{{' + h + '}}' for h in TEXT_HOLES)})")


def _json_hole(name: str, arg: Any, path: tuple) -> tuple[Hole, str]:
    """A context generator of a JSON template: its reader and what it reads."""
    if name == "$message":
        if arg is True:
            return (lambda ctx: (dumps(ctx.message.value) if ctx.message is not None
                                 and ctx.message.value is not INVALID
                                 else dumps(ctx.message.text) if ctx.message is not None else "null")), "message"
        if not isinstance(arg, str):
            raise RuleError(path, f"$message takes a JSON path (params.0) or true, got {arg!r}")
        try:
            segments = parse_path(arg)
        except ValueError as e:
            raise RuleError(path, str(e)) from None

        key = segments[0] if len(segments) == 1 else None

        def field(ctx: Context) -> str:  # ctx.field(segments) inlined: a reply's usual hole ({$message: id})
            value = ctx.message.value if ctx.message is not None else INVALID
            value = value.get(key, _MISSING) if key is not None and type(value) is dict else lookup(value, segments)
            if value is _MISSING:
                ctx.missed(segments)
                return "null"
            return dumps(value)
        return field, "message"
    if name == "$group":
        if not isinstance(arg, (str, int)) or isinstance(arg, bool):
            raise RuleError(path, f"$group takes a group name or number, got {arg!r}")
        group = str(arg)
        return (lambda ctx: dumps(ctx.groups.get(group))), "group." + group
    if arg is not True:
        raise RuleError(path, f"{name} takes true, got {arg!r}")
    if name == "$frame":
        return (lambda ctx: frame_json(ctx.frame) if ctx.frame is not None else "null"), "frame"
    key = name[1:]
    return (lambda ctx: dumps(getattr(ctx, key))), key


_TEXT_HOLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_MARK = re.compile('"\ue000(\\d+)\ue001"')


class MessageTemplate:
    """A reply or envelope: text with ``{{...}}`` holes, or a JSON template with context generators."""

    __slots__ = ("parts", "format", "holes", "reads", "compiled", "seq_holes", "text")

    def __init__(self, value: Any, path: tuple = (), options: TemplateOptions = DEFAULT_OPTIONS) -> None:
        self.text = isinstance(value, str)
        self.holes: list[Hole] = []
        self.reads: list[str] = []  # what each hole reads, in order
        self.compiled = None  # the JSON template's generators, when it has any
        if self.text:
            self.parts = _TEXT_HOLE.split(value)  # literal, name, literal, name, ..., literal
            for i in range(1, len(self.parts), 2):
                hole, reads = _text_hole(self.parts[i], path)
                self.holes.append(hole)
                self.reads.append(reads)
            self.parts = self.parts[0::2]
        else:
            marked = self._mark(value, path)
            try:
                compiled = compile_template(marked, faker_locale=options.faker_locale, base_path=options.base_path)
            except TemplateError as e:
                raise RuleError(path + e.path, e.message) from None
            if _has_generator(value):
                self.compiled = compiled
            self.parts = _MARK.split(compiled.render(compiled.new_state(), Random(0)))[0::2]
        self.format = _percent_format(self.parts)
        self.seq_holes = [i for i, reads in enumerate(self.reads) if reads == "seq"]

    @classmethod
    def with_message(cls, text: str) -> MessageTemplate:
        """A stream's one-line `reply`: ``text`` with each ``{message}`` replaced by the message."""
        template = cls("")
        template.parts = text.split("{message}")
        template.format = _percent_format(template.parts)
        template.holes = [lambda ctx: ctx.message.text if ctx.message is not None else ""] * (len(template.parts) - 1)
        template.reads = ["message"] * len(template.holes)
        return template

    def _mark(self, node: Any, path: tuple) -> Any:
        """The template with each context generator replaced by a marker string."""
        if isinstance(node, Mapping):
            if len(node) == 1:
                (key, arg), = node.items()
                if key in CONTEXT_GENERATORS:
                    hole, reads = _json_hole(key, arg, path + (key,))
                    self.holes.append(hole)
                    self.reads.append(reads)
                    return f"\ue000{len(self.holes) - 1}\ue001"
                if key == "$literal":
                    return node
            return {k: self._mark(v, path + (k,)) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [self._mark(v, path + (i,)) for i, v in enumerate(node)]
        return node

    def new_state(self) -> list:
        """Generator state for one conversation or subscription ($seq, $counter, $walk)."""
        return self.compiled.new_state() if self.compiled is not None else [0]

    def render(self, ctx: Context, state: list, rng: Random) -> str:
        """The message for ``ctx``; ``state`` advances ($seq counts the messages rendered with it)."""
        values = []
        for hole in self.holes:  # a loop, not a comprehension: one function frame less for a hole or two
            values.append(hole(ctx))
        if self.compiled is None:
            state[0] += 1
            for i in self.seq_holes:
                values[i] = str(state[0])
            return self.format % tuple(values)  # the literal parts with a %s for each hole
        parts = _MARK.split(self.compiled.render(state, rng))[0::2]
        for i in self.seq_holes:
            values[i] = str(state[0])
        out = parts + values  # then interleaved: literal, value, literal, ..., literal
        out[0::2] = parts
        out[1::2] = values
        return "".join(out)

    def around_frame(self, ctx: Context) -> tuple[bytes, bytes] | None:
        """(before, after): the bytes around the frame when nothing else changes from frame to frame."""
        if self.compiled is not None or self.reads.count("frame") != 1 or "seq" in self.reads:
            return None
        at = self.reads.index("frame")
        values = [hole(ctx) for hole in self.holes]
        before = [self.parts[0]]
        for value, part in zip(values[:at], self.parts[1:at + 1], strict=True):
            before += [value, part]
        after = [self.parts[at + 1]]
        for value, part in zip(values[at + 1:], self.parts[at + 2:], strict=True):
            after += [value, part]
        return "".join(before).encode("utf-8"), "".join(after).encode("utf-8")


def _percent_format(parts: list[str]) -> str:
    """The literal parts of a template joined by ``%s``: ``format % values`` fills its holes in one step."""
    return "%s".join(part.replace("%", "%%") for part in parts)


def _has_generator(node: Any) -> bool:
    if isinstance(node, Mapping):
        if len(node) == 1 and next(iter(node)) == "$literal":
            return False
        return any(isinstance(k, str) and k.startswith("$") and k not in CONTEXT_GENERATORS for k in node) \
            or any(_has_generator(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_has_generator(v) for v in node)
    return False


# -- actions and rules

DEFAULT_ERROR = {"error": {"$error": True}}


@dataclass(frozen=True)
class Reply:
    """Send a message to the client."""

    template: MessageTemplate


@dataclass(frozen=True)
class Subscribe:
    """Subscribe the connection to a stream (a topic), each frame wrapped in ``envelope``."""

    stream: MessageTemplate  # text: the stream's name
    id: MessageTemplate | None  # text: the subscription id (None: the stream's name)
    envelope: MessageTemplate | None  # None: the frame unchanged
    error: MessageTemplate
    if_subscribed: tuple[Action, ...] | None  # None: a second subscribe under the same id replaces the first


@dataclass(frozen=True)
class Unsubscribe:
    """End the connection's subscription with an id, or every one to a stream."""

    id: MessageTemplate | None
    stream: MessageTemplate | None


@dataclass(frozen=True)
class Snapshot:
    """Send one frame of a stream at once."""

    stream: MessageTemplate
    id: MessageTemplate | None
    envelope: MessageTemplate | None
    error: MessageTemplate


@dataclass(frozen=True)
class Delay:
    """Wait before the next action."""

    seconds: float


@dataclass(frozen=True)
class Close:
    """Close the connection."""

    code: int
    reason: MessageTemplate


Action = Reply | Subscribe | Unsubscribe | Snapshot | Delay | Close


@dataclass(frozen=True)
class Rule:
    """A compiled rule."""

    matcher: Matcher
    actions: tuple[Action, ...]
    example: str | None  # a message this rule expects (the demo page offers it)


@dataclass(frozen=True)
class Answer:
    """What to do about one message: the actions, and what the match captured."""

    actions: tuple[Action, ...]
    groups: dict[str, str | None]  # never changed: answers without groups are made once and shared
    rule: int | None  # the rule's index; None: the fallback
    replies: tuple[MessageTemplate, ...] | None = None  # the templates, when every action is a reply


class RuleSet:
    """An endpoint's rules and fallback, compiled."""

    def __init__(self, rules: Sequence[Rule], fallback: tuple[Action, ...]) -> None:
        self.rules = tuple(rules)
        self.fallback = fallback
        # what a match without a regex answers, made once instead of per message
        self._plain = tuple((rule.matcher, Answer(rule.actions, _NO_GROUPS, i, _replies(rule.actions)))
                            for i, rule in enumerate(self.rules))
        self._fallback = Answer(fallback, _NO_GROUPS, None, _replies(fallback)) if fallback else None

    def answer(self, message: Message) -> Answer | None:
        """The first rule that matches, else the fallback; None when nothing answers."""
        for matcher, plain in self._plain:
            groups = matcher.match(message)
            if groups is not None:
                return Answer(plain.actions, groups, plain.rule, plain.replies) if groups else plain
        return self._fallback

    @property
    def examples(self) -> list[str]:
        """The example messages of the rules, in order."""
        return [rule.example for rule in self.rules if rule.example is not None]


def _replies(actions: tuple[Action, ...]) -> tuple[MessageTemplate, ...] | None:
    """The reply templates of actions that are all replies (the usual request/response rule), else None."""
    return tuple(a.template for a in actions) if all(isinstance(a, Reply) for a in actions) else None


def compile_rules(rules: Sequence[RuleConfig], fallback: Sequence[ActionConfig], streams: Sequence[str],
                  reply: str | None = None, options: TemplateOptions = DEFAULT_OPTIONS
                  ) -> tuple[RuleSet, list[RuleError]]:
    """Compile an endpoint's rules; every problem found, each with its path under the endpoint."""
    problems: list[RuleError] = []
    compiled = []
    for i, rule in enumerate(rules):
        try:
            matcher = Matcher(rule.match)
        except RuleError as e:
            problems.append(RuleError(("rules", i) + e.path, e.message))
            continue
        actions = _actions(rule.do, ("rules", i, "do"), _Scope(streams, matcher.group_names, options, problems))
        example = rule.example if rule.example is None or isinstance(rule.example, str) else dumps(
            _jsonable(rule.example))
        compiled.append(Rule(matcher, actions, example))
    if reply is not None:  # a stream's one-line reply: {message} is the message's text
        fallback_actions: tuple[Action, ...] = (Reply(MessageTemplate.with_message(reply)),)
    else:
        fallback_actions = _actions(fallback, ("fallback",), _Scope(streams, set(), options, problems))
    return RuleSet(compiled, fallback_actions), problems


class _Scope(NamedTuple):
    """What a rule's actions compile against: the config's streams, the groups of the rule's regex, how
    templates compile, and where problems go."""

    streams: Sequence[str]
    groups: set[str]
    options: TemplateOptions
    problems: list[RuleError]


def _actions(configs: Sequence[ActionConfig], path: tuple, scope: _Scope) -> tuple[Action, ...]:
    actions = []
    for i, config in enumerate(configs):
        try:
            actions.append(_action(config, path + (i,), scope))
        except RuleError as e:
            scope.problems.append(e)
    return tuple(actions)


def _template(value: Any, path: tuple, scope: _Scope, text_only: bool = False) -> MessageTemplate:
    if text_only and not isinstance(value, str):
        raise RuleError(path, f"must be text (a string, may hold {{{{...}}}} holes), got {value!r}")
    template = MessageTemplate(value, path, scope.options)
    groups = scope.groups
    for reads in template.reads:
        if reads.startswith("group.") and reads[6:] not in groups:
            if not groups:
                raise RuleError(path, f"refers to group {reads[6:]!r}, but the rule has no match.regex")
            named = sorted(g for g in groups if not g.isdigit())
            numbered = sum(g.isdigit() for g in groups) - 1
            raise RuleError(path, f"refers to group {reads[6:]!r}, which the rule's regex does not have "
                                  f"(named: {', '.join(named) or 'none'}; numbered: 0 to {numbered})")
    return template


def _stream_name(value: str, path: tuple, scope: _Scope) -> MessageTemplate:
    template = _template(value, path, scope, text_only=True)
    if not template.holes and value not in scope.streams:
        raise RuleError(path, f"no stream named {value!r}; streams: {', '.join(scope.streams) or 'none'}")
    return template


def _action(config: ActionConfig, path: tuple, scope: _Scope) -> Action:
    kind = config.kind
    path = path + (kind,)
    if kind == "reply":
        return Reply(_template(config.reply, path, scope))
    if kind == "delay":
        return Delay(config.delay / 1000)
    if kind == "close":
        return Close(config.close.code, _template(config.close.reason, path + ("reason",), scope, text_only=True))
    if kind == "unsubscribe":
        u = config.unsubscribe
        return Unsubscribe(_template(u.id, path + ("id",), scope, True) if u.id is not None else None,
                           _stream_name(u.stream, path + ("stream",), scope) if u.stream else None)
    s = config.subscribe if kind == "subscribe" else config.snapshot
    stream = _stream_name(s.stream, path + ("stream",), scope)
    sub_id = _template(s.id, path + ("id",), scope, text_only=True) if s.id is not None else None
    envelope = _template(s.envelope, path + ("envelope",), scope) if s.envelope is not None else None
    error = _template(s.error if s.error is not None else DEFAULT_ERROR, path + ("error",), scope)
    if kind == "snapshot":
        return Snapshot(stream, sub_id, envelope, error)
    if_subscribed = (_actions(s.if_subscribed, path + ("if_subscribed",), scope)
                     if s.if_subscribed is not None else None)
    return Subscribe(stream, sub_id, envelope, error, if_subscribed)
