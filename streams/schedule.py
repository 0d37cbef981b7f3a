"""When a stream's frames are due: timelines, due times, looping and rebasing. Pure: no clock, no clients.

A ``Timeline`` is one position in a stream's source (per client, or one for
a shared stream). ``Schedule`` holds a stream's timing settings, converted to
seconds once, and answers the questions the stream's clock asks: which entry
comes next, when the one after is due, where a seek or a new interval puts a
timeline. Times are plain floats (the event loop's clock in the server, any
number in tests).
"""

from __future__ import annotations

from typing import Any

from config import StreamConfig
from streams.sources import Source

RECORDED_QUANTUM_S = 0.002  # clock bucket width for recorded timing: its gaps are irregular


class Timeline:
    """A position in the source, its generator state and the time its next frame is due."""

    __slots__ = ("subscriber", "index", "count", "state", "due", "epoch", "bucket")

    def __init__(self, subscriber: Any, state: Any, due: float) -> None:
        self.subscriber = subscriber  # None for a shared timeline
        self.index = 0  # next entry of a replay source
        self.count = 0  # frames taken so far: the number (SSE id) of the last one, counted across loops
        self.state = state  # generator state of a random source
        self.due = due
        self.epoch = due  # recorded timing: when entry 0 of this loop is (or was) due
        self.bucket: int | None = None  # owned by the Clock


class Schedule:
    """A stream's timing: interval or recorded gaps, speed, looping, and how many entries there are."""

    __slots__ = ("interval_s", "offsets_s", "speed", "length", "loop")

    def __init__(self, config: StreamConfig, source: Source) -> None:
        self.interval_s = config.interval_s
        self.offsets_s = source.offsets_s if config.timing == "recorded" else None
        self.speed = config.speed
        self.length = source.length  # None: endless (a random template)
        self.loop = config.loop

    @property
    def quantum_s(self) -> float:
        """Bucket width of the stream's clock: fine enough to keep every client's phase."""
        if self.offsets_s is not None:
            return RECORDED_QUANTUM_S
        return min(0.010, max(0.0005, self.interval_s / 10))

    def take(self, timeline: Timeline) -> int | None:
        """The entry to send now (advancing the timeline); None when a replay that does not loop is done."""
        if self.length is not None and timeline.index >= self.length:
            if not self.loop:
                return None
            timeline.index = 0
        index = timeline.index
        timeline.index += 1
        timeline.count += 1
        return index

    def next_due(self, timeline: Timeline, now: float) -> float | None:
        """When the timeline's next frame is due, the current one having been sent at ``now``.

        None when a replay that does not loop has just sent its last entry.
        """
        if self.length is not None and not self.loop and timeline.index >= self.length:
            return None
        if self.offsets_s is not None:
            if timeline.index >= len(self.offsets_s):  # looping: the next loop starts one interval after the last
                timeline.epoch = timeline.due + self.interval_s
                return timeline.epoch
            return timeline.epoch + self.offsets_s[timeline.index] / self.speed
        interval = self.interval_s
        due = timeline.due + interval  # a fixed grid from the first frame: no drift
        if due <= now - interval:
            # more than a whole interval late (a long pause): skip the missed
            # ticks rather than bursting them, keeping at most one catch-up frame
            due += interval * int((now - due) / interval)
        return due

    def seek(self, timeline: Timeline, index: int) -> None:
        """Make entry ``index`` the timeline's next one, due when its next frame was due."""
        timeline.index = index
        if self.offsets_s is not None:
            timeline.epoch = timeline.due - self.offsets_s[index] / self.speed

    def retimed_due(self, timeline: Timeline, old_interval_s: float, now: float) -> float:
        """A new interval applies from the last frame sent: 3000 -> 1000 ms speeds up at once."""
        return max(now, timeline.due - old_interval_s + self.interval_s)


def rebase(timeline: Timeline, due: float) -> None:
    """Move a timeline's next frame to ``due``, keeping the recorded gaps after it."""
    timeline.epoch += due - timeline.due
    timeline.due = due
