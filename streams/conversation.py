"""A conversation: one connection's side of an endpoint's rules, and the topic subscriptions it holds.

``Conversation.receive`` looks a message up in the endpoint's current rules
(so a live reload applies to the next message) and carries out the actions in
order: replies, subscriptions to streams as topics, snapshots, delays, a close.
Each topic subscription is a client of its stream like any other
(``Subscription`` implements ``streams.client.Client``), so the stream's
clock, pause, seek, faults and slow-client bound apply to it unchanged; only
the bytes differ, each frame wrapped in the subscription's envelope.
"""

from __future__ import annotations

import logging
from random import Random
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop

from streams.client import Client
from streams.rules import (
    Action,
    Close,
    Context,
    Delay,
    Message,
    MessageTemplate,
    Reply,
    RuleSet,
    Snapshot,
    Subscribe,
    Unsubscribe,
    frame_json,
)
from streams.sources import Frame
from streams.stream import Stream

if TYPE_CHECKING:
    from streams.hub import Hub

log = logging.getLogger("mockws.rules")

MAX_REASON_BYTES = 123  # what a close frame has room for


class Subscription:
    """One topic subscription of a connection: the stream's frames, each wrapped in the envelope."""

    __slots__ = ("conversation", "stream", "id", "envelope", "context", "state", "around", "embed")

    def __init__(self, conversation: Conversation, stream: Stream, sub_id: str, envelope: MessageTemplate | None,
                 context: Context) -> None:
        self.conversation = conversation
        self.stream = stream
        self.id = sub_id
        self.envelope = envelope
        self.context = context
        self.state = envelope.new_state() if envelope is not None else None
        # the common envelope ({"id": .., "data": <frame>}) is two constant byte strings around the frame
        self.around = envelope.around_frame(context) if envelope is not None else None
        self.embed = (lambda frame: frame.data if frame.is_json else frame_json(frame).encode("utf-8")) \
            if envelope is not None and not envelope.text else _frame_bytes

    # -- the client interface (streams.client.Client), for the stream

    @property
    def kind(self) -> str:
        return self.conversation.client.kind

    @property
    def is_open(self) -> bool:
        return self.conversation.client.is_open

    @property
    def pending_bytes(self) -> int:
        return self.conversation.client.pending_bytes

    def send(self, frame: Frame, seq: int | None = None) -> bool:
        client = self.conversation.client
        if self.envelope is None:
            return client.send(frame, seq)
        if self.around is not None:
            before, after = self.around
            return client.send_message(before + self.embed(frame) + after)
        context = self.context
        context.frame = frame
        try:
            text = self.envelope.render(context, self.state, self.conversation.rng)
        finally:
            context.frame = None
        self.conversation.note_missing(context)
        return client.send_message(text.encode("utf-8"))

    def send_message(self, data: bytes, binary: bool = False) -> bool:
        return self.conversation.client.send_message(data, binary)

    def close(self, code: int, reason: str) -> None:
        self.conversation.client.close(code, reason)  # a slow reader or a disconnect fault: the connection goes

    def abort(self) -> None:
        self.conversation.client.abort()

    def end(self, code: int, reason: str) -> None:
        """The stream has no more frames (a replay finished, the stream was removed): only this subscription ends."""
        self.conversation.forget(self)


def _frame_bytes(frame: Frame) -> bytes:
    return frame.data


class Conversation:
    """One connection at an endpoint with rules: answers its messages and holds its topic subscriptions."""

    __slots__ = ("client", "hub", "path", "own", "subscriptions", "states", "timers", "warned", "rng")

    def __init__(self, client: Client, hub: Hub, path: str, own: Stream | None = None) -> None:
        self.client = client
        self.hub = hub
        self.path = path
        self.own = own  # the stream at the endpoint's own path, if any
        self.subscriptions: dict[str, Subscription] = {}
        self.states: dict[int, list] = {}  # generator state of each reply template, for this connection
        self.timers: set[Any] = set()
        self.warned = False
        self.rng: Random = hub.rules_rng(path)
        hub.conversations.add(self)

    # -- what the endpoint calls

    def receive(self, data: bytes, binary: bool, event: str | None = None) -> None:
        """Answer one message by the endpoint's current rules (``event``: its Socket.IO event name, if any)."""
        rules: RuleSet | None = self.hub.rules_at(self.path)
        if rules is None:
            return
        message = Message(data.decode("utf-8", "replace") if binary else data.decode("utf-8"), binary, event)
        answer = rules.answer(message)
        if answer is None:
            return
        context = Context(message, answer.groups)
        if answer.replies is None:
            self.run(answer.actions, 0, context)
            return
        for template in answer.replies:  # replies only: nothing to start or wait for, so not through run()
            self.reply(template, context)  # which a subclass may override (Socket.IO answers with events)

    def end(self) -> None:
        """The connection is gone: every subscription and pending action ends with it."""
        for timer in self.timers:
            IOLoop.current().remove_timeout(timer)
        self.timers.clear()
        for sub in list(self.subscriptions.values()):
            sub.stream.unsubscribe(sub)
        self.subscriptions.clear()
        if self.own is not None:
            self.own.unsubscribe(self.client)
        self.hub.conversations.discard(self)

    def forget(self, sub: Subscription) -> None:
        """A subscription its stream ended."""
        if self.subscriptions.get(sub.id) is sub:
            del self.subscriptions[sub.id]

    # -- carrying out actions

    def run(self, actions: tuple[Action, ...], start: int, context: Context) -> None:
        """Carry out ``actions`` from ``start``; a delay schedules the rest.

        A subscription starts (and its first frame goes out) once the actions up to
        the next delay are done, so a rule can confirm a subscription before its
        frames arrive whatever the order of its actions; a subscribe or snapshot that
        fails answers with its error and skips the rest of the rule.
        """
        starting: list[Subscription] = []
        try:
            for i in range(start, len(actions)):
                if not self.client.is_open:
                    return
                action = actions[i]
                if isinstance(action, Delay):
                    self._later(action.seconds, actions, i + 1, context)
                    return
                if isinstance(action, Reply):
                    self.reply(action.template, context)
                elif isinstance(action, Subscribe):
                    if not self.subscribe(action, context, starting):
                        return
                elif isinstance(action, Unsubscribe):
                    self.unsubscribe(action, context)
                elif isinstance(action, Snapshot):
                    if not self.snapshot(action, context):
                        return
                elif isinstance(action, Close):
                    reason = self.text(action.reason, context).encode("utf-8")[:MAX_REASON_BYTES]
                    self.client.close(action.code, reason.decode("utf-8", "ignore"))
                    return
        finally:
            for sub in starting:
                if self.subscriptions.get(sub.id) is sub and self.client.is_open:
                    sub.stream.subscribe(sub, topic=True)

    def _later(self, seconds: float, actions: tuple[Action, ...], start: int, context: Context) -> None:
        def resume() -> None:
            self.timers.discard(handle)
            self.run(actions, start, context)
        handle = IOLoop.current().call_later(seconds, resume)
        self.timers.add(handle)

    def text(self, template: MessageTemplate, context: Context) -> str:
        """Render a template for this connection ($seq and friends count per connection)."""
        state = self.states.get(id(template))
        if state is None:
            state = self.states[id(template)] = template.new_state()
        text = template.render(context, state, self.rng)
        if context.missing:
            self.note_missing(context)
        return text

    def reply(self, template: MessageTemplate, context: Context) -> None:
        """Send a rendered template to the client."""
        self.client.send_message(self.text(template, context).encode("utf-8"))

    def subscribe(self, action: Subscribe, context: Context, starting: list[Subscription]) -> bool:
        """Make a topic subscription (started by ``run``), or answer with the action's error; False if it failed."""
        name = self.text(action.stream, context)
        sub_id = self.text(action.id, context) if action.id is not None else name
        context.id, context.stream = sub_id, name
        stream = self.hub.streams.get(name)
        if stream is None:
            self.error(action.error, context, f"no stream named {name!r}; streams: {', '.join(self.hub.streams)}")
            return False
        old = self.subscriptions.get(sub_id)
        if old is not None and action.if_subscribed is not None:
            self.run(action.if_subscribed, 0, context)
            return False
        limit = self.hub.server.max_subscriptions_per_client
        if old is None and len(self.subscriptions) >= limit:
            self.error(action.error, context, f"subscription limit reached: {limit} per connection "
                                              "(server.max_subscriptions_per_client)")
            return False
        if old is not None:  # the same id again: the new subscription replaces the old one
            old.stream.unsubscribe(old)
        sub_context = Context(context.message, context.groups)
        sub_context.id, sub_context.stream = sub_id, name
        sub = self.subscriptions[sub_id] = Subscription(self, stream, sub_id, action.envelope, sub_context)
        starting.append(sub)
        return True

    def unsubscribe(self, action: Unsubscribe, context: Context) -> None:
        """End a subscription by id, or every one to a stream (nothing to end is not an error)."""
        if action.id is not None:
            sub_id = context.id = self.text(action.id, context)
            ending = [self.subscriptions[sub_id]] if sub_id in self.subscriptions else []
        else:
            name = context.stream = self.text(action.stream, context)
            ending = [sub for sub in self.subscriptions.values() if sub.stream.name == name]
        for sub in ending:
            del self.subscriptions[sub.id]
            sub.stream.unsubscribe(sub)

    def snapshot(self, action: Snapshot, context: Context) -> bool:
        """Send the stream's current frame at once; False (and the action's error) without such a stream."""
        name = self.text(action.stream, context)
        context.id = self.text(action.id, context) if action.id is not None else name
        context.stream = name
        stream = self.hub.streams.get(name)
        if stream is None:
            self.error(action.error, context, f"no stream named {name!r}; streams: {', '.join(self.hub.streams)}")
            return False
        frame = stream.current_frame(self.rng)
        if action.envelope is None:
            self.client.send(frame)
            return True
        context.frame = frame
        try:
            self.reply(action.envelope, context)
        finally:
            context.frame = None
        return True

    def error(self, template: MessageTemplate, context: Context, why: str) -> None:
        """Answer with an action's error template; ``why`` is its {{error}}."""
        context.error = why
        self.reply(template, context)

    def note_missing(self, context: Context) -> None:
        """Log, once per connection, a message field a template asked for and did not find."""
        if context.missing and not self.warned:
            self.warned = True
            log.warning("%s: a client's message has no %s; the template got null (or empty text) instead "
                        "(said once per connection)", self.path, ", ".join(dict.fromkeys(context.missing)))
        context.missing = None
