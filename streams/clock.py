"""A stream's one clock: wakes up when timelines are due and fires them.

Why not one ``PeriodicCallback`` per client: thousands of timers cost a timer
callback per client per tick and leak when nobody stops them. Why not one
``PeriodicCallback`` per stream: per-client timelines each keep the phase of
their own connection (like the original ``setInterval`` per socket), and
recorded replays have irregular gaps. So the clock keeps timelines in buckets
of a few milliseconds and sets a single ``IOLoop.call_at`` for the earliest
bucket: timelines due within the same bucket are served by one wake-up, and an
idle stream has no timer at all.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Protocol

from tornado.ioloop import IOLoop

FIRING = -1  # an item's bucket while its tick is being sent (real buckets are positive)


class Timed(Protocol):
    """Anything the clock can schedule."""

    due: float  # IOLoop time when it should fire
    bucket: int | None


class Clock:
    """Fires each scheduled item when its due time comes; one timer at most."""

    def __init__(self, fire: Callable[[list[Timed], float], list[float | None]], quantum_s: float) -> None:
        self._fire = fire  # fires the items due together; returns each one's next due time, or None to drop it
        self.quantum_s = quantum_s
        self._buckets: dict[int, dict[Timed, None]] = {}
        self._keys: list[int] = []  # heap of bucket keys; may hold keys of emptied buckets
        self._timer: object | None = None
        self._timer_key: int | None = None
        self._firing = False  # inside _run: it arms the timer once at the end
        self.running = False

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    @property
    def armed(self) -> bool:
        """Whether a timer is set (an idle or stopped clock has none)."""
        return self._timer is not None

    def items(self) -> list[Timed]:
        """Every scheduled item."""
        return [item for bucket in self._buckets.values() for item in bucket]

    def add(self, item: Timed) -> None:
        """Schedule ``item`` at ``item.due``."""
        key = math.ceil(item.due / self.quantum_s)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = {}
            heapq.heappush(self._keys, key)
        bucket[item] = None
        item.bucket = key
        if self.running and not self._firing and (self._timer_key is None or key < self._timer_key):
            self._arm(key)

    def remove(self, item: Timed) -> None:
        """Unschedule ``item`` (no-op if it is not scheduled)."""
        bucket = self._buckets.get(item.bucket) if item.bucket is not None else None
        if bucket is not None:
            bucket.pop(item, None)
            if not bucket:
                del self._buckets[item.bucket]
        item.bucket = None

    def set_quantum(self, quantum_s: float) -> None:
        """Change the bucket width, re-bucketing what is scheduled."""
        items = self.items()
        self._buckets.clear()
        self._keys.clear()
        self._disarm()
        self.quantum_s = quantum_s
        for item in items:
            self.add(item)
        if self.running:
            self._arm_earliest()

    def start(self) -> None:
        """Start firing (idempotent)."""
        if not self.running:
            self.running = True
            self._arm_earliest()

    def stop(self) -> None:
        """Stop firing; scheduled items stay scheduled (idempotent)."""
        self.running = False
        self._disarm()

    def clear(self) -> None:
        """Stop and forget every item."""
        self.stop()
        for item in self.items():
            item.bucket = None
        self._buckets.clear()
        self._keys.clear()

    def _arm(self, key: int) -> None:
        self._disarm()
        self._timer_key = key
        self._timer = IOLoop.current().call_at(key * self.quantum_s, self._run)

    def _disarm(self) -> None:
        if self._timer is not None:
            IOLoop.current().remove_timeout(self._timer)
        self._timer = self._timer_key = None

    def _arm_earliest(self) -> None:
        while self._keys and self._keys[0] not in self._buckets:
            heapq.heappop(self._keys)  # an emptied bucket
        if self._keys:
            self._arm(self._keys[0])

    def _run(self) -> None:
        self._timer = self._timer_key = None
        now = IOLoop.current().time()
        # the event loop may wake a little early (clock resolution): a bucket
        # within half a quantum of now is due
        horizon = now + self.quantum_s / 2
        self._firing = True
        try:
            while self.running and self._keys and self._keys[0] * self.quantum_s <= horizon:
                bucket = self._buckets.pop(heapq.heappop(self._keys), None)
                if bucket is None:
                    continue
                items = list(bucket)
                for item in items:
                    item.bucket = FIRING
                for item, due in zip(items, self._fire(items, now), strict=True):
                    if item.bucket != FIRING:
                        continue  # removed (or moved) while its tick was being sent: not rescheduled
                    item.bucket = None
                    if due is not None:
                        item.due = due
                        self.add(item)
        finally:
            self._firing = False
            if self.running:
                self._arm_earliest()
