#!/usr/bin/env python3
"""CPU per rendered frame: the stats template with seven $faker fields against the same template with $int.

    python3 bench/render.py                 # 3 runs of 20,000 frames each, medians
    python3 bench/render.py --frames 50000 --runs 5

Each category of the seed's stats template gets one more field, ``latest``:
a Faker value (a name, a plate, a MAC address...) in one template and an
``$int`` in the other. Only rendering is measured (``render_utf8``, what a
stream does per frame and per client), with ``time.process_time``.

A ``$faker`` field fills its pool of values lazily (see streams/fake.py), so
the steady state is measured after a warm-up that fills every pool, and the
one-time cost of filling them is printed on its own line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from random import Random

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.fake import POOL_SIZE
from streams.template import compile_template

CATEGORIES = [("face", "人像", "name"), ("car", "车辆", "license_plate"), ("touchDoor", "感知门", "name"),
              ("rfid", "rfid", ["numerify", {"text": "E200-####-####"}]), ("kakou", "卡口", "license_plate"),
              ("wifi", "wifi", "mac_address"), ("video", "视频", "ipv4_private")]


def stats_template(latest: str) -> dict:
    """The seed's stats template plus a `latest` field per category: a $faker value or an $int."""
    return {key: {"yesterdayValue": {"$int": [0, 1000000]}, "name": name, "toadyValue": {"$int": [0, 1000000]},
                  "latest": {"$faker": method} if latest == "faker" else {"$int": [0, 1000000]}}
            for key, name, method in CATEGORIES}


def cpu_per_frame_us(template: dict, frames: int, warm_up: int) -> float:
    """CPU microseconds per frame over ``frames`` frames, after ``warm_up`` frames."""
    compiled = compile_template(template)
    state, rng = compiled.new_state(), Random(1)
    render = compiled.render_utf8
    for _ in range(warm_up):
        render(state, rng)
    start = time.process_time()
    for _ in range(frames):
        render(state, rng)
    return (time.process_time() - start) / frames * 1e6


def fill_cost_ms(template: dict) -> float:
    """CPU milliseconds to fill every pool of a template's $faker fields once (one Faker call per slot)."""
    compiled = compile_template(template)
    state, rng = compiled.new_state(), Random(2)
    start = time.process_time()
    for _ in range(POOL_SIZE * 12):  # a slot stays empty after n draws with odds e^(-n/1024): ~6e-6 here
        compiled.render_utf8(state, rng)
    return (time.process_time() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000, help="frames measured per run (default 20000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per template; the median is printed (default 3)")
    args = parser.parse_args()
    warm_up = POOL_SIZE * 12
    runs: dict[str, list[float]] = {"int": [], "faker": []}
    for _ in range(args.runs):  # alternating, so a busy moment of a shared machine hits both alike
        for kind, measured in runs.items():
            measured.append(cpu_per_frame_us(stats_template(kind), args.frames, warm_up))
    results = {kind: statistics.median(measured) for kind, measured in runs.items()}
    for kind, measured in runs.items():
        print(f"{kind:>5}: {results[kind]:6.2f} us per frame (median of {args.runs}: "
              f"{', '.join(f'{r:.2f}' for r in measured)})")
    print(f"ratio: {results['faker'] / results['int']:.2f} x  (target <= 3)")
    fills = [fill_cost_ms(stats_template("faker")) for _ in range(args.runs)]
    print(f"filling the seven pools once ({POOL_SIZE} values each): {statistics.median(fills):.0f} ms CPU "
          f"(median of {args.runs}, including {POOL_SIZE * 12} frames)")


if __name__ == "__main__":
    main()
