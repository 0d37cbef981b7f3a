"""A Stream: one frame source, one clock and the clients subscribed to it.

Per-client streams give every connection its own timeline (own position, own
generator state, own phase, like the original one-``setInterval``-per-socket
server); shared streams have one timeline whose frames go to every client at
the same moment. Either way the stream owns the only clock.

The send path is the hot path of the whole server: a frame is built once and
handed to every client (``Client.send``; the transport encodes it once), and
each client's unsent bytes are bounded (``server.max_pending_bytes``) so a
client that stops reading cannot grow the server's memory.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from random import Random
from typing import Any, Protocol

from tornado.ioloop import IOLoop

from config import FaultsConfig, ServerConfig, StreamConfig
from streams.client import Client
from streams.clock import Clock
from streams.schedule import Schedule, Timeline, rebase
from streams.sources import Frame, JsonFrame, Source

log = logging.getLogger("mockws.stream")

SLOW_CLIENT_GRACE_S = 1.0  # after a 1008 close, how long a non-reading peer keeps its TCP connection


class FaultInjector(Protocol):
    """Misbehaves on purpose between a stream and its clients (see streams.faults)."""

    config: FaultsConfig  # what it was made from

    def deliver(self, stream: Stream, sub: Subscriber, frame: Frame, seq: int | None = None) -> bool:
        """Send (or drop, delay, duplicate, garble) a frame via ``stream.write``; True if it went out now."""

    def on_subscribe(self, stream: Stream, sub: Subscriber) -> None:
        """A client joined (e.g. schedule its disconnect)."""

    def on_unsubscribe(self, stream: Stream, sub: Subscriber) -> None:
        """A client left: cancel whatever is pending for it."""

    def describe(self) -> dict[str, Any]:
        """Settings and counters, for the HTTP API."""


class Subscriber:
    """One connected client of a stream."""

    __slots__ = ("client", "timeline", "failed", "fault_state", "topic")

    def __init__(self, client: Client, topic: bool = False) -> None:
        self.client = client
        self.topic = topic  # a topic subscription of a rules endpoint, not a connection to the stream's path
        self.timeline: Timeline | None = None
        self.failed = False  # an unexpected error was already logged for this client
        self.fault_state: Any = None  # owned by the stream's FaultInjector, if any


class Stream:
    """A frame source, its clock and its subscribers."""

    def __init__(self, config: StreamConfig, source: Source, rng: Random, server: ServerConfig) -> None:
        self.config = config
        self.source = source
        self.rng = rng
        self.server = server  # limits for every client; replaced on live reload
        self.schedule = Schedule(config, source)
        self._subscribers: dict[Client, Subscriber] = {}
        self.clock = Clock(self._fire_all, self.schedule.quantum_s)
        self._shared: Timeline | None = None
        self._last_shared: Frame | None = None  # what a late joiner of a shared timeline gets first
        # the shared timeline's latest frames with their numbers, for clients that resume (Last-Event-ID, ?since=)
        self.history: deque[tuple[int, Frame]] = deque(maxlen=config.history or 1)
        self.frames_sent = 0
        self.frames_dropped = 0
        self.paused = False
        self._paused_at = 0.0
        self.on_finished: Callable[[Client], None] = _close_finished
        self.on_empty: Callable[[Stream], None] | None = None  # its last client left (the hub drops a path value's)
        # fault injection (streams.faults): decides per frame whether, when and how it is sent
        self.faults: FaultInjector | None = None
        # in a cluster (streams.cluster) a shared timeline runs once for every process: the "holder" runs
        # its clock and hands each frame to ``relay``; a "follower" sends what ``deliver`` brings. None: alone
        self.role: str | None = None
        self.relay: Callable[[int, Frame, Timeline], None] | None = None
        # a holder with a random_seed: each frame's draws come from a generator seeded with this and the frame's
        # number, so a holder that takes over draws what the one before would have (None: one running generator)
        self.frame_seed: str | None = None
        self._delivered_at = 0.0  # follower: when the holder's last frame arrived

    # -- what the handlers call

    @property
    def name(self) -> str:
        """The stream's name."""
        return self.config.name

    @property
    def clients(self) -> int:
        """How many clients are subscribed."""
        return len(self._subscribers)

    def subscribe(self, client: Client, topic: bool = False, since: int | None = None) -> None:
        """Start pushing to ``client`` (``topic``: a subscription made by a rule, see streams.conversation).

        ``since``: the client saw frames up to that number before (Last-Event-ID, ?since=) and continues
        after it; -1 says it sent a number that is not one (it gets a reset, then live frames).
        """
        sub = self._subscribers[client] = Subscriber(client, topic)
        now = IOLoop.current().time()
        if self.faults is not None:
            self.faults.on_subscribe(self, sub)
        if self.config.timeline == "shared":
            self._subscribe_shared(sub, now, since)
        else:
            sub.timeline = Timeline(sub, self.source.new_state(), now + self.schedule.interval_s)
            if since is not None:
                self._resume_own(sub, since)
            if self.config.send_on_connect and not self.paused:
                sub.timeline.due = sub.timeline.epoch = now
                due = self._fire(sub.timeline, now)  # the first frame goes out with the handshake
                if due is None:
                    return  # a one-frame replay that does not loop: already finished
                sub.timeline.due = due
            self.clock.add(sub.timeline)
        if not self.paused:
            self.clock.start()

    def unsubscribe(self, client: Client) -> None:
        """Stop pushing to ``client`` (no-op if it is not subscribed)."""
        sub = self._subscribers.pop(client, None)
        if sub is not None and sub.timeline is not None:
            self.clock.remove(sub.timeline)
            sub.timeline = None
        if sub is not None and self.faults is not None:
            self.faults.on_unsubscribe(self, sub)
        if not self._subscribers and self.role != "holder":
            self.clock.stop()  # an idle stream has no timer (a holder ticks for the other processes' clients)
            if sub is not None and self.on_empty is not None:
                self.on_empty(self)

    def reply_to(self, message: str) -> str | None:
        """The reply to a client's message, or None."""
        return self.config.reply_to(message)

    def push(self, frame: Frame) -> int:
        """Send ``frame`` to every client now, outside the schedule (it has no number); returns how many got it."""
        return sum(self._send(sub, frame) for sub in list(self._subscribers.values()))

    def stop(self) -> None:
        """Stop the clock for good (shutdown)."""
        self.clock.clear()

    def close_all(self, code: int, reason: str) -> None:
        """End every client: a connection closes with ``code``; a topic subscription just ends."""
        for client in list(self._subscribers):
            self.unsubscribe(client)
            client.end(code, reason)

    def current_frame(self, rng: Random) -> Frame:
        """The frame a client would see now (a snapshot): the shared timeline's last frame, else a first one."""
        if self._last_shared is not None:
            return self._last_shared
        if self.source.length is not None:
            return self.source.frame(self.position or 0, None, rng)
        return self.source.frame(0, self.source.new_state(), rng)

    # -- control (HTTP API and live reload)

    def pause(self) -> None:
        """Stop the clock; clients stay connected and pushes still go out (idempotent)."""
        if not self.paused:
            self.paused = True
            self._paused_at = IOLoop.current().time()
            self.clock.stop()

    def resume(self) -> None:
        """Restart the clock where it stopped: every timeline keeps its position and phase (idempotent)."""
        if not self.paused:
            return
        self.paused = False
        self._shift_timelines(IOLoop.current().time() - self._paused_at)
        if self._subscribers or self.role == "holder":
            self.clock.start()

    def seek(self, index: int) -> None:
        """Make entry ``index`` the next frame of the shared replay timeline."""
        if self._shared is None:
            self._shared = Timeline(None, self.source.new_state(), IOLoop.current().time())
            self.clock.add(self._shared)
        self.schedule.seek(self._shared, index)

    @property
    def position(self) -> int | None:
        """Index of the next entry of a shared replay timeline; None for other streams."""
        if self.config.timeline != "shared" or self.source.length is None:
            return None
        return self._shared.index % self.source.length if self._shared is not None else 0

    def update(self, config: StreamConfig, source: Source, server: ServerConfig) -> list[str]:
        """Apply a new config in place, keeping clients connected; returns what changed, for the log."""
        old, old_source = self.config, self.source
        changes = [f"{config.name} {key} {_show(getattr(old, key))} -> {_show(getattr(config, key))}"
                   for key in type(config).model_fields
                   if key not in ("name", "template") and getattr(old, key) != getattr(config, key)]
        data_changed = _frames_differ(old_source, source)
        if data_changed:
            changes.append(f"{config.name} template changed" if source.length is None
                           else f"{config.name} file reloaded ({source.length} entries)")
        old_interval_s = self.schedule.interval_s
        self.config, self.source, self.server = config, source, server
        if old.history != config.history:
            self.history = deque(self.history, maxlen=config.history or 1)
        self.schedule = Schedule(config, source)
        if old.timeline != config.timeline:
            self._restart_timelines()
            return changes
        if data_changed:
            for timeline in self._timelines():
                if source.length is not None:  # a new file: replay restarts at entry 0
                    timeline.index = 0
                    timeline.epoch = timeline.due
                if type(old_source) is not type(source) or source.length is None:
                    seq = timeline.state[0] if isinstance(timeline.state, list) else 0
                    timeline.state = source.new_state()
                    if isinstance(timeline.state, list):
                        timeline.state[0] = seq  # $seq keeps counting across a template edit
        if (old.interval_ms, old.timing, old.speed) != (config.interval_ms, config.timing, config.speed):
            self._retime(old_interval_s)
        return changes

    def detail(self) -> dict[str, Any]:
        """The stream's settings and live state, for GET /api/streams/{name}."""
        settings = self.config.model_dump(exclude={"template"} if self.config.source == "replay" else set())
        return {**settings, **self.describe(), "position": self.position, "paused": self.paused,
                "frames_dropped": self.frames_dropped,
                "entries": self.source.length}

    def set_faults(self, faults: FaultInjector | None) -> None:
        """Replace the fault injector (None: faults off); clients stay connected.

        Frames the old injector still held back are dropped, like a network
        losing what was in flight; the new one schedules each client's
        disconnect from now.
        """
        old, self.faults = self.faults, faults
        for sub in list(self._subscribers.values()):
            if old is not None:
                old.on_unsubscribe(self, sub)
            if faults is not None:
                faults.on_subscribe(self, sub)

    def _timelines(self) -> list[Timeline]:
        if self._shared is not None:
            return [self._shared]
        return [sub.timeline for sub in self._subscribers.values() if sub.timeline is not None]

    def _shift_timelines(self, delta_s: float) -> None:
        for timeline in self._timelines():
            self.clock.remove(timeline)
            rebase(timeline, timeline.due + delta_s)
            if self.role != "follower":
                self.clock.add(timeline)

    def _retime(self, old_interval_s: float) -> None:
        """A new interval applies from the last frame sent: 3000 -> 1000 ms speeds up at once."""
        now = IOLoop.current().time()
        self.clock.set_quantum(self.schedule.quantum_s)
        for timeline in self._timelines():
            self.clock.remove(timeline)
            rebase(timeline, self.schedule.retimed_due(timeline, old_interval_s, now))
            if self.role != "follower":
                self.clock.add(timeline)

    def _restart_timelines(self) -> None:
        """per-client <-> shared: every client gets a timeline of the new kind, without reconnecting."""
        clients = list(self._subscribers)
        self.role = self.relay = None  # a cluster adopts the stream again if it is shared now
        for client in clients:
            self.unsubscribe(client)
        self.clock.clear()
        self._shared = self._last_shared = None
        for client in clients:
            self.subscribe(client)

    # -- scheduling

    def _subscribe_shared(self, sub: Subscriber, now: float, since: int | None) -> None:
        if self.role is not None:
            self._join_cluster_timeline(sub, since)
            return
        interval = self.schedule.interval_s
        if self._shared is None:
            self._shared = Timeline(None, self.source.new_state(), now + interval)
            self._last_shared = None
            self.history.clear()
            self.clock.add(self._shared)
            if since is not None and since >= 0 and self.source.length is not None and len(self._subscribers) == 1:
                # a fresh replay timeline (after a restart, say): its position is in the data, so go on from there
                self._shared.count, self._shared.index = since, since % self.source.length
                since = None
        elif len(self._subscribers) == 1:
            # nobody was listening and the clock was idle: restart the grid from now
            self.clock.remove(self._shared)
            rebase(self._shared, now + interval)
            self.clock.add(self._shared)
        if since is not None and self._resume_shared(sub, since):
            return
        if not self.config.send_on_connect or self.paused:
            return
        if len(self._subscribers) > 1 and self._last_shared is not None:
            self._send(sub, self._last_shared, self._shared.count)  # a late joiner gets the current frame at once
            return
        self.clock.remove(self._shared)
        rebase(self._shared, now)
        due = self._fire(self._shared, now)
        if due is not None and self._shared is not None:
            self._shared.due = due
            self.clock.add(self._shared)

    def _resume_shared(self, sub: Subscriber, since: int) -> bool:
        """Send a resuming client what it missed of the shared timeline; False if it gets a reset instead."""
        current = self._shared.count if self._shared is not None else 0
        if since == current:
            return True  # nothing missed
        missed = current - since
        if 0 < missed <= self.config.history:
            if self.source.length is None:
                frames = [(seq, frame) for seq, frame in self.history if seq > since]
                if frames and frames[0][0] == since + 1:
                    for seq, frame in frames:
                        self._send(sub, frame, seq)
                    return True
            else:  # a replay's frames are in its file: the number says which entry
                for seq in range(since + 1, current + 1):
                    self._send(sub, self.source.frame((seq - 1) % self.source.length, None, self.rng), seq)
                return True
        # a late joiner (or any client of a cluster's timeline) gets the current frame next, not a new one
        late_join = (self.config.send_on_connect and not self.paused and self._last_shared is not None
                     and (len(self._subscribers) > 1 or self.role is not None))
        self._send(sub, reset_frame(since, current - 1 if late_join else current, self.config.history))
        return False

    def _resume_own(self, sub: Subscriber, since: int) -> None:
        """A per-client timeline that continues after frame ``since`` of the client's own sequence."""
        timeline = sub.timeline
        if since < 0 or (self.source.length is not None and not self.config.loop and since >= self.source.length):
            self._send(sub, reset_frame(since, 0, self.config.history))
            return
        timeline.count = since
        if self.source.length is not None:
            timeline.index = since % self.source.length
        elif isinstance(timeline.state, list):
            timeline.state[0] = since  # $seq goes on from since + 1

    def _fire(self, timeline: Timeline, now: float) -> float | None:
        """Send the timeline's next frame; return when the one after is due (None: finished)."""
        return self._fire_all([timeline], now)[0]

    def _fire_all(self, timelines: list[Timeline], now: float) -> list[float | None]:
        """Send the next frame of every timeline due in one clock tick; when each is due next (None: finished).

        All the frames are rendered first and sent after: two tight loops, instead
        of one that alternates rendering with a system call per client, keep the
        interpreter's caches warm, which makes rendering a per-client frame about
        twice as cheap when a thousand timelines are due (bench/RESULTS.md).
        """
        schedule, source, rng = self.schedule, self.source, self.rng
        frames = []
        if self.frame_seed is not None:  # a shared timeline held in a cluster: its one timeline
            rng.seed(f"{self.frame_seed}#{timelines[0].count + 1}")
        for timeline in timelines:
            index = schedule.take(timeline)
            frames.append(None if index is None else source.frame(index, timeline.state, rng))
        send = self.write if self.faults is None else self._send  # one call less per frame without faults
        dues: list[float | None] = []
        for timeline, frame in zip(timelines, frames, strict=True):
            sub = timeline.subscriber
            if frame is None:
                self._finish(timeline)
                dues.append(None)
                continue
            seq = timeline.count
            if sub is None:
                self._last_shared = frame
                self.history.append((seq, frame))
                for each in list(self._subscribers.values()):
                    send(each, frame, seq)
                if self.relay is not None:
                    self.relay(seq, frame, timeline)
            elif sub.timeline is not timeline:
                dues.append(None)  # its client left while this tick was being sent
                continue
            else:
                send(sub, frame, seq)
            due = schedule.next_due(timeline, now)
            if due is None:
                self._finish(timeline)  # that was the last entry
            dues.append(due)
        return dues

    def _finish(self, timeline: Timeline) -> None:
        """A non-looping replay ran out: close its client(s) and rewind."""
        if self.role is not None:
            self._finish_cluster_run(timeline)
        elif timeline.subscriber is not None:
            self.unsubscribe(timeline.subscriber.client)
            self.on_finished(timeline.subscriber.client)
        else:
            self._shared = None
            self._last_shared = None  # the next client starts a fresh run at entry 0
            for client in list(self._subscribers):
                self.unsubscribe(client)
                self.on_finished(client)

    # -- in a cluster (streams.cluster): one process runs a shared timeline's clock, every process sends

    def follow(self) -> None:
        """Stop running the shared timeline's clock here: its frames come from another process (``deliver``)."""
        if self._shared is None:
            self._shared = Timeline(None, self.source.new_state(), IOLoop.current().time())
        self.clock.remove(self._shared)
        self.role, self.relay, self.frame_seed = "follower", None, None

    def hold(self, position: dict[str, Any] | None, relay: Callable[[int, Frame, Timeline], None],
             frame_seed: str | None = None) -> None:
        """Run the shared timeline's clock here, for every process, from ``position`` (a ``position_of``) when
        it is ahead of what this process saw; each frame is handed to ``relay``. With ``frame_seed`` (the
        cluster's random_seed and the stream) frame N draws the same values whichever process renders it."""
        self.follow()
        timeline = self._shared
        if position is not None and position.get("count", 0) > timeline.count:
            timeline.count, timeline.index = position["count"], position.get("index", 0)
            if isinstance(timeline.state, list) and isinstance(position.get("state"), list):
                timeline.state = list(position["state"])
        self.role, self.relay, self.frame_seed = "holder", relay, frame_seed
        now = IOLoop.current().time()
        # the next frame one interval after the last one any process sent: a failover leaves no extra gap
        due = max(now, self._delivered_at + self.schedule.interval_s) if timeline.count else now
        if self.paused:  # taken over while paused: resume() adds the whole pause to every due time, so take
            due -= now - self._paused_at  # out the part of it that has passed already
        rebase(timeline, due)
        self.clock.add(timeline)
        if not self.paused:
            self.clock.start()

    def deliver(self, seq: int, frame: Frame | None, position: dict[str, Any]) -> None:
        """A frame of the shared timeline from the process that holds its clock (None: a replay finished)."""
        timeline = self._shared
        if self.role != "follower" or timeline is None or seq <= timeline.count and frame is not None:
            return  # not following (any more), or a frame already seen
        timeline.count, timeline.index = seq, position.get("index", 0)
        if isinstance(timeline.state, list) and isinstance(position.get("state"), list):
            timeline.state = list(position["state"])
        self._delivered_at = IOLoop.current().time()
        if frame is None:
            self._finish_cluster_run(timeline)
            return
        self._last_shared = frame
        self.history.append((seq, frame))
        for each in list(self._subscribers.values()):
            self._send(each, frame, seq)

    def _join_cluster_timeline(self, sub: Subscriber, since: int | None) -> None:
        """A client joins a timeline that runs cluster-wide: it catches up, or gets the current frame."""
        if since is not None and self._resume_shared(sub, since):
            return
        if self.config.send_on_connect and not self.paused and self._last_shared is not None:
            self._send(sub, self._last_shared, self._shared.count)

    def _finish_cluster_run(self, timeline: Timeline) -> None:
        """A non-looping shared replay ran out in a cluster: every process closes its clients; the next run
        starts at entry 0, one interval later."""
        timeline.index = 0
        if self.role == "holder":
            self.relay(timeline.count, None, timeline)
            self.clock.remove(timeline)
            rebase(timeline, IOLoop.current().time() + self.schedule.interval_s)
            self.clock.add(timeline)  # the clock keeps it although this tick said "finished"
        self._last_shared = None
        for client in list(self._subscribers):
            self.unsubscribe(client)
            self.on_finished(client)

    # -- sending

    def _send(self, sub: Subscriber, frame: Frame, seq: int | None = None) -> bool:
        """Send one frame (number ``seq`` of its timeline) to one client, through the faults if they are on."""
        if self.faults is None:
            return self.write(sub, frame, seq)
        try:
            return self.faults.deliver(self, sub, frame, seq)
        except Exception:  # noqa: BLE001 - escaping here would stop the clock: for a shared timeline, everyone's
            self._log_failure(sub)
            return False

    def write(self, sub: Subscriber, frame: Frame, seq: int | None = None) -> bool:
        """Send one frame (number ``seq`` of its timeline; None: pushed) to one client now; False if it could not."""
        client = sub.client
        try:
            if not client.is_open:
                return False  # closing or gone; it unsubscribes when it is gone
            if client.pending_bytes > self.server.max_pending_bytes:
                return self._too_slow(sub)
            if not client.send(frame, seq):
                return False
        except Exception:  # noqa: BLE001 - one client's failure must not stop the others or the clock
            self._log_failure(sub)
            return False
        self.frames_sent += 1
        return True

    def _log_failure(self, sub: Subscriber) -> None:
        """Log an unexpected send error once per client, not once per frame."""
        if not sub.failed:
            sub.failed = True
            log.exception("stream %s: sending to a client failed; dropping its frames", self.name)

    def _too_slow(self, sub: Subscriber) -> bool:
        if self.server.slow_clients == "drop":
            self.frames_dropped += 1
            return False
        log.info("stream %s: closing a client that stopped reading (over %d unsent bytes)",
                 self.name, self.server.max_pending_bytes)
        self.unsubscribe(sub.client)
        sub.client.close(1008, "client too slow")
        # the peer is not reading, so the close frame may never reach it: drop TCP after a grace period
        IOLoop.current().call_later(SLOW_CLIENT_GRACE_S, sub.client.abort)
        return False

    # -- reporting

    def subscriptions(self) -> dict[str, int]:
        """The clients by how they came: connected to the stream's path, or subscribed to it as a topic."""
        topics = sum(sub.topic for sub in self._subscribers.values())
        return {"direct": len(self._subscribers) - topics, "topic": topics}

    def transports(self) -> dict[str, int]:
        """The clients by the transport they came by: websocket, sse, ..."""
        counts: dict[str, int] = {}
        for client in self._subscribers:
            kind = getattr(client, "kind", "other")
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def describe(self) -> dict[str, Any]:
        """The stream as the HTTP API shows it."""
        cfg = self.config
        return {
            "name": cfg.name,
            "path": cfg.path,
            "source": cfg.source,
            "interval_ms": cfg.interval_ms,
            "timeline": cfg.timeline,
            "clients": self.clients,
            "subscriptions": self.subscriptions(),
            "transports": self.transports(),
            "frames_sent": self.frames_sent,
            "paused": self.paused,
            "faults": self.faults.describe() if self.faults is not None else None,
            "auth": cfg.auth.describe() if cfg.auth is not None else None,
            "sse_event": cfg.sse_event,
            # where a Socket.IO client finds it (None: a topic-only stream in no namespace)
            "socketio": ({"namespace": cfg.socketio_namespace, "event": cfg.socketio_event}
                         if cfg.socketio_namespace is not None else None),
        }


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _frames_differ(old: Source, new: Source) -> bool:
    """Whether two sources would send different frames."""
    if type(old) is not type(new):
        return True
    if new.length is None:
        return old.template.source_text != new.template.source_text
    return [f.data for f in old.frames] != [f.data for f in new.frames] or old.offsets_s != new.offsets_s


def reset_frame(since: int, before_next: int, history: int) -> Frame:
    """What a resuming client gets when what it missed is not kept (SSE: event reset); the live frames that
    follow start at number ``before_next + 1``."""
    return ResetFrame.text(f'{{"reset":{{"since":{since},"next":{before_next + 1},"history":{history}}}}}')


class ResetFrame(JsonFrame):
    """The frame that tells a resuming client it missed frames that are no longer kept."""

    __slots__ = ()
    event = "reset"


def _close_finished(client: Client) -> None:
    client.end(1000, "replay finished")
