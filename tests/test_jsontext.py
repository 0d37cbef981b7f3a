"""Frames are byte-for-byte what JavaScript's JSON.stringify produces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from random import Random

import pytest

from streams.jsontext import dumps, js_number
from streams.template import compile_template
from support import STATS_TEMPLATE

NUMBERS = [0.0, -0.0, 1.0, -2.0, 0.5, 0.1 + 0.2, 123.456, 1e-7, 1.5e-7, 0.000001, 1e16, 1e21, 1.5e21, 1e300,
           -1.234e-5, 2 ** 53 + 0.0, 100.25, 3.14159, float("nan"), float("inf")]
VALUES = [{"a": "人像", "b": "quote \" back \\ nl \n tab \t ctl \x01 del \x7f", "c": [1, 2.5, None, True, False]},
          {"nested": {"list": [{}, []], "emoji": "📈", "u2028": "\u2028"}}]


@pytest.mark.parametrize("x, expected", [(1.0, "1"), (-0.0, "0"), (1e-7, "1e-7"), (1e16, "10000000000000000"),
                                         (1e21, "1e+21"), (0.1 + 0.2, "0.30000000000000004"),
                                         (0.000001, "0.000001"), (123.456, "123.456"), (float("nan"), "null")])
def test_js_number_matches_ecmascript_number_to_string(x, expected):
    assert js_number(x) == expected


def test_stats_frame_is_compact_with_utf8_names():
    compiled = compile_template(STATS_TEMPLATE)
    text = compiled.render(compiled.new_state(), Random(1))
    assert text == json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    assert '"name":"人像"' in text and "\\u" not in text


@pytest.mark.skipif(shutil.which("node") is None and os.environ.get("CI") != "true", reason="node not installed")
def test_output_equals_node_json_stringify():
    """Run the same values through Node's JSON.stringify and compare bytes."""
    values = [*VALUES, NUMBERS]
    script = "const v = JSON.parse(require('fs').readFileSync(0, 'utf8'));" \
             "process.stdout.write(JSON.stringify(v.map(x => JSON.stringify(x))))"
    # NaN/Infinity cannot travel as JSON: send them as null and compare our output for them separately
    transport = json.dumps([*VALUES, [x if x == x and abs(x) != float("inf") else None for x in NUMBERS]])
    node = subprocess.run(["node", "-e", script], input=transport, capture_output=True, text=True, check=True)
    expected = json.loads(node.stdout)
    assert [dumps(v) for v in values] == expected
