#!/usr/bin/env python3
"""Fan-out benchmarks: this server against the original Node `ws` server, side by side.

    python3 bench/run.py                      # every scenario, 3 alternating rounds (about 20 min when quiet)
    python3 bench/run.py --only 'seed|echo'   # some scenarios (a regex on their names)
    python3 bench/run.py --also /tmp/old      # a third server: another checkout of this project
    python3 bench/run.py --summarize bench/results/<timestamp>   # print an earlier run's table again

Needs Node 20 and npm, and this project's requirements installed for this
interpreter (our server runs with it, sys.executable, from the repository
folder with bench/bench.yaml). The harness is in this folder: wsbench.py
drives the load client client.js against the reference server
anchor_node_ws.js and ours; on its first run it installs `ws` with npm into
~/.cache/mockws-bench ($XDG_CACHE_HOME is honoured). Each scenario runs
`wsbench.py <mode> --server-cmd NODE --vs OURS`, alternating the servers round
by round, and the table compares medians. See bench/README.md.

Raw tables, JSON lines and progress logs go to bench/results/<timestamp>/
(git-ignored); the summary table is printed and written there as summary.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENTS_PER_SOURCE_ADDRESS = 10_000  # of about 28k ephemeral ports, leaving room for TIME_WAIT from earlier runs
SERVER_MODULES = ("tornado", "yaml", "pydantic")  # what requirements.txt installs


@dataclass(frozen=True)
class Scenario:
    """One wsbench run: mode, stream path, load, and the target it checks."""

    name: str
    mode: str  # fanout | echo | memory
    path: str  # the stream (or endpoint) in bench/bench.yaml, or in this scenario's config
    clients: int
    interval_ms: int | None = None
    duration_s: float = 10.0
    rounds: int | None = None  # None: --rounds
    ours_only: bool = False  # no Node reference (Node has no equivalent, or the 30k idle check)
    config: str | None = None  # our server's config for this scenario, instead of --config
    wsbench_args: tuple[str, ...] = ()  # extra wsbench.py options for this scenario
    transport: str = "websocket"  # or sse, socketio (ours only: the Node server speaks WebSocket)
    # our own server driven at this path and/or over this transport too, alternating with the others, as the
    # reference of baseline_cpu_ratio (the plain /echo for a rules endpoint; WebSocket for an SSE stream)
    baseline_path: str | None = None
    baseline_transport: str | None = None
    # the targets (None: not judged): ours / Node ratios, and absolute floors
    cpu_ratio: float | None = None  # server CPU per message (fanout) or per round trip (echo), at most
    baseline_cpu_ratio: float | None = None  # server CPU per message or round trip / the baseline's, at most
    kb_ratio: float | None = None  # memory per idle connection, at most
    delivered_pct: float | None = None  # share of the expected messages delivered, at least
    p99_intervals: float | None = None  # inter-arrival p99 in intervals, at most

    @property
    def has_baseline(self) -> bool:
        """Whether our server also runs at a baseline path or over a baseline transport."""
        return self.baseline_path is not None or self.baseline_transport is not None

    @property
    def baseline(self) -> str:
        """The baseline, in words: "ours at /echo", "ours over websocket"."""
        at = f" at {self.baseline_path}" if self.baseline_path is not None else ""
        over = f" over {self.baseline_transport}" if self.baseline_transport is not None else ""
        return f"ours{at}{over}"

    @property
    def target(self) -> str:
        """The targets, in words, for the table."""
        parts = []
        if self.delivered_pct is not None:
            parts.append(f"delivered >= {self.delivered_pct:g}%")
        if self.p99_intervals is not None:
            parts.append(f"p99 <= {self.p99_intervals:g} x interval")
        if self.cpu_ratio is not None:
            parts.append(f"{'us/round trip' if self.mode == 'echo' else 'us/msg'} <= {self.cpu_ratio:g} x Node")
        if self.baseline_cpu_ratio is not None:
            unit = "us/round trip" if self.mode == "echo" else "us/msg"
            parts.append(f"{unit} <= {self.baseline_cpu_ratio:g} x {self.baseline}")
        if self.kb_ratio is not None:
            parts.append(f"KB/conn <= {self.kb_ratio:g} x Node")
        if self.ours_only and self.mode == "memory":
            parts.append(f"{self.clients:,} idle connections")
        elif self.ours_only:
            parts.append("ours only (Node has no equivalent)")
        return ", ".join(parts)


SCENARIOS = [
    Scenario("t1_seed_1000c_100ms", "fanout", "/", 1000, 100, delivered_pct=99, p99_intervals=1.5, cpu_ratio=0.8),
    Scenario("t2_shared_1000c_100ms", "fanout", "/shared", 1000, 100, delivered_pct=99, cpu_ratio=0.4),
    # the same with permessage-deflate on our side (Node's ws server declines it by default): each shared
    # frame is compressed once for every client, so the cost per message should stay near t2's
    Scenario("t2z_shared_compressed_1000c_100ms", "fanout", "/shared", 1000, 100, delivered_pct=99,
             config="bench/compression.yaml", wsbench_args=("--deflate",)),
    Scenario("t3_replay_1000c_100ms", "fanout", "/replay", 1000, 100, cpu_ratio=0.8),
    # 100,000 msg/s nominal: more than the box can carry; what share of it arrives
    Scenario("t4_overload_500c_5ms", "fanout", "/overload", 500, 5, duration_s=8.0, delivered_pct=95),
    Scenario("t5_memory_2000c", "memory", "/idle", 2000, kb_ratio=0.6),
    Scenario("t5_idle_30000c", "memory", "/idle", 30000, rounds=1, ours_only=True),
    Scenario("t6_echo_50c", "echo", "/idle", 50, cpu_ratio=1.2),
    # a JSON ping answered by a rule ({"type":"pong","id":N}), against our plain /echo of the same message
    # in the same rounds; Node answers it like any message, for context
    Scenario("t7_rules_50c", "echo", "/rules", 50, config="bench/rules.yaml", baseline_path="/echo",
             baseline_cpu_ratio=1.5, wsbench_args=("--message", '{"type":"ping","id":{n}}', "--any-reply")),
    # three topic subscriptions per connection to shared streams at 10 Hz: 30,000 frames/s in envelopes
    Scenario("t8_topics_1000c_3x100ms", "fanout", "/topics", 1000, 100, ours_only=True, delivered_pct=99,
             config="bench/rules.yaml",
             wsbench_args=("--frames-per-interval", "3",
                           *(arg for name in ("s1", "s2", "s3") for arg in (
                               "--send-on-open", f'{{"method":"SUBSCRIBE","params":["{name}"],"id":1}}')))),
    # t2's shared timeline as Server-Sent Events (Node's server has none), against our own WebSocket clients
    # of the same stream in the same rounds
    Scenario("t9_sse_shared_1000c_100ms", "fanout", "/shared", 1000, 100, ours_only=True, transport="sse",
             baseline_transport="websocket", delivered_pct=99, baseline_cpu_ratio=1.2),
    # Socket.IO clients (socket.io-client 4.8, WebSocket transport) in the namespace of a 1 Hz shared stream;
    # our WebSocket clients of the same stream for comparison. A 20 s window: at 1 Hz a client's count is
    # off by up to one message (5%), upwards only when nothing is lost
    Scenario("t10_socketio_1000c_1s", "fanout", "/shared-1hz", 1000, 1000, duration_s=20.0, ours_only=True,
             transport="socketio", baseline_transport="websocket", delivered_pct=99),
]


def parse_args() -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="run only the scenarios whose name matches this regex")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per scenario (default 3)")
    ap.add_argument("--also", action="append", default=[], type=Path, metavar="CHECKOUT",
                    help="also run the server of another checkout of this project (e.g. a git worktree)")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results/<timestamp>)")
    ap.add_argument("--config", default="bench/bench.yaml", help="server config, relative to each checkout")
    ap.add_argument("--summarize", type=Path, metavar="RESULTS_DIR",
                    help="print the table of an earlier run's results folder again, without running anything")
    ap.add_argument("wsbench_args", nargs="*", help="extra wsbench.py options, after --")
    return ap.parse_args()


def our_cmd(checkout: Path, config: str) -> str:
    """The server command for one checkout of this project (the harness sets $PORT and runs it in ROOT)."""
    inner = (f"exec {shlex.quote(sys.executable)} server.py "
             f"-c {shlex.quote(config)} --port \"$PORT\" --log-level warning")
    if checkout != ROOT:
        inner = f"cd {shlex.quote(str(checkout))} && {inner}"
    return f"sh -c {shlex.quote(inner)}"


def server_commands(sc: Scenario, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """(label, command, URL path, transport) of every server compared: Node's, ours, ours at the scenario's
    baseline, and each --also checkout of ours; no Node and no other checkout for an ours-only scenario."""
    config = sc.config or args.config
    servers = [] if sc.ours_only else [("node", "node bench/anchor_node_ws.js", sc.path, "websocket")]
    servers.append(("ours", our_cmd(ROOT, config), sc.path, sc.transport))
    if sc.has_baseline:
        servers.append(("baseline", our_cmd(ROOT, config), sc.baseline_path or sc.path,
                        sc.baseline_transport or sc.transport))
    if sc.ours_only:
        return servers
    return servers + [(f"also:{path}", our_cmd(path.resolve(), config), sc.path, sc.transport)
                      for path in args.also]


def url(path: str, transport: str) -> str:
    """The URL the load client opens: ws:// for WebSocket, http:// for SSE and Socket.IO."""
    return f"{'ws' if transport == 'websocket' else 'http'}://127.0.0.1:PORT{path}"


def run_scenario(sc: Scenario, args: argparse.Namespace, out: Path) -> dict:
    """Run one scenario through wsbench.py; returns its final JSON line."""
    servers = server_commands(sc, args)
    cmd = [sys.executable, str(HERE / "wsbench.py"), sc.mode, "--server-cmd", servers[0][1]]
    for _, server, _, _ in servers[1:]:
        cmd += ["--vs", server]
    urls = [url(path, transport) for _, _, path, transport in servers]
    for each in urls if len(set(urls)) > 1 else urls[:1]:  # one --url per server when they differ
        cmd += ["--url", each]
    transports = [transport for _, _, _, transport in servers]
    for transport in transports if len(set(transports)) > 1 else transports[:1]:
        if transport != "websocket" or len(set(transports)) > 1:
            cmd += ["--transport", transport]
    cmd += ["--clients", str(sc.clients), "--cwd", str(ROOT), "--rounds", str(sc.rounds or args.rounds)]
    if sc.interval_ms is not None:
        cmd += ["--interval-ms", str(sc.interval_ms)]
    if sc.clients > CLIENTS_PER_SOURCE_ADDRESS:
        cmd += ["--source-addresses", str(-(-sc.clients // CLIENTS_PER_SOURCE_ADDRESS))]
    if sc.mode != "memory":
        cmd += ["--duration", str(sc.duration_s)]
    cmd += [*sc.wsbench_args, *args.wsbench_args]
    print(f"== {sc.name}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    with open(out / f"{sc.name}.txt", "w") as stdout, open(out / f"{sc.name}.log", "w") as stderr:
        stdout.write("# " + shlex.join(cmd) + "\n")
        stdout.flush()
        done = subprocess.run(cmd, stdout=stdout, stderr=stderr, timeout=3000)
    text = (out / f"{sc.name}.txt").read_text()
    warnings = [line for line in (out / f"{sc.name}.log").read_text().splitlines() if "WARNING" in line]
    for line in dict.fromkeys(warnings):  # e.g. an open-file limit too low, a busy machine
        print(line.strip(), file=sys.stderr)
    if done.returncode != 0:
        tail = (out / f"{sc.name}.log").read_text()[-1500:]
        raise SystemExit(f"{sc.name}: wsbench.py exited with {done.returncode}; see {out}/{sc.name}.log\n{tail}")
    print("\n".join(line for line in text.splitlines() if not line.startswith("{")), file=sys.stderr)
    result = json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))
    result["labels"] = [name for name, _, _, _ in servers]
    return result


def _ratio(ours: float | None, node: float | None) -> float | None:
    return ours / node if ours is not None and node else None


def judge(sc: Scenario, medians: dict[str, dict]) -> list[tuple[str, ...]]:
    """Rows (metric, node, ours, ratio, verdict, then each other server's value) for one scenario."""
    node, ours = medians.get("node", {}), medians.get("ours", {})
    others = [m for label, m in medians.items() if label not in ("node", "ours", "baseline")]
    rows = []

    def row(metric: str, key: str, fmt: str, ok: bool | None, ratio: bool = True) -> None:
        n, o = node.get(key), ours.get(key)
        r = _ratio(o, n) if ratio else None
        rows.append((metric, "-" if n is None else format(n, fmt), "-" if o is None else format(o, fmt),
                     "-" if r is None else f"{r:.2f}", "" if ok is None else ("met" if ok else "MISSED"),
                     *("-" if m.get(key) is None else format(m[key], fmt) for m in others)))

    if sc.mode == "fanout":
        us = _ratio(ours.get("server_us_per_msg"), node.get("server_us_per_msg"))
        pct, p99 = ours.get("delivered_pct") or 0, ours.get("iat_p99_ms")
        row("delivered %", "delivered_pct", ".1f", None if sc.delivered_pct is None else pct >= sc.delivered_pct,
            False)
        row("delivered msg/s", "delivered_per_s", ",.0f", None)
        if any(m.get("iat_p50_ms") is not None for m in medians.values()):  # none with several streams a client
            row("inter-arrival p50 ms", "iat_p50_ms", ".1f", None, False)
            row("inter-arrival p99 ms", "iat_p99_ms", ".1f", None if sc.p99_intervals is None else
                p99 is not None and p99 <= sc.p99_intervals * sc.interval_ms, False)
        row("server CPU %", "server_cpu_pct", ".1f", None)
        row("server µs/msg", "server_us_per_msg", ".1f",
            None if sc.cpu_ratio is None else us is not None and us <= sc.cpu_ratio)
        if sc.has_baseline:
            baseline_rows(sc, medians, "server_us_per_msg", "µs/msg", rows, len(others))
    elif sc.mode == "memory":
        kb = _ratio(ours.get("kb_per_conn"), node.get("kb_per_conn"))
        if sc.ours_only:
            rows.append(("connected", "-", f"{ours.get('clients', 0):,.0f}", "-",
                         "met" if ours.get("clients") == sc.clients else "MISSED", *("-" for _ in others)))
        row("RSS before MB", "rss_before_mb", ".1f", None, False)
        row("RSS after MB", "rss_after_mb", ".1f", None, False)
        row("KB/conn", "kb_per_conn", ".2f", None if sc.kb_ratio is None else kb is not None and kb <= sc.kb_ratio)
    else:
        us = _ratio(ours.get("server_us_per_rt"), node.get("server_us_per_rt"))
        row("round trips/s", "round_trips_per_s", ",.0f", None)
        row("RTT p50 ms", "rtt_p50_ms", ".2f", None, False)
        row("server CPU %", "server_cpu_pct", ".1f", None)
        row("server µs/round trip", "server_us_per_rt", ".1f",
            None if sc.cpu_ratio is None else us is not None and us <= sc.cpu_ratio)
        if sc.has_baseline:
            baseline_rows(sc, medians, "server_us_per_rt", "µs/round trip", rows, len(others))
    return rows


def baseline_rows(sc: Scenario, medians: dict[str, dict], key: str, unit: str, rows: list, others: int) -> None:
    """Two rows: the baseline's figure (ours at the baseline path or over the baseline transport), and
    ours ÷ it, judged against baseline_cpu_ratio."""
    ours, base = medians.get("ours", {}).get(key), medians.get("baseline", {}).get(key)
    vs_base = _ratio(ours, base)
    rows.append((f"{sc.baseline}: {unit}", "-", "-" if base is None else f"{base:.1f}", "-", "",
                 *("-" for _ in range(others))))
    rows.append((f"ours ÷ {sc.baseline}", "-", "-" if vs_base is None else f"{vs_base:.2f}", "-",
                 "" if sc.baseline_cpu_ratio is None else
                 ("met" if vs_base is not None and vs_base <= sc.baseline_cpu_ratio else "MISSED"),
                 *("-" for _ in range(others))))


def summary(results: list[tuple[Scenario, dict]]) -> str:
    """The markdown table of every scenario's medians, ratios and verdicts."""
    others = list(dict.fromkeys(label for _, result in results for label in result["labels"]
                                if label not in ("node", "ours", "baseline")))
    lines = ["| scenario | target | metric | Node | ours | ours/Node | |" + "".join(f" {o} |" for o in others),
             "| --- " * (7 + len(others)) + "|"]
    for sc, result in results:
        medians = {label: server["median"] for label, server in zip(result["labels"], result["servers"], strict=True)}
        for i, (metric, n, o, r, verdict, *rest) in enumerate(judge(sc, medians)):
            rest += ["-"] * (len(others) - len(rest))  # a scenario run with our server only
            lines.append(f"| {sc.name if i == 0 else ''} | {sc.target if i == 0 else ''} | {metric} | "
                         f"{n} | {o} | {r} | {verdict} |" + "".join(f" {v} |" for v in rest))
    noisy = [f"{sc.name} {label} round {i + 1}" for sc, result in results
             for label, server in zip(result["labels"], result["servers"], strict=True)
             for i, run in enumerate(server["runs"]) if run.get("noisy")]
    text = "\n".join(lines)
    if noisy:
        text += "\n\nRuns still noisy after retries: " + ", ".join(noisy)
    return text


def load_results(folder: Path) -> list[tuple[Scenario, dict]]:
    """The scenarios found in an earlier run's results folder, with their final JSON lines."""
    results = []
    for sc in SCENARIOS:
        path = folder / f"{sc.name}.txt"
        if not path.is_file():
            continue
        lines = path.read_text().splitlines()
        json_lines = [line for line in lines if line.startswith("{")]
        if not json_lines:
            continue  # unfinished
        result = json.loads(json_lines[-1])
        command = shlex.split(lines[0][2:])  # "# wsbench.py ... --server-cmd NODE --vs OURS --vs ..."
        servers = [command[i + 1] for i, arg in enumerate(command) if arg in ("--server-cmd", "--vs")]
        # as run_scenario orders them: node, ours, ours at the baseline, then each --also checkout
        labels = ([] if sc.ours_only else ["node"]) + ["ours"] + (["baseline"] if sc.has_baseline else [])
        result["labels"] = labels + [f"also:{_checkout(cmd)}" for cmd in servers[len(labels):]]
        results.append((sc, result))
    return results


def _checkout(server_cmd: str) -> str:
    found = re.search(r"cd (\S+) &&", server_cmd)
    return found.group(1) if found else server_cmd


def main() -> int:
    """Run the selected scenarios and print the summary table."""
    args = parse_args()
    if args.summarize:
        print(summary(load_results(args.summarize)))
        return 0
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        print(f"error: our server runs with {sys.executable}, which cannot import {', '.join(missing)}; "
              "install the requirements: python3 -m pip install -r requirements.txt", file=sys.stderr)
        return 2
    chosen = [sc for sc in SCENARIOS if re.search(args.only, sc.name)]
    if not chosen:
        print(f"error: no scenario matches {args.only!r}; scenarios: {', '.join(s.name for s in SCENARIOS)}",
              file=sys.stderr)
        return 2
    out = args.out or ROOT / "bench" / "results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    results = [(sc, run_scenario(sc, args, out)) for sc in chosen]
    table = summary(results)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    print(f"\nraw results: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
