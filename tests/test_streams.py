"""Pushed streams end to end in-process: frame shape, timing, timelines, replay, replies."""

from __future__ import annotations

import asyncio
import json
import time
from itertools import pairwise

import pytest

from streams.sources import Frame
from support import CATEGORIES, REPLY, read_json, until


async def arrival_times(conn, n, timeout=2.0):
    times = []
    for _ in range(n):
        assert await asyncio.wait_for(conn.read_message(), timeout) is not None
        times.append(time.monotonic())
    return times


@pytest.mark.gen_test
async def test_stats_frames_have_the_seed_shape_and_ranges(ws_connect):
    conn = await ws_connect("/")
    for _ in range(5):
        frame = await read_json(conn)
        assert list(frame) == [key for key, _ in CATEGORIES]
        for key, name in CATEGORIES:
            assert list(frame[key]) == ["yesterdayValue", "name", "toadyValue"]
            assert frame[key]["name"] == name
            for value in (frame[key]["yesterdayValue"], frame[key]["toadyValue"]):
                assert isinstance(value, int) and 0 <= value <= 1000000


@pytest.mark.gen_test
async def test_frames_are_compact_utf8_json(ws_connect):
    conn = await ws_connect("/")
    text = await conn.read_message()
    assert text == json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    assert "人像" in text


@pytest.mark.config(stats={"interval_ms": 100})
@pytest.mark.gen_test
async def test_first_frame_on_connect_then_every_interval(ws_connect):
    start = time.monotonic()
    conn = await ws_connect("/")
    times = await arrival_times(conn, 6)
    assert times[0] - start < 0.08  # with the handshake, not after one interval
    gaps = sorted(b - a for a, b in pairwise(times))
    assert 0.08 < gaps[len(gaps) // 2] < 0.12, gaps  # the median gap is the interval
    assert 0.45 < times[-1] - times[0] < 0.56  # on a fixed grid: a late frame does not shift the next


@pytest.mark.config(stats={"interval_ms": 200, "send_on_connect": False})
@pytest.mark.gen_test
async def test_send_on_connect_false_waits_one_interval(ws_connect):
    conn = await ws_connect("/")
    connected = time.monotonic()  # the server subscribed the client before its handshake answer arrived
    [first] = await arrival_times(conn, 1)
    assert 0.19 < first - connected < 0.35  # one interval, not none and not two


COUNTING = {"n": {"$seq": True}, "c": {"$counter": {"start": 10}}}


@pytest.mark.config(stats={"template": COUNTING})
@pytest.mark.gen_test
async def test_per_client_timelines_each_start_fresh(ws_connect):
    first = await ws_connect("/")
    assert [(await read_json(first))["n"] for _ in range(3)] == [1, 2, 3]
    second = await ws_connect("/")
    assert await read_json(second) == {"n": 1, "c": 10}


@pytest.mark.config(stats={"template": COUNTING, "timeline": "shared"})
@pytest.mark.gen_test
async def test_shared_timeline_sends_the_same_frame_to_everyone(ws_connect):
    first = await ws_connect("/")
    await read_json(first)
    await read_json(first)
    second = await ws_connect("/")
    joined = await read_json(second)  # a late joiner gets the current frame at once
    current = joined["n"]
    assert current >= 2
    a = [await read_json(first) for _ in range(3)]
    b = [await read_json(second) for _ in range(3)]
    assert a == b and [f["n"] for f in a] == [current + 1, current + 2, current + 3]


@pytest.mark.config(stats={"template": COUNTING, "timeline": "shared"})
@pytest.mark.gen_test
async def test_shared_clients_receive_each_frame_at_the_same_moment(ws_connect):
    first, second = await ws_connect("/"), await ws_connect("/")
    await read_json(first), await read_json(second)
    for _ in range(3):
        a = await read_json(first)
        t_a = time.monotonic()
        b = await read_json(second)
        assert a == b and time.monotonic() - t_a < 0.02


@pytest.mark.gen_test
async def test_replay_sends_the_file_in_order(ws_connect, app_config):
    expected = [json.loads(f.data) for f in app_config.sources["replay"].frames]
    conn = await ws_connect("/replay")
    assert [await read_json(conn) for _ in range(len(expected))] == expected


@pytest.mark.gen_test
async def test_replay_loops_back_to_the_first_entry(ws_connect, app_config):
    frames = app_config.sources["replay"].frames
    conn = await ws_connect("/replay")
    received = [await read_json(conn) for _ in range(len(frames) + 2)]
    assert received[len(frames):] == [json.loads(f.data) for f in frames[:2]]


@pytest.mark.config(replay={"loop": False, "interval_ms": 5})
@pytest.mark.gen_test
async def test_replay_without_loop_closes_with_1000_after_last_entry(ws_connect, app_config):
    conn = await ws_connect("/replay")
    count = 0
    while await asyncio.wait_for(conn.read_message(), 2) is not None:
        count += 1
    assert count == app_config.sources["replay"].length
    assert (conn.close_code, conn.close_reason) == (1000, "replay finished")


@pytest.mark.config(replay={"timeline": "shared", "loop": False, "interval_ms": 5})
@pytest.mark.gen_test
async def test_shared_replay_without_loop_closes_everyone_and_restarts_for_the_next(ws_connect, app_config):
    first, second = await ws_connect("/replay"), await ws_connect("/replay")
    for conn in (first, second):
        while await asyncio.wait_for(conn.read_message(), 2) is not None:
            pass
        assert conn.close_code == 1000
    third = await ws_connect("/replay")
    assert await read_json(third) == json.loads(app_config.sources["replay"].frames[0].data)


@pytest.mark.config(replay={"file": "mixed.jsonl"})
@pytest.mark.gen_test
async def test_string_entries_go_out_as_raw_text(ws_connect):
    conn = await ws_connect("/replay")
    assert await conn.read_message() == "plain text"
    assert await conn.read_message() == '{"a":1.5,"b":[1,2]}'


@pytest.fixture
def mock_files():
    return {"mixed.jsonl": '"plain text"\n{"a": 1.50, "b": [1, 2]}\n'}


@pytest.mark.gen_test
async def test_reply_answers_every_text_message(ws_connect):
    conn = await ws_connect("/")
    await conn.read_message()
    await conn.write_message("hello {message} 你好")
    while (message := await conn.read_message()).startswith("{"):
        pass  # skip pushes
    assert message == REPLY.replace("{message}", "hello {message} 你好")


@pytest.mark.gen_test
async def test_stream_without_reply_stays_silent(ws_connect):
    conn = await ws_connect("/replay")
    await conn.write_message("anyone?")
    for _ in range(5):
        assert (await conn.read_message()).startswith("{")


@pytest.mark.config(stats={"template": COUNTING, "timeline": "shared"})
@pytest.mark.gen_test
async def test_a_client_leaving_mid_push_does_not_stop_the_others(ws_connect, hub):
    keep = await ws_connect("/")
    leavers = [await ws_connect("/") for _ in range(5)]
    first = (await read_json(keep))["n"]
    for conn in leavers:
        conn.close()
    received = [(await read_json(keep))["n"] for _ in range(5)]
    assert received == list(range(first + 1, first + 6))  # no frame lost for the one that stayed
    await until(lambda: hub.streams["stats"].clients == 1, 1)


@pytest.mark.gen_test
async def test_idle_stream_has_no_timer(ws_connect, hub):
    conn = await ws_connect("/")
    await conn.read_message()
    clock = hub.streams["stats"].clock
    assert clock.running and clock.armed and len(clock) == 1
    conn.close()
    await until(lambda: not clock.running, 1)
    assert not clock.armed and len(clock) == 0


@pytest.mark.config(stats={"interval_ms": 600_000, "send_on_connect": False})
@pytest.mark.gen_test
async def test_frames_sent_counts_every_frame(ws_connect, hub):
    first, second = await ws_connect("/"), await ws_connect("/")
    await until(lambda: hub.streams["stats"].clients == 2, 1)
    for n in range(3):
        assert hub.push("stats", Frame.text(f"push {n}")) == 2
    for conn in (first, second):
        assert [await conn.read_message() for _ in range(3)] == ["push 0", "push 1", "push 2"]
    assert hub.streams["stats"].frames_sent == 6
