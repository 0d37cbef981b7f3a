"""The pure part of a stream: which entry comes next and when, on a fake clock (plain numbers)."""

from __future__ import annotations

from random import Random

import pytest

from config import StreamConfig
from streams.schedule import RECORDED_QUANTUM_S, Schedule, Timeline, rebase
from streams.sources import Frame, RandomSource, ReplaySource
from streams.template import compile_template

ENTRIES = [Frame.text(str(i)) for i in range(3)]


def random_schedule(interval_ms: int = 100) -> Schedule:
    config = StreamConfig(name="s", path="/s", source="random", interval_ms=interval_ms, template={"a": 1})
    return Schedule(config, RandomSource(compile_template({"a": 1})))


def replay_schedule(loop: bool = True, offsets: list[float] | None = None, **settings) -> Schedule:
    config = StreamConfig(name="r", path="/r", source="replay", file="x", loop=loop,
                          timing="recorded" if offsets else "interval", **settings)
    return Schedule(config, ReplaySource(ENTRIES, offsets))


def test_intervals_are_converted_to_seconds_once():
    assert random_schedule(250).interval_s == 0.25


def test_a_late_tick_does_not_shift_the_grid():
    schedule = random_schedule(100)
    timeline = Timeline(None, None, 10.0)
    lateness = Random(1)
    for _ in range(1000):
        schedule.take(timeline)
        now = timeline.due + lateness.uniform(0, 0.05)  # every tick up to half an interval late
        timeline.due = schedule.next_due(timeline, now)
    assert timeline.due == pytest.approx(10.0 + 1000 * 0.1)


def test_after_a_long_stall_missed_ticks_are_skipped_not_burst():
    schedule = random_schedule(100)
    timeline = Timeline(None, None, 10.0)
    schedule.take(timeline)
    due = schedule.next_due(timeline, now=15.03)  # the loop stalled for five seconds
    assert 15.03 - 0.1 < due <= 15.03  # one catch-up frame, due now, instead of 49 missed ones
    assert (due - 10.0) / 0.1 == pytest.approx(round((due - 10.0) / 0.1))


def test_a_replay_that_loops_starts_again_at_entry_0():
    schedule = replay_schedule(loop=True)
    timeline = Timeline(None, None, 0.0)
    assert [schedule.take(timeline) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert schedule.next_due(timeline, 0.0) is not None


def test_a_replay_that_does_not_loop_has_no_next_frame_after_its_last_entry():
    schedule = replay_schedule(loop=False)
    timeline = Timeline(None, None, 0.0)
    taken = [schedule.take(timeline), schedule.take(timeline)]
    assert schedule.next_due(timeline, 0.0) is not None
    taken.append(schedule.take(timeline))
    assert schedule.next_due(timeline, 0.0) is None and taken == [0, 1, 2]
    assert schedule.take(timeline) is None


def test_recorded_gaps_come_from_the_offsets_and_speed():
    schedule = replay_schedule(offsets=[0.0, 0.04, 0.16], speed=2.0, interval_ms=100)
    timeline = Timeline(None, None, 5.0)
    dues = []
    for _ in range(4):
        schedule.take(timeline)
        timeline.due = schedule.next_due(timeline, timeline.due)
        dues.append(timeline.due)
    # entries 1 and 2 at their offsets / 2; the loop restarts one interval after the last entry
    assert dues[:3] == pytest.approx([5.02, 5.08, 5.18])
    assert dues[3] == pytest.approx(5.18 + 0.02)


def test_seek_on_recorded_timing_keeps_the_next_due_time_and_the_gaps_after_it():
    schedule = replay_schedule(offsets=[0.0, 0.04, 0.16])
    timeline = Timeline(None, None, 7.0)
    schedule.seek(timeline, 1)
    assert timeline.index == 1 and timeline.due == 7.0
    schedule.take(timeline)
    assert schedule.next_due(timeline, 7.0) == pytest.approx(7.0 + 0.16 - 0.04)


def test_a_shorter_interval_applies_from_the_last_frame_sent():
    old, new = random_schedule(3000), random_schedule(1000)
    timeline = Timeline(None, None, 103.0)  # the last frame went out at 100
    assert new.retimed_due(timeline, old.interval_s, now=100.5) == pytest.approx(101.0)
    assert new.retimed_due(timeline, old.interval_s, now=102.0) == 102.0  # already overdue: now


def test_rebase_moves_a_timeline_with_its_recorded_epoch():
    timeline = Timeline(None, None, 10.0)
    timeline.epoch = 9.5
    rebase(timeline, 12.0)
    assert (timeline.due, timeline.epoch) == (12.0, 11.5)


def test_clock_buckets_are_a_tenth_of_the_interval_within_bounds():
    assert random_schedule(100).quantum_s == 0.01
    assert random_schedule(20).quantum_s == pytest.approx(0.002)
    assert random_schedule(1).quantum_s == 0.0005
    assert replay_schedule(offsets=[0.0, 0.1, 0.2]).quantum_s == RECORDED_QUANTUM_S
