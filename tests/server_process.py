"""The real server (`python server.py`) as a child process on a chosen port, for browser tests and scripts."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Straight to 127.0.0.1, whatever http_proxy the environment sets.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it, release it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, timeout_s: float = 2.0, context: ssl.SSLContext | None = None) -> object:
    """GET a URL on this machine and decode the JSON body (an https URL is verified with ``context``)."""
    opener = _direct if context is None else urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    with opener.open(url, timeout=timeout_s) as response:
        return json.load(response)


class ServerProcess:
    """`server.py -c CONFIG --port PORT`, output in `log_path`; start() waits for /healthz, stop() ends it.

    With ``tls`` (a client context trusting the server's certificate) the server is expected to serve https."""

    def __init__(self, config_path: Path, port: int, log_path: Path, tls: ssl.SSLContext | None = None) -> None:
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL, ending in a slash."""
        return f"http{'s' if self.tls else ''}://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 15.0) -> None:
        """Launch the server and return once GET /healthz answers {"status": "ok"}."""
        command = [sys.executable, "server.py", "-c", str(self.config_path), "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_healthy(timeout_s)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise

    def _wait_until_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if get_json(self.url + "healthz", timeout_s=1.0, context=self.tls)["status"] == "ok":
                    return
            except (OSError, ValueError):  # an HTTPError (a cluster's 503 while it connects to Redis) is an OSError
                pass  # not listening yet (connection refused) or not answering JSON yet
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer /healthz within {timeout_s} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (the server's graceful shutdown), then SIGKILL if it has not exited in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server printed (banner and log), for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
