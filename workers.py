"""`server.workers: N`: N server processes on one port, started, restarted and stopped by this one.

Each worker is `server.py --worker I` listening with SO_REUSEPORT, so the
kernel spreads new connections over the workers and each one serves its own;
they share timelines and the control API through the config's `cluster:`
(streams.cluster), which `workers` > 1 requires. Why processes started anew
rather than forked: a worker is exactly the single-process server, nothing is
inherited by accident (event loops, sockets, Redis connections), and a worker
that dies is started again the same way.

This process serves nothing: it holds the port (bound, not listening, so the
kernel never hands it a connection), watches its workers, and on Ctrl-C /
SIGTERM passes the signal on and waits for them (each closes its clients with
1001), killing any that is not done in time.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("mockws.workers")

SERVER = Path(__file__).resolve().parent / "server.py"
STOP_WAIT_S = 2.0  # after Ctrl-C / SIGTERM, how long workers get to close their clients before they are killed
POLL_S = 0.1
QUICK_DEATH_S = 2.0  # a worker that dies sooner than this after its start is restarted after a pause


def worker_count(setting: int | str) -> int:
    """How many workers `server.workers` asks for: a number, or `auto` for one per CPU."""
    if setting == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return int(setting)


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind the port with SO_REUSEPORT without listening: port 0 gets a number, and the port stays ours
    while workers come and go. Raises OSError like a listen would (port in use, ...)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Workers:
    """N `server.py --worker I` processes on one port, restarted when one dies."""

    def __init__(self, count: int, arguments: list[str]) -> None:
        self.count = count
        self.arguments = arguments  # the command line every worker gets (config, host, port, log level, ...)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.started_at: dict[int, float] = {}
        self._stopping = False

    def start(self, number: int) -> None:
        """Start worker ``number`` (1-based)."""
        command = [sys.executable, str(SERVER), *self.arguments, "--worker", str(number)]
        self.processes[number] = subprocess.Popen(command)
        self.started_at[number] = time.monotonic()

    def run(self) -> int:
        """Start every worker and keep them running until SIGINT/SIGTERM; returns the exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        for number in range(1, self.count + 1):
            self.start(number)
        while not self._stopping:
            for number, process in list(self.processes.items()):
                if process.poll() is not None and not self._stopping:
                    self._restart(number, process.returncode)
            time.sleep(POLL_S)
        return self.stop()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _restart(self, number: int, code: int) -> None:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
        log.warning("worker %d (pid %d) %s; starting it again", number, self.processes[number].pid, how)
        if time.monotonic() - self.started_at[number] < QUICK_DEATH_S:
            time.sleep(1.0)  # it dies at start-up: do not spin
        self.start(number)

    def stop(self) -> int:
        """Pass SIGTERM on to every worker, wait for them, kill the ones still running after STOP_WAIT_S."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for number, process in self.processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %d (pid %d) did not stop in %.0f s; killing it", number, process.pid, STOP_WAIT_S)
                process.kill()
                process.wait()
        return 0
