"""Fault injection: a stream that misbehaves on purpose, so front-ends can test their failure handling.

A stream's optional ``faults:`` block (FaultsConfig) switches on scheduled
disconnects, added latency, and dropped, duplicated, garbled or reordered
frames. Everything is off by default.

Every random decision comes from the injector's own generator, seeded from
``random_seed`` and the stream's name when a seed is set: a seeded run
misbehaves the same way each time, and turning faults on does not change the
data the stream sends (that comes from the stream's separate generator).

Timers: a client has at most two pending one-shot timers, its disconnect and
its next delayed frame, and both are cancelled when it leaves. Delayed frames
wait in a per-client queue, so latency never reorders frames unless
``reorder`` is on.
"""

from __future__ import annotations

import heapq
import logging
from random import Random
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop

from config import FaultsConfig
from streams.sources import Frame

if TYPE_CHECKING:
    from streams.stream import Stream, Subscriber

log = logging.getLogger("mockws.faults")

REORDER_RATE = 0.25  # reorder without latency: share of frames held back until after the next one
DISCONNECT_JITTER = 0.1  # each client is disconnected disconnect_every_s +- 10% after it connected
MALFORMED_MARK = "<malformed>"
DISCONNECT_REASON = "fault injection"


def malformed(frame: Frame) -> Frame:
    """The first half of a frame followed by ``<malformed>``: never valid JSON, still valid UTF-8.

    Cut inside a JSON string, the string is left unterminated; cut anywhere
    else, ``<`` cannot follow. Text is cut between characters, not bytes,
    because a text frame with broken UTF-8 would fail the whole connection.
    """
    if frame.binary:
        return Frame(frame.data[: len(frame.data) // 2] + MALFORMED_MARK.encode(), binary=True)
    text = frame.data.decode("utf-8")
    return Frame.text(text[: len(text) // 2] + MALFORMED_MARK)


class _ClientFaults:
    """What the injector keeps for one client."""

    __slots__ = ("disconnect", "queue", "timer", "timer_due", "last_due", "held", "next_seq", "max_sent")

    def __init__(self) -> None:
        self.disconnect: object | None = None  # IOLoop timeout handle
        self.queue: list[tuple[float, int, Frame, int | None]] = []  # delayed: (due, order, frame, seq), a heap
        self.timer: object | None = None  # fires when the queue's first frame is due
        self.timer_due = 0.0
        self.last_due = 0.0  # without reorder, a frame is never due before the one before it
        self.held: tuple[int, Frame, int | None] | None = None  # reorder without latency: out after the next one
        self.next_seq = 0  # order in which frames reached the injector
        self.max_sent = -1  # highest seq written so far: a lower one going out later was reordered


class FaultInjector:
    """Applies a FaultsConfig between a stream and its clients (implements streams.stream.FaultInjector)."""

    def __init__(self, config: FaultsConfig, rng: Random) -> None:
        self.config = config
        self.rng = rng
        self.counters = {"dropped": 0, "duplicated": 0, "malformed": 0, "delayed": 0, "reordered": 0,
                         "disconnects": 0}
        self.clients: set[_ClientFaults] = set()  # the state of every subscribed client

    # -- the stream's hooks

    def deliver(self, stream: Stream, sub: Subscriber, frame: Frame, seq: int | None = None) -> bool:
        """Drop, garble, duplicate, delay or hold back ``frame`` (number ``seq`` of its timeline); True if (a copy
        of) it went out now."""
        config, rng = self.config, self.rng
        state = sub.fault_state or self._state(sub)
        if config.drop_rate and rng.random() < config.drop_rate:
            self.counters["dropped"] += 1
            return False
        if config.malformed_rate and rng.random() < config.malformed_rate:
            frame = malformed(frame)
            self.counters["malformed"] += 1
        copies = 1
        if config.duplicate_rate and rng.random() < config.duplicate_rate:
            copies = 2
            self.counters["duplicated"] += 1
        sent = [self._schedule(stream, sub, state, frame, seq) for _ in range(copies)]
        return sent[0]

    def on_subscribe(self, stream: Stream, sub: Subscriber) -> None:
        """Schedule the client's disconnect, if disconnects are on."""
        state = self._state(sub)
        if self.config.disconnect_every_s is not None:
            jitter = self.rng.uniform(1 - DISCONNECT_JITTER, 1 + DISCONNECT_JITTER)
            state.disconnect = IOLoop.current().call_later(self.config.disconnect_every_s * jitter,
                                                           self._disconnect, sub)

    def on_unsubscribe(self, stream: Stream, sub: Subscriber) -> None:
        """Cancel the client's timers and forget the frames held for it."""
        state: _ClientFaults | None = sub.fault_state
        if state is None:
            return
        io_loop = IOLoop.current()
        for timer in (state.disconnect, state.timer):
            if timer is not None:
                io_loop.remove_timeout(timer)
        self.clients.discard(state)
        sub.fault_state = None

    def describe(self) -> dict[str, Any]:
        """The settings (shaped like the `faults:` block) and what has been injected so far."""
        return {**self.config.model_dump(mode="json"), "counters": dict(self.counters)}

    # -- scheduling

    def pending_timers(self) -> int:
        """Timers the injector holds for its clients: disconnects and delayed frames."""
        return sum((state.disconnect is not None) + (state.timer is not None) for state in self.clients)

    def _state(self, sub: Subscriber) -> _ClientFaults:
        sub.fault_state = state = _ClientFaults()
        self.clients.add(state)
        return state

    def _schedule(self, stream: Stream, sub: Subscriber, state: _ClientFaults, frame: Frame,
                  frame_seq: int | None) -> bool:
        """Send one frame now, hold it back, or queue it for later; True if it went out now."""
        seq = state.next_seq
        state.next_seq += 1
        latency = self.config.latency_ms
        if latency is not None:
            due = IOLoop.current().time() + self.rng.uniform(*latency) / 1000
            if not self.config.reorder:
                due = state.last_due = max(due, state.last_due)
            heapq.heappush(state.queue, (due, seq, frame, frame_seq))
            self.counters["delayed"] += 1
            self._arm(stream, sub, state)
            return False
        if self.config.reorder:
            if state.held is None and self.rng.random() < REORDER_RATE:
                state.held = (seq, frame, frame_seq)
                return False
            sent = self._write(stream, sub, state, seq, frame, frame_seq)
            if state.held is not None:
                held, state.held = state.held, None
                self._write(stream, sub, state, *held)
            return sent
        return self._write(stream, sub, state, seq, frame, frame_seq)

    def _write(self, stream: Stream, sub: Subscriber, state: _ClientFaults, seq: int, frame: Frame,
               frame_seq: int | None) -> bool:
        if seq < state.max_sent:
            self.counters["reordered"] += 1
        state.max_sent = max(state.max_sent, seq)
        return stream.write(sub, frame, frame_seq)

    def _arm(self, stream: Stream, sub: Subscriber, state: _ClientFaults) -> None:
        """Make sure a timer fires when the client's first queued frame is due."""
        due = state.queue[0][0]
        if state.timer is not None:
            if state.timer_due <= due:
                return
            IOLoop.current().remove_timeout(state.timer)
        state.timer_due = due
        state.timer = IOLoop.current().call_at(due, self._release, stream, sub, state)

    def _release(self, stream: Stream, sub: Subscriber, state: _ClientFaults) -> None:
        """Send every queued frame that is due, in due order."""
        state.timer = None
        if sub.fault_state is not state:
            return  # the client left (its timer should have been cancelled)
        now = IOLoop.current().time() + 0.001  # a frame due within a millisecond goes now, not after a re-arm
        while state.queue and state.queue[0][0] <= now:
            _, seq, frame, frame_seq = heapq.heappop(state.queue)
            self._write(stream, sub, state, seq, frame, frame_seq)
            if sub.fault_state is not state:
                return  # the write found it too slow and closed it
        if state.queue:
            self._arm(stream, sub, state)

    def _disconnect(self, sub: Subscriber) -> None:
        state: _ClientFaults | None = sub.fault_state
        if state is not None:
            state.disconnect = None
        if not sub.client.is_open:
            return
        self.counters["disconnects"] += 1
        code = self.config.disconnect_code
        log.debug("fault injection: disconnecting a client (%s)", code or "abrupt TCP close")
        if code is not None:
            sub.client.close(code, DISCONNECT_REASON)
        else:
            sub.client.abort()  # no close frame: the browser reports 1006
