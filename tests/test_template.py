"""The $-generator mini-language: every generator, nesting, state per timeline and errors."""

from __future__ import annotations

import datetime
import json
import time
from itertools import pairwise
from random import Random

import pytest

from streams.template import TemplateError, compile_template


def frames(template, n, seed=1, state=None):
    compiled = compile_template(template)
    rng, state = Random(seed), state if state is not None else compiled.new_state()
    return [json.loads(compiled.render(state, rng)) for _ in range(n)]


def test_constant_template_renders_as_compact_json():
    assert frames({"a": [1, "x", None, True], "b": {"c": 1.5}}, 1) == [{"a": [1, "x", None, True], "b": {"c": 1.5}}]
    assert compile_template({"a": 1}).render([0], Random()) == '{"a":1}'


def test_int_stays_within_both_bounds_inclusive():
    values = [f["v"] for f in frames({"v": {"$int": [0, 3]}}, 400)]
    assert set(values) == {0, 1, 2, 3}


def test_float_rounds_to_digits_and_stays_in_range():
    values = [f["v"] for f in frames({"v": {"$float": [1, 2, 2]}}, 200)]
    assert all(1 <= v <= 2 and round(v, 2) == v for v in values)


def test_choice_picks_every_option_including_nested_generators():
    values = [json.dumps(f["v"]) for f in frames({"v": {"$choice": ["a", {"n": {"$int": [5, 5]}}]}}, 100)]
    assert set(values) == {'"a"', '{"n": 5}'}


def test_walk_moves_by_at_most_step_and_stays_bounded():
    values = [f["v"] for f in frames({"v": {"$walk": {"start": 10, "step": 3, "min": 0, "max": 20}}}, 300)]
    assert values[0] == 10
    assert all(abs(b - a) <= 3 for a, b in pairwise(values))
    assert 0 <= min(values) and max(values) <= 20
    assert len(set(values)) > 5


def test_float_walk_rounds_to_digits():
    walk = {"$walk": {"start": 1.5, "step": 0.5, "min": 0, "max": 3, "digits": 1}}
    values = [f["v"] for f in frames({"v": walk}, 50)]
    assert all(round(v, 1) == v and 0 <= v <= 3 for v in values)


def test_counter_counts_from_start_by_step():
    assert [f["v"] for f in frames({"v": {"$counter": {"start": 100, "step": 5}}}, 4)] == [100, 105, 110, 115]
    assert [f["v"] for f in frames({"v": {"$counter": True}}, 3)] == [0, 1, 2]


def test_seq_is_the_frame_number_from_1():
    assert [f["n"] for f in frames({"n": {"$seq": True}}, 3)] == [1, 2, 3]


def test_now_iso_and_epoch_ms_are_the_current_time():
    before = time.time()
    frame = frames({"iso": {"$now": "iso"}, "ms": {"$now": "epoch_ms"}}, 1)[0]
    parsed = datetime.datetime.strptime(frame["iso"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert abs(parsed.timestamp() - before) < 2
    assert frame["iso"].endswith("Z") and len(frame["iso"]) == 24  # like Date.toISOString()
    assert abs(frame["ms"] / 1000 - before) < 2


def test_literal_emits_its_value_unevaluated():
    assert frames({"v": {"$literal": {"$int": [1, 2]}}}, 1) == [{"v": {"$int": [1, 2]}}]


def test_generators_nest_inside_lists():
    frame = frames({"points": [{"$int": [1, 1]}, {"x": {"$seq": True}}]}, 1)[0]
    assert frame == {"points": [1, {"x": 1}]}


def test_braces_in_literal_strings_survive_formatting():
    assert frames({"s": "{message} {}", "n": {"$seq": True}}, 1) == [{"s": "{message} {}", "n": 1}]


def test_state_is_per_timeline():
    compiled = compile_template({"n": {"$seq": True}, "c": {"$counter": {"start": 1}}})
    rng = Random(1)
    a, b = compiled.new_state(), compiled.new_state()
    compiled.render(a, rng)
    compiled.render(a, rng)
    assert json.loads(compiled.render(b, rng)) == {"n": 1, "c": 1}
    assert json.loads(compiled.render(a, rng)) == {"n": 3, "c": 3}


def test_same_seed_gives_same_frames():
    template = {"v": {"$int": [0, 1000000]}, "w": {"$walk": {"start": 0, "step": 10, "min": -100, "max": 100}}}
    assert frames(template, 20, seed=42) == frames(template, 20, seed=42)
    assert frames(template, 20, seed=42) != frames(template, 20, seed=43)


@pytest.mark.parametrize("template, path, message", [
    ({"a": {"$rand": [1, 2]}}, ("a", "$rand"), "unknown generator '$rand'"),
    ({"a": {"$inte": [1, 2]}}, ("a", "$inte"), "did you mean '$int'?"),
    ({"a": [{"$int": [5, 1]}]}, ("a", 0, "$int"), "min must be <= max"),
    ({"a": {"$int": [1.5, 2]}}, ("a", "$int"), "must be integers"),
    ({"a": {"$int": 3}}, ("a", "$int"), "takes [min, max]"),
    ({"a": {"$choice": []}}, ("a", "$choice"), "non-empty list"),
    ({"a": {"$walk": {"start": 50, "step": 1, "min": 0}}}, ("a", "$walk"), "missing ['max']"),
    ({"a": {"$walk": {"start": 500, "step": 1, "min": 0, "max": 10}}}, ("a", "$walk"), "min <= start <= max"),
    ({"a": {"$now": "unix"}}, ("a", "$now"), "iso or epoch_ms"),
    ({"a": {"$seq": 1}}, ("a", "$seq"), "takes true"),
    ({"a": {"$int": [1, 2], "b": 1}}, ("a",), "only its one key"),
])
def test_bad_generators_are_errors_with_their_path(template, path, message):
    with pytest.raises(TemplateError) as caught:
        compile_template(template)
    assert caught.value.path == path
    assert message in caught.value.message


def test_a_template_of_only_ints_renders_the_same_frames_as_mixed_ones():
    """The all-$int fast path draws the same numbers in the same order as the general path."""
    ints = {"a": {"$int": [0, 1000000]}, "b": [{"$int": [-5, 5]}, {"$int": [7, 7]}], "name": "人像"}
    mixed = {**ints, "c": {"$seq": True}}  # a generator that draws nothing: the general path
    fast = frames(ints, 50, seed=3)
    general = frames(mixed, 50, seed=3)
    assert [{k: v for k, v in f.items() if k != "c"} for f in general] == fast
    assert all(0 <= f["a"] <= 1000000 and -5 <= f["b"][0] <= 5 and f["b"][1] == 7 for f in fast)
