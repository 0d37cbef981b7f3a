"""A shared stream's roles in a cluster, in-process and without Redis: the holder relays, a follower delivers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from streams.cluster import decode, encode, frame_kind, frame_of, position_of
from streams.hub import Hub
from streams.sources import Frame
from support import read_json, until

SHARED = {"timeline": "shared", "interval_ms": 20,
          "template": {"id": {"$seq": True}, "n": {"$walk": {"start": 0, "step": 1, "min": 0, "max": 1000}}}}


@pytest.mark.config(stats=SHARED)
@pytest.mark.gen_test
async def test_a_follower_runs_no_clock_and_sends_what_the_holder_delivers(ws_connect, hub):
    stream = hub.streams["stats"]
    stream.follow()
    conn = await ws_connect("/")
    assert not stream.clock.armed
    stream.deliver(41, Frame.text('{"id":41}'), {"count": 41, "index": 0, "state": [41, 7]})
    assert await read_json(conn) == {"id": 41}
    stream.deliver(41, Frame.text('{"id":41}'), {"count": 41, "index": 0, "state": [41, 7]})  # already seen
    stream.deliver(42, Frame.text('{"id":42}'), {"count": 42, "index": 0, "state": [42, 8]})
    assert await read_json(conn) == {"id": 42}


@pytest.mark.config(stats=SHARED)
@pytest.mark.gen_test
async def test_a_new_holder_continues_the_numbering_and_generator_state_and_relays_each_frame(ws_connect, hub):
    stream = hub.streams["stats"]
    relayed = []
    stream.follow()
    stream.hold({"count": 41, "index": 0, "state": [41, 100]}, lambda seq, frame, tl: relayed.append((seq, frame)))
    conn = await ws_connect("/")
    first = await read_json(conn)
    assert first["id"] == 42 and abs(first["n"] - 100) <= 1  # walked on from 100, not from 0
    await until(lambda: len(relayed) >= 2, 2)
    assert relayed[0][0] == 42 and json.loads(relayed[0][1].data) == first


@pytest.mark.config(stats={"timeline": "shared", "interval_ms": 10,
                            "template": {"a": {"$int": [0, 1_000_000]}, "b": {"$float": [0, 1, 6]}}})
@pytest.mark.gen_test
async def test_with_a_seed_a_holder_that_takes_over_draws_what_the_one_before_would_have(app_config, hub):
    """Process A renders frames 1-6; process B takes the clock after A's frame 3 (a failover): B's 4-6 are A's."""
    def hold(hub, count, frames):
        stream = hub.streams["stats"]
        stream.follow()
        stream.hold({"count": count, "index": 0}, lambda seq, frame, tl: frames.setdefault(seq, frame.data),
                    frame_seed="7/stats/frames")
        return stream

    from_a, from_b = {}, {}
    hold(hub, 0, from_a)
    other = Hub(app_config)  # a second process, its generator fresh
    try:
        hold(other, 3, from_b)
        await until(lambda: len(from_a) >= 6 and len(from_b) >= 3, 2)
    finally:
        other.stop()
    assert [from_b[n] for n in (4, 5, 6)] == [from_a[n] for n in (4, 5, 6)]
    assert len({from_a[n] for n in range(1, 7)}) == 6  # and the frames do differ from one another


@pytest.mark.config(stats=SHARED)
@pytest.mark.gen_test
async def test_a_clock_taken_over_while_paused_runs_again_as_soon_as_it_is_resumed(ws_connect, hub):
    """A process that joined a paused cluster and then took the clock (its holder died) must not add the part
    of the pause that passed before it held the clock twice."""
    stream = hub.streams["stats"]
    stream.follow()
    stream.pause()
    await asyncio.sleep(0.5)  # paused all along; then the holder dies and this process takes the clock
    stream.hold({"count": 41, "index": 0}, lambda seq, frame, timeline: None)
    conn = await ws_connect("/")
    await asyncio.sleep(0.2)
    stream.resume()
    resumed = time.monotonic()
    first = await read_json(conn)
    assert "id" in first and time.monotonic() - resumed < 0.15  # within a 20 ms tick, not the 0.7 s paused


def test_a_cluster_message_carries_the_frame_as_it_is():
    frame = Frame(b"\x00\x01\n", binary=True)
    header, payload = decode(encode({"v": "frame", "k": frame_kind(frame)}, frame.data))
    again = frame_of(header["k"], payload)
    assert (again.data, again.binary, again.is_json) == (frame.data, True, False)


def test_the_position_is_what_a_new_holder_needs():
    class Timeline:
        count, index, state = 5, 2, [5, 1.5]
    assert position_of(Timeline()) == {"count": 5, "index": 2, "state": [5, 1.5]}
