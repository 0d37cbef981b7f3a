#!/usr/bin/env python3
"""Scale-out capacity: the highest per-client rate that 2000 clients receive, with workers: 1 and workers: 2.

    python3 bench/capacity.py                     # both worker counts, then their CPU per message (about 8 min)
    python3 bench/capacity.py --clients 500 --duration 4 --compare-rounds 1   # a quick check
    python3 bench/capacity.py -- --quiet-wait 30  # options after -- go to wsbench.py

Capacity is the highest rate per client of one of bench/bench.yaml's streams
(--stream: `seed`, t1's per-client random timelines, the default; or `shared`,
t2's one timeline; its interval changed) at which --clients WebSocket clients get
at least --delivered-pct of the frames, found by bisecting the interval between
--fast-ms (assumed too fast) and --slow-ms (assumed carried), on a log scale,
until the two are within --resolution of each other. Then both worker counts
run alternately at one rate both carry (80% of the lower capacity) for
--compare-rounds rounds, and the table compares their server CPU per message.

workers: 2 needs a cluster: each run of it starts a throwaway
`redis-server --port <free> --save '' --appendonly no` inside the server's
command, so it is fresh for every run, counted in the server's CPU (it is part
of what a cluster costs) and stopped with the server. workers: 1 runs without
`cluster:`, as a single process is used. The load client shares the machine's
cores with the server: the table shows how the CPU was split.

Needs what bench/run.py needs, and redis-server on PATH. Configs go to a
temporary folder; raw output to bench/results/capacity-<stream>-<timestamp>/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_CAPACITY_RATIO = 1.3  # workers: 2 carries at least this many times workers: 1's rate
TARGET_CPU_RATIO = 1.1  # server CPU per message with workers: 2, at most this many times workers: 1's


def parse_args() -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=2000, help="WebSocket clients (default 2000)")
    ap.add_argument("--stream", default="seed", choices=("seed", "shared"),
                    help="seed: per-client timelines, where rendering each client's frame is the work (default); "
                         "shared: one timeline, one render per tick, a Redis hop per frame with workers")
    ap.add_argument("--workers", default="1,2", help="worker counts to search, comma-separated (default 1,2)")
    ap.add_argument("--fast-ms", type=int, default=10, help="an interval assumed too fast to carry (default 10)")
    ap.add_argument("--slow-ms", type=int, default=100, help="an interval assumed carried (default 100)")
    ap.add_argument("--resolution", type=float, default=1.08,
                    help="stop when slow/fast is at most this (default 1.08: rates within 8%%)")
    ap.add_argument("--delivered-pct", type=float, default=99.0, help="what 'carried' means (default 99)")
    ap.add_argument("--duration", type=float, default=6.0, help="window of each probe, s (default 6)")
    ap.add_argument("--compare-rounds", type=int, default=3, help="rounds of the CPU comparison (default 3)")
    ap.add_argument("--client-procs", type=int, default=2,
                    help="node client processes (default 2, so one client core is not the limit)")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results/capacity-<stream>-<timestamp>)")
    ap.add_argument("wsbench_args", nargs="*", help="extra wsbench.py options, after --")
    return ap.parse_args()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_cmd(folder: Path, name: str, workers: int, interval_ms: int, clients: int) -> str:
    """Write the config of one stream, worker count and interval; the command that serves it (with its Redis)."""
    streams = yaml.safe_load((HERE / "bench.yaml").read_text())["streams"]
    stream = next(stream for stream in streams if stream["name"] == name)
    config = {"server": {"host": "127.0.0.1", "workers": workers, "max_clients": clients + 1000},
              "streams": [dict(stream, path="/" + name, interval_ms=interval_ms)]}
    serve = (f"exec {shlex.quote(sys.executable)} server.py -c {{config}} --port \"$PORT\" --log-level warning")
    if workers > 1:
        redis_port = free_port()
        config["cluster"] = {"redis": f"redis://127.0.0.1:{redis_port}/0", "name": "capacity"}
        serve = (f"redis-server --port {redis_port} --save '' --appendonly no --loglevel warning >/dev/null & "
                 + serve)
    path = folder / f"workers{workers}-{interval_ms}ms.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return "sh -c " + shlex.quote(serve.format(config=shlex.quote(str(path))))


def wsbench(args: argparse.Namespace, out: Path, name: str, cmds: list[str], interval_ms: int, rounds: int) -> dict:
    """One wsbench.py fanout run of the given server commands; returns its JSON line."""
    cmd = [sys.executable, str(HERE / "wsbench.py"), "fanout", "--server-cmd", cmds[0],
           *(arg for other in cmds[1:] for arg in ("--vs", other)),
           "--url", f"ws://127.0.0.1:PORT/{args.stream}", "--clients", str(args.clients),
           "--interval-ms", str(interval_ms),
           "--duration", str(args.duration), "--rounds", str(rounds), "--client-procs", str(args.client_procs),
           "--cwd", str(ROOT), *args.wsbench_args]
    with open(out / f"{name}.txt", "w") as stdout, open(out / f"{name}.log", "w") as stderr:
        stdout.write("# " + shlex.join(cmd) + "\n")
        stdout.flush()
        done = subprocess.run(cmd, stdout=stdout, stderr=stderr, timeout=3000)
    if done.returncode != 0:
        raise SystemExit(f"{name}: wsbench.py exited with {done.returncode}; see {out / name}.log")
    text = (out / f"{name}.txt").read_text()
    return json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))


def search(args: argparse.Namespace, out: Path, configs: Path, workers: int) -> tuple[int, list[dict]]:
    """Bisect the interval for one worker count; returns the fastest interval carried and every probe."""
    fast, slow, probes = args.fast_ms, args.slow_ms, []
    while slow / fast > args.resolution and slow - fast > 1:
        mid = round(math.sqrt(fast * slow))
        cmd = server_cmd(configs, args.stream, workers, mid, args.clients)
        run = wsbench(args, out, f"workers{workers}-{mid}ms", [cmd], mid, 1)["servers"][0]["median"]
        carried = (run.get("delivered_pct") or 0) >= args.delivered_pct
        probes.append(dict(run, carried=carried))
        print(f"  workers {workers}: {1000 / mid:.1f} Hz per client, delivered {run.get('delivered_pct', 0):.1f}%"
              f" -> {'carried' if carried else 'not carried'}", file=sys.stderr, flush=True)
        if carried:
            slow = mid
        else:
            fast = mid
    return slow, probes


def main() -> int:
    """Search each worker count's capacity, compare their CPU per message, print the tables."""
    args = parse_args()
    if shutil.which("redis-server") is None and any(int(w) > 1 for w in args.workers.split(",")):
        print("error: workers above 1 need redis-server on PATH (e.g. apt-get install redis-server)", file=sys.stderr)
        return 2
    out = args.out or ROOT / "bench" / "results" / time.strftime(f"capacity-{args.stream}-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="mockws-capacity-") as tmp:
        configs = Path(tmp)
        found = {}
        for n in workers:
            print(f"== workers {n}: searching {1000 / args.slow_ms:g}-{1000 / args.fast_ms:g} Hz per client",
                  file=sys.stderr, flush=True)
            found[n] = search(args, out, configs, n)
        common = max(found[n][0] for n in workers)  # the slower of the capacities ...
        common = round(common / 0.8)  # ... at 80%
        print(f"== CPU per message at {1000 / common:.1f} Hz per client, {args.compare_rounds} alternating rounds",
              file=sys.stderr, flush=True)
        cmds = [server_cmd(configs, args.stream, n, common, args.clients) for n in workers]
        compare = wsbench(args, out, f"compare-{common}ms", cmds, common, args.compare_rounds)
    table = tables(args, workers, found, common, compare)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    print(f"\nraw results: {out}", file=sys.stderr)
    return 0


def tables(args: argparse.Namespace, workers: list[int], found: dict, common: int, compare: dict) -> str:
    """The capacity table and the CPU comparison table, in markdown, with the targets judged."""
    lines = [f"Stream `{args.stream}` of bench/bench.yaml.", "",
             f"| workers | capacity: Hz per client ({args.clients} clients, >= {args.delivered_pct:g}% delivered) "
             "| msg/s | delivered % | server CPU % | client CPU % | other CPU % | probes (Hz: delivered %) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n in workers:
        interval, probes = found[n]
        at = next((p for p in probes if p["interval_ms"] == interval), {})
        tried = ", ".join(f"{1000 / p['interval_ms']:.1f}: {p.get('delivered_pct', 0):.1f}" for p in probes)
        lines.append(f"| {n} | {1000 / interval:.1f} | {at.get('delivered_per_s', 0):,.0f} | "
                     f"{at.get('delivered_pct', 0):.1f} | {at.get('server_cpu_pct', 0):.0f} | "
                     f"{at.get('client_cpu_pct', 0):.0f} | {at.get('other_cores', 0) * 100:.0f} | {tried} |")
    medians = [server["median"] for server in compare["servers"]]
    lines += ["", f"At {1000 / common:.1f} Hz per client ({args.clients} clients), medians of "
              f"{args.compare_rounds} alternating rounds:", "",
              "| metric | " + " | ".join(f"workers {n}" for n in workers) + " | ratio |",
              "| --- " * (len(workers) + 2) + "|"]
    for key in ("delivered_pct", "delivered_per_s", "server_cpu_pct", "server_us_per_msg", "client_cpu_pct",
                "other_cores"):
        values = [m.get(key) for m in medians]
        ratio = values[-1] / values[0] if values[0] and values[-1] is not None else None
        lines.append(f"| {key} | " + " | ".join("-" if v is None else f"{v:,.2f}" for v in values)
                     + f" | {'-' if ratio is None else f'{ratio:.2f}'} |")
    if workers[:2] == [1, 2] and len(workers) == 2:
        capacity_ratio = found[1][0] / found[2][0]
        us = [m.get("server_us_per_msg") for m in medians]
        cpu_ratio = us[1] / us[0] if us[0] and us[1] else None
        lines += ["", f"- capacity, workers 2 / workers 1: {capacity_ratio:.2f} (target >= {TARGET_CAPACITY_RATIO:g}): "
                  + ("met" if capacity_ratio >= TARGET_CAPACITY_RATIO else "MISSED"),
                  "- server CPU per message, workers 2 / workers 1: "
                  + ("-" if cpu_ratio is None else f"{cpu_ratio:.2f}") + f" (target <= {TARGET_CPU_RATIO:g}): "
                  + ("met" if cpu_ratio is not None and cpu_ratio <= TARGET_CPU_RATIO else "MISSED")]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
