#!/usr/bin/env python3
"""Mock WebSocket push server for real-time dashboards.

    python server.py [-c config.yaml] [--host H] [--port N] [--check] [--log-level LEVEL]
    python server.py record URL [--out FILE] ...    record a live feed (python server.py record -h)
    python server.py import ASYNCAPI_FILE             print an AsyncAPI document's streams as config YAML

This file is only the command line: parse args, load the config, make the
app, listen, and shut down in order on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import resource
import signal
import socket
import sys
from pathlib import Path

import yaml
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from app import make_app
from config import ConfigError, tls_context
from reload import ConfigWatcher
from streams.asyncapi import DEFAULT_INTERVAL_MS, AsyncApiError, translate_document
from streams.build import AppConfig, load_config
from streams.cluster import Cluster
from streams.hub import Hub
from transport.http import HARD_HEAD_LIMIT_BYTES, HeadLimit
from workers import Workers, reserve_port, worker_count

log = logging.getLogger("mockws")

HTTP_IDLE_TIMEOUT_S = 30.0  # idle keep-alive or half-sent HTTP requests; upgraded WebSockets are not affected
SHUTDOWN_CLOSE_WAIT_S = 1.0  # how long closing clients get to answer our 1001 before we exit


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The serve command line."""
    parser = argparse.ArgumentParser(
        prog="server.py",
        description="Mock WebSocket push server: random or replayed frames on a timer, an echo socket "
                    "and a demo page, all set up in a YAML config. "
                    "`python server.py record URL` records a live feed (see `python server.py record -h`).")
    parser.add_argument("-c", "--config", default="config.yaml", type=Path,
                        help="config file (default: ./config.yaml)")
    parser.add_argument("--host", help="listen address, overrides server.host (0.0.0.0: reachable from the LAN)")
    parser.add_argument("--port", type=int, help="listen port, overrides server.port (0: any free port)")
    parser.add_argument("--check", action="store_true",
                        help="validate the config and its mock files, print what would be served, and exit")
    parser.add_argument("--no-watch", action="store_true",
                        help="do not apply edits of the config and mock files while running")
    parser.add_argument("--log-level", default="info", type=str.lower,
                        choices=["debug", "info", "warning", "error"], help="default: info")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # one of server.workers (workers.py)
    return parser.parse_args(argv)


def import_asyncapi(argv: list[str]) -> int:
    """`server.py import FILE`: print the config sections an AsyncAPI document translates into."""
    parser = argparse.ArgumentParser(prog="server.py import", description="Print the streams: and endpoints: "
                                     "an AsyncAPI 2.x/3.x document is served as, to paste into a config and edit.")
    parser.add_argument("file", type=Path, help="the AsyncAPI document (YAML or JSON)")
    parser.add_argument("--interval-ms", type=int, default=DEFAULT_INTERVAL_MS,
                        help=f"interval of channels without x-interval-ms (default: {DEFAULT_INTERVAL_MS})")
    args = parser.parse_args(argv)
    try:
        translation = translate_document(args.file, args.interval_ms)
    except AsyncApiError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 2
    sections = {key: value for key, value in (("streams", translation.streams),
                                              ("endpoints", translation.endpoints)) if value}
    print(f"# from {args.file}" + "".join(f"\n# skipped: {line}" for line in translation.skipped))
    print(yaml.safe_dump(sections, allow_unicode=True, sort_keys=False, width=120), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["record"]:
        import record  # noqa: PLC0415 - the recorder's imports are only needed for this command

        return record.main(argv[1:])
    if argv[:1] == ["import"]:
        return import_asyncapi(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    if args.log_level != "debug":
        logging.getLogger("tornado.access").setLevel(logging.WARNING)  # a line per request is noise
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print("\n".join(e.problems), file=sys.stderr)
        print(f"{len(e.problems)} problem{'s' if len(e.problems) > 1 else ''} in {args.config}; nothing served.",
              file=sys.stderr)
        return 2
    host = args.host or config.settings.server.host
    port = config.settings.server.port if args.port is None else args.port
    if args.check:
        print(describe(config, host, port, checked=True))
        return 0
    workers = worker_count(config.settings.server.workers)
    if workers > 1 and args.worker is None:
        return serve_workers(args, config, host, port, workers)
    try:
        return asyncio.run(serve(config, host, port, watch=not args.no_watch, worker=args.worker))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


def serve_workers(args: argparse.Namespace, config: AppConfig, host: str, port: int, workers: int) -> int:
    """Run `workers` server processes on one port until SIGINT/SIGTERM (workers.py)."""
    try:
        reserved = reserve_port(host, port)
    except OSError as e:
        print(listen_error(e, host, port), file=sys.stderr)
        return 1
    with reserved:
        port = reserved.getsockname()[1]
        print(describe(config, host, port, watching=not args.no_watch, workers=workers), flush=True)
        arguments = ["-c", str(args.config), "--host", host, "--port", str(port), "--log-level", args.log_level]
        return Workers(workers, arguments + (["--no-watch"] if args.no_watch else [])).run()


async def serve(config: AppConfig, host: str, port: int, watch: bool = True, worker: int | None = None) -> int:
    """Serve until SIGINT/SIGTERM, then shut down in order (``worker``: one of server.workers, on a shared port)."""
    try:
        sockets = bind_sockets(port, host, reuse_port=worker is not None)
    except OSError as e:
        print(listen_error(e, host, port), file=sys.stderr)
        return 1
    hub = Hub(config)
    # every client is a file descriptor: past the process's limit accept() fails in a loop, so the
    # client limit is capped to what the open-file limit leaves room for
    hub.file_client_limit = raise_open_file_limit(config.settings.server.max_clients) - FD_HEADROOM
    cluster = Cluster(hub, config.settings.cluster) if config.settings.cluster is not None else None
    if cluster is not None:
        cluster.start()  # connects in the background, and again whenever Redis goes away
    # a connection that never finishes its request (or handshake) is dropped, not held for an hour
    tls = config.settings.server.tls
    app = make_app(hub, socketio_polling=worker is None)  # a worker shares its port: no session affinity
    server = HTTPServer(HeadLimit(app), idle_connection_timeout=HTTP_IDLE_TIMEOUT_S,
                        body_timeout=HTTP_IDLE_TIMEOUT_S, max_header_size=HARD_HEAD_LIMIT_BYTES,
                        ssl_options=tls_context(tls, config.file.parent) if tls is not None else None)
    server.add_sockets(sockets)
    tune_gc()  # start-up is done: what it built is never garbage
    if worker is None:
        print(describe(config, host, sockets[0].getsockname()[1], watching=watch), flush=True)
    else:
        log.info("worker %d serving (pid %d)", worker, os.getpid())
    watcher = ConfigWatcher(config, hub.apply)
    if watch:
        watcher.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down")
    watcher.stop()
    server.stop()  # 1. stop accepting connections
    hub.stop()  # 2. stop every stream's clock
    # 3. drop Socket.IO connections, so their clients retry until a server is back (a Socket.IO
    #    disconnect would tell them not to); then close WebSockets ourselves: Tornado does not
    await app.settings["socket_io"].shutdown()
    hub.close_all(1001, "server shutting down")
    if cluster is not None:  # 3b. while they close, hand this process's shared clocks to another process
        await cluster.stop()
    if not await hub.wait_closed(SHUTDOWN_CLOSE_WAIT_S):  # 4. let the close handshakes finish, bounded
        log.info("%d client(s) did not answer the close in time", len(hub.sockets))
    try:  # 5. drop idle HTTP keep-alive connections
        await asyncio.wait_for(server.close_all_connections(), 0.5)
    except asyncio.TimeoutError:
        pass
    return 0


def listen_error(e: OSError, host: str, port: int) -> str:
    """One line saying why listening failed and what to do."""
    if isinstance(e, socket.gaierror):  # the host name does not resolve
        return f"error: cannot listen on host {host!r}: {e.strerror}"
    if e.errno == errno.EADDRINUSE:
        return (f"error: port {port} on {host} is already in use (another server running?); "
                f"stop it or pick another port with --port N or server.port in the config")
    if e.errno == errno.EACCES:
        return f"error: no permission to listen on port {port}; use a port above 1023 (--port N)"
    if e.errno == errno.EADDRNOTAVAIL:
        return f"error: {host} is not an address of this machine; use 127.0.0.1 or 0.0.0.0 (--host)"
    return f"error: cannot listen on {host}:{port}: {e.strerror}"


GC_GEN0_THRESHOLD = 50_000  # young objects between collections (Python's default: 700)


def tune_gc() -> None:
    """Keep Python's cyclic GC from stalling the push loop; call once, after start-up.

    With a thousand connections a full (generation 2) collection walks every
    object the server holds and paused the loop long enough to skip whole
    ticks (figures: bench/RESULTS.md). Freezing what start-up built (modules,
    config, templates) takes it out of every later collection, and a larger
    generation-0 threshold lets a tick's short-lived objects die by reference
    counting instead of being promoted towards generation 2, which makes full
    collections rarer. Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


FD_HEADROOM = 256  # descriptors kept for listening sockets, mock files, HTTP requests and a refused handshake


def raise_open_file_limit(max_clients: int) -> int:
    """Make room for max_clients sockets (RLIMIT_NOFILE, the hard limit too when allowed); the limit in force."""
    want = max_clients + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # needs privileges (root with CAP_SYS_RESOURCE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        target = soft
    if target < want:
        log.warning("open-file limit is %d, so at most %d clients can connect (server.max_clients is %d); "
                    "raise it with `ulimit -n %d` before starting", target, target - FD_HEADROOM, max_clients, want)
    return target


def describe(config: AppConfig, host: str, port: int, checked: bool = False, watching: bool = True,
             workers: int = 1) -> str:
    """The banner: every URL the server serves, with each stream's source and timing."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    secure = "s" if config.settings.server.tls is not None else ""
    http, ws = f"http{secure}://{shown}:{port}", f"ws{secure}://{shown}:{port}"
    head = (f"{config.file}: OK, it would serve on {http}" if checked
            else f"Mock WebSocket server on {http}  (config {config.file}"
                 f"{f', {workers} worker processes' if workers > 1 else ''})")
    rows = [("demo page", f"{http}/", "")]
    for stream in config.streams:
        where = f"{ws}{stream.path}" if stream.path is not None else "(topic only)"
        rules = config.rules.get(stream.path) if stream.path is not None else None
        answers = f", {_count(len(rules.rules), 'rule')}" if rules is not None and rules.rules else ""
        rows.append(("stream", where, f"{stream.name}: {_stream_summary(config, stream.name)}{answers}"))
    for endpoint in config.settings.endpoints:
        rules = config.rules[endpoint.path]
        rows.append(("endpoint", f"{ws}{endpoint.path}", f"{_count(len(rules.rules), 'rule')}"
                                                         f"{', a fallback' if rules.fallback else ''}"))
    if config.settings.echo is not None:
        rows.append(("echo", f"{ws}{config.settings.echo.path}", "sends every message back"))
    served = [s for s in config.streams if s.socketio_namespace is not None]
    if served:
        rows.append(("socket.io", http, ", ".join(f"{s.socketio_namespace} emits '{s.socketio_event}'"
                                                   for s in served)
                     + ("; WebSocket transport only (several workers)" if workers > 1 else "")))
    rows.append(("api", f"{http}/api/streams", ""))
    width = max(len(url) for _, url, note in rows if note)
    lines = [head] + [f"  {kind:<10} {url:<{width}}  {note}".rstrip() for kind, url, note in rows]
    cluster = config.settings.cluster
    if cluster is not None:
        lines.append(f"  cluster    {cluster.name} through Redis at {_without_password(cluster.redis)}: one timeline "
                     "and one control API with every process there")
    if host in ("0.0.0.0", "::", ""):
        lines.append("  listening on every interface: other devices use this machine's LAN address")
    if not checked:
        lines.append(("Edits to the config and mock files apply live. " if watching else "") + "Press Ctrl-C to stop.")
    return "\n".join(lines)


def _without_password(url: str) -> str:
    """A Redis URL fit for the banner: redis://:secret@host:6379/0 -> redis://host:6379/0."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _stream_summary(config: AppConfig, name: str) -> str:
    stream = next(s for s in config.streams if s.name == name)
    if stream.source == "random":
        what = "random template"
    else:
        frames = config.sources[name].length
        what = f"file {stream.file} ({frames} frame{'s' if frames != 1 else ''}{'' if stream.loop else ', once'})"
    if stream.timing == "recorded":
        when = "recorded timing" + (f" x{stream.speed:g}" if stream.speed != 1 else "")
    else:
        when = f"every {stream.interval_ms} ms"
    faults = f", FAULTS ON: {stream.faults.summary()}" if stream.faults and stream.faults.enabled() else ""
    return f"{what}, {when}, {stream.timeline}{faults}"


if __name__ == "__main__":
    sys.exit(main())
