"""`timing: recorded`: replay with the recorded gaps, at any speed, without drift or per-frame timers."""

from __future__ import annotations

import asyncio
import json
import time
from random import Random

import pytest

from config import ServerConfig, StreamConfig
from streams.sources import Frame, ReplaySource
from streams.stream import Stream, Timeline
from support import pending_timers

# The timing tolerances allow for a loaded 2-core machine; drift itself is tested with a fake clock below.
GAPS_MS = [0, 40, 120, 10, 80]  # recorded offsets 0, 40, 160, 170, 250


def recording(gaps_ms=GAPS_MS):
    """A recorded .jsonl with frames {"i": n} at the given gaps, and a reconnect marker."""
    t, lines = 0, []
    for i, gap in enumerate(gaps_ms):
        t += gap
        lines.append(json.dumps({"t": t, "data": {"i": i}}))
    lines.insert(2, json.dumps({"t": 45, "event": "reconnected"}))
    return "\n".join(lines) + "\n"


@pytest.fixture
def mock_files():
    return {"rec.jsonl": recording()}


async def timed_frames(conn, n):
    out = []
    for _ in range(n):
        message = await asyncio.wait_for(conn.read_message(), 3)
        out.append((time.monotonic(), json.loads(message)["i"]))
    return out


def offsets_ms(received):
    return [round((t - received[0][0]) * 1000) for t, _ in received]


RECORDED = {"file": "rec.jsonl", "timing": "recorded", "interval_ms": 100, "loop": False}


@pytest.mark.config(replay=RECORDED)
@pytest.mark.gen_test
async def test_per_client_replay_keeps_the_recorded_gaps(ws_connect):
    received = await timed_frames(await ws_connect("/replay"), 5)
    assert [i for _, i in received] == [0, 1, 2, 3, 4]  # the marker line is not a frame
    for got, want in zip(offsets_ms(received), [0, 40, 160, 170, 250]):
        assert abs(got - want) <= 40, offsets_ms(received)


@pytest.mark.config(replay={**RECORDED, "speed": 2.0})
@pytest.mark.gen_test
async def test_speed_divides_the_gaps(ws_connect):
    received = await timed_frames(await ws_connect("/replay"), 5)
    for got, want in zip(offsets_ms(received), [0, 20, 80, 85, 125]):
        assert abs(got - want) <= 30, offsets_ms(received)


@pytest.mark.config(replay={**RECORDED, "timeline": "shared"})
@pytest.mark.gen_test
async def test_shared_recorded_replay_reaches_everyone_together(ws_connect):
    first, second = await ws_connect("/replay"), await ws_connect("/replay")
    a, b = await asyncio.gather(timed_frames(first, 5), timed_frames(second, 5))
    assert [i for _, i in a] == [i for _, i in b] == [0, 1, 2, 3, 4]  # the joiner got the current frame first
    for got, want in zip(offsets_ms(a), [0, 40, 160, 170, 250]):
        assert abs(got - want) <= 40, offsets_ms(a)
    assert all(abs(ta - tb) < 0.02 for (ta, _), (tb, _) in zip(a[1:], b[1:]))


@pytest.mark.config(replay={**RECORDED, "loop": True, "interval_ms": 150})
@pytest.mark.gen_test
async def test_loop_waits_interval_after_the_last_frame_then_starts_again(ws_connect):
    received = await timed_frames(await ws_connect("/replay"), 7)
    assert [i for _, i in received] == [0, 1, 2, 3, 4, 0, 1]
    offsets = offsets_ms(received)
    assert abs(offsets[5] - (250 + 150)) <= 40 and abs(offsets[6] - (250 + 150 + 40)) <= 40


@pytest.mark.config(replay={**RECORDED, "loop": True, "interval_ms": 20})
@pytest.mark.gen_test
async def test_no_timer_per_frame_or_per_client(ws_connect, io_loop):
    clients = [await ws_connect("/replay") for _ in range(20)]
    for conn in clients:
        await conn.read_message()
    scheduled = []
    for _ in range(10):
        await asyncio.sleep(0.03)
        scheduled.append(pending_timers(io_loop))
    assert max(scheduled) <= 6, scheduled  # one clock timer, plus the test's own sleep and pings


def test_ten_minutes_at_speed_1_do_not_drift():
    """A fake clock: every frame fires up to 8 ms late, yet the last one stays on its recorded offset."""
    gaps = Random(3)
    offsets, t = [], 0.0
    while t < 600:
        offsets.append(t)
        t += gaps.uniform(0.01, 0.5)
    frames = [Frame.text(str(i)) for i in range(len(offsets))]
    stream = Stream(StreamConfig(name="r", path="/r", source="replay", file="x", timing="recorded", loop=False),
                    ReplaySource(frames, offsets), Random(0), ServerConfig())
    start = 1000.0
    timeline = Timeline(None, None, start)
    lateness = Random(4)
    fired_at = []
    while True:
        now = timeline.due + lateness.uniform(0, 0.008)
        fired_at.append(now)
        due = stream._fire(timeline, now)
        if due is None:
            break
        timeline.due = due
    assert len(fired_at) == len(offsets)
    assert abs(fired_at[-1] - (start + offsets[-1])) < 0.05
    assert max(abs(f - (start + o)) for f, o in zip(fired_at, offsets)) < 0.01
