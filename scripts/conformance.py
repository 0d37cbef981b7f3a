#!/usr/bin/env python3
"""Run the Autobahn|Testsuite WebSocket conformance cases against the echo endpoint.

    python3 scripts/conformance.py                       # start the server, run the cases, stop it
    python3 scripts/conformance.py --url ws://127.0.0.1:3030/echo   # a server that is already running
    python3 scripts/conformance.py --cases '5.*,7.9.*'   # some cases only
    python3 scripts/conformance.py --compression         # also the permessage-deflate cases (12.1, 13.1, 13.2)
    python3 scripts/conformance.py --tls                 # over wss://, with a throwaway self-signed certificate
    python3 scripts/conformance.py --build-only          # only build the test tool

The suite's client (`wstest -m fuzzingclient`) runs on Python 2.7 only. It is built once into
$XDG_CACHE_HOME/mockws/autobahn (~/.cache/mockws/autobahn by default) from a Python 2.7 found with
pyenv or on PATH, and reused from then on.

Exit codes: 0 every case OK or INFORMATIONAL; 1 some case is not (or the run itself failed:
the server did not start, wstest crashed or timed out); 2 bad arguments; 3 the tools cannot be
built or found (no Python 2.7, a pip failure, no openssl for --tls), so a caller can tell "cannot
run here" from "does not conform".

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "mockws"
AGENT = PROJECT  # the server's name in wstest's reports

EXIT_OK, EXIT_NOT_CONFORMING, EXIT_USAGE, EXIT_CANNOT_BUILD = 0, 1, 2, 3

# 1-7 framing, pings, reserved bits, opcodes, fragmentation, UTF-8, closing; 9.1-9.4 large text and
# binary messages, whole or in frames (up to 16 MiB); 10 automatic fragmentation.
# 9.5-9.8 (many tiny frames or messages) are performance cases: minutes, and nothing on conformance.
DEFAULT_CASES = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.1.*", "9.2.*", "9.3.*", "9.4.*", "10.*")
# The client offers permessage-deflate: 12.1 compressed echoes of growing sizes, 13.1 and 13.2 the
# extension's parameters (window bits, no context takeover). Without compression they are UNIMPLEMENTED.
COMPRESSION_CASES = ("12.1.*", "13.1.*", "13.2.*")
PASSING = ("OK", "INFORMATIONAL")
BEHAVIOURS = ("OK", "NON-STRICT", "FAILED", "INFORMATIONAL")  # always in the summary; any other is added

MiB = 1024 * 1024
MAX_MESSAGE_BYTES = 20 * MiB  # 9.1.6 and 9.2.6 send (and get back) a 16 MiB message
MAX_PENDING_BYTES = 64 * MiB  # a whole 16 MiB echo may sit unflushed behind a slow reader

# wstest and what it needs, pinned: the last releases that run on Python 2.7.
VIRTUALENV = "virtualenv==20.15.1"  # the last virtualenv that can create a Python 2.7 environment
REQUIREMENTS = """\
autobahntestsuite==25.10.1
autobahn[accelerate,twisted]==0.10.9
Twisted==19.10.0
txaio==2.1.0
zope.interface==4.6.0
Automat==22.10.0
attrs==21.4.0
constantly==15.1.0
hyperlink==21.0.0
incremental==16.10.1
idna==2.10
PyHamcrest==1.10.1
six==1.16.0
typing==3.10.0.0
wsaccel==0.6.6
ujson==2.0.3
pyOpenSSL==19.1.0
cryptography==3.3.2
cffi==1.15.1
pycparser==2.21
enum34==1.1.10
ipaddress==1.0.23
service-identity==18.1.0
pyasn1==0.5.1
pyasn1-modules==0.3.0
klein==17.10.0
Werkzeug==1.0.1
Jinja2==2.11.3
MarkupSafe==1.1.1
unittest2==1.1.0
linecache2==1.0.0
traceback2==1.4.0
argparse==1.4.0
setuptools==44.0.0
"""

PYTHON2_HINT = "no Python 2.7 found: `pyenv install 2.7.18`, or pass --python2 /path/to/python2.7"
OPENSSL_HINT = "openssl not found (needed for --tls): apt-get install openssl"


class CannotBuildError(Exception):
    """The tools cannot be built or found here; the message is a one-line hint."""


# ---------------------------------------------------------------- building wstest

def cache_dir() -> Path:
    """$XDG_CACHE_HOME/mockws/autobahn, ~/.cache/mockws/autobahn when unset (or not absolute)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / PROJECT / "autobahn"


def wstest_path(cache: Path) -> Path:
    return cache / "venv" / "bin" / "wstest"


def is_built(cache: Path) -> bool:
    """wstest is there and was built from today's pins (a half-finished or older build is not)."""
    stamp = cache / "venv" / "built-from.txt"
    return wstest_path(cache).exists() and stamp.exists() and stamp.read_text() == REQUIREMENTS


def is_python27(executable: str) -> bool:
    try:
        found = subprocess.run([executable, "-c", "import sys; print(sys.version_info[:2] == (2, 7))"],
                               capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return found.stdout.strip() == "True"


def find_python27(explicit: str | None) -> str:
    """The Python 2.7 to build with: --python2, else pyenv's newest 2.7, else python2.7 on PATH."""
    if explicit:
        if not is_python27(explicit):
            raise CannotBuildError(f"{explicit} is not a working Python 2.7 (`pyenv install 2.7.18` brings one)")
        return explicit
    roots = []
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
        roots.append(found.stdout.strip())
    roots += [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    candidates = []
    for root in filter(None, roots):
        candidates += sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python")), reverse=True)
    candidates += filter(None, [shutil.which("python2.7"), shutil.which("python2")])
    for candidate in candidates:
        if is_python27(candidate):
            return candidate
    raise CannotBuildError(PYTHON2_HINT)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One build at a time (e.g. two test runs starting together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def python2_env(**extra: str) -> dict[str, str]:
    """The environment for Python 2.7 programs: without a Python 3 PYTHONPATH or PYTHONHOME leaking in."""
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, **extra}


def run_step(what: str, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    """Run one build step, its output appended to the build log; CannotBuildError with a hint on failure."""
    print(f"autobahn: {what} ...", flush=True)
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        try:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env or python2_env(),
                                  timeout=1800, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CannotBuildError(f"{what} failed ({e}); see {log}") from None
    if done.returncode != 0:
        raise CannotBuildError(f"{what} failed (exit {done.returncode}): {last_error(log)} "
                          f"(is the package registry reachable? full log: {log})")


def last_error(log: Path) -> str:
    """The line of a build log that says what went wrong: its last ERROR line, else its last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1]


def build(python2: str | None = None) -> Path:
    """Build wstest into the cache unless it is already there; returns its path. Raises CannotBuildError."""
    cache = cache_dir()
    if is_built(cache):
        return wstest_path(cache)
    with locked(cache / "build.lock"):
        if is_built(cache):  # built by someone else while we waited
            return wstest_path(cache)
        py2 = find_python27(python2)
        print(f"autobahn: building wstest (Autobahn|Testsuite, Python 2.7) into {cache}, once; "
              f"this takes about a minute", flush=True)
        for stale in ("virtualenv", "venv"):
            shutil.rmtree(cache / stale, ignore_errors=True)
        log = cache / "build.log"
        log.write_text("")
        tool = cache / "virtualenv"
        run_step(f"installing {VIRTUALENV} with {py2}",
                 [py2, "-m", "pip", "install", "--quiet", "--target", str(tool), VIRTUALENV], log)
        run_step("creating the Python 2.7 environment",
                 [py2, "-m", "virtualenv", "--quiet", "--app-data", str(cache / "virtualenv-data"),
                  "-p", py2, str(cache / "venv")], log, env=python2_env(PYTHONPATH=str(tool)))
        requirements = cache / "requirements.txt"
        requirements.write_text(REQUIREMENTS)
        run_step("installing autobahntestsuite and its pinned dependencies",
                 [str(cache / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet",
                  "-r", str(requirements)], log)
        run_step("checking that wstest starts", [str(wstest_path(cache)), "--autobahnversion"], log)
        (cache / "venv" / "built-from.txt").write_text(REQUIREMENTS)
        print(f"autobahn: wstest is ready ({wstest_path(cache)})", flush=True)
    return wstest_path(cache)


# ---------------------------------------------------------------- the server under test

def server_config(folder: Path, tls: bool = False, compression: bool = False) -> dict:
    """The config the suite runs against: only the echo endpoint, with room for its largest messages."""
    server: dict = {"host": "127.0.0.1", "port": 0, "max_message_bytes": MAX_MESSAGE_BYTES,
                    "max_pending_bytes": MAX_PENDING_BYTES,
                    "ping_interval_s": 0}  # only the suite's own frames on the wire
    if tls:
        server["tls"] = {"cert_file": str(folder / "cert.pem"), "key_file": str(folder / "key.pem")}
    if compression:
        server["compression"] = True
    return {"server": server, "streams": [], "echo": {"path": "/echo"}}


def write_server_config(folder: Path, tls: bool = False, compression: bool = False) -> Path:
    """Write server_config() (as JSON, which YAML reads as is); with tls, a self-signed certificate too."""
    if tls:
        make_certificate(folder)
    path = folder / "conformance.yaml"
    path.write_text(json.dumps(server_config(folder, tls, compression), indent=2))
    return path


def make_certificate(folder: Path) -> None:
    """A throwaway self-signed certificate for localhost: folder/cert.pem and folder/key.pem."""
    if shutil.which("openssl") is None:
        raise CannotBuildError(OPENSSL_HINT)
    done = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                           "-subj", "/CN=localhost", "-keyout", str(folder / "key.pem"),
                           "-out", str(folder / "cert.pem")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CannotBuildError(f"openssl could not make a certificate: {done.stderr.strip()}")


class RunFailedError(Exception):
    """The run itself failed: the server did not start, or wstest crashed or timed out."""


class Server:
    """`server.py -c CONFIG --port 0` as a child process; the port is read from its banner."""

    BANNER = re.compile(r"Mock WebSocket server on \w+://[^\s/]+:(\d+)")

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout_s: float = 20.0) -> int:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "server.py", "-c", str(self.config), "--port", "0", "--no-watch",
                 "--log-level", "warning"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RunFailedError(f"the server exited with {self.process.returncode}:\n{self.log_text()}")
            found = self.BANNER.search(self.log_text())
            if found and self._accepts(int(found.group(1))):
                self.port = int(found.group(1))
                return self.port
            time.sleep(0.05)
        self.stop()
        raise RunFailedError(f"the server did not start within {timeout_s:g} s:\n{self.log_text()}")

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (graceful shutdown), SIGKILL if it is still there after timeout_s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# ---------------------------------------------------------------- running the suite

def case_key(case_id: str) -> list[int]:
    return [int(part) for part in case_id.split(".") if part.isdigit()]


def describe_cases(cases: list[str]) -> str:
    """'1.*', ..., '7.*', '9.1.*', ..., '9.4.*', '10.*' -> '1-7, 9.1-9.4, 10'."""
    groups: list[list[str]] = []
    for case in cases:
        case = case.removesuffix(".*")
        prefix, _, last = case.rpartition(".")
        previous = groups[-1][-1] if groups else None
        if previous is not None and last.isdigit():
            p_prefix, _, p_last = previous.rpartition(".")
            if p_prefix == prefix and p_last.isdigit() and int(p_last) + 1 == int(last):
                groups[-1].append(case)
                continue
        groups.append([case])
    return ", ".join(group[0] if len(group) == 1 else f"{group[0]}-{group[-1]}" for group in groups)


def run_wstest(wstest: Path, url: str, cases: list[str], folder: Path, timeout_s: float,
               verbose: bool = False) -> dict[str, dict]:
    """Run the fuzzing client; returns the report's {case id: result}."""
    outdir = folder / "reports"
    spec = {"outdir": str(outdir), "servers": [{"agent": AGENT, "url": url}],
            "cases": cases, "exclude-cases": [], "exclude-agent-cases": {}}
    spec_path = folder / "fuzzingclient.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    log = folder / "wstest.log"
    print(f"autobahn: running cases {', '.join(cases)} against {url}", flush=True)
    with log.open("wb") as out:
        try:
            done = subprocess.run([str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)], cwd=folder,
                                  stdout=None if verbose else out, stderr=subprocess.STDOUT,
                                  env=python2_env(), timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RunFailedError(f"wstest did not finish within {timeout_s:g} s (raise it with --timeout)") from None
    index = outdir / "index.json"
    if done.returncode != 0 or not index.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RunFailedError(f"wstest exited with {done.returncode} and no report:\n{tail}")
    return json.loads(index.read_text()).get(AGENT, {})


def case_line(case_id: str, result: dict, reports: Path) -> str:
    """One line for a case that is not plain OK: what it does and what went wrong."""
    details = {}
    report = reports / result.get("reportfile", "")
    if report.is_file():
        details = json.loads(report.read_text())
    what = re.sub(r"<[^>]+>", "", details.get("description", "").split("\n")[0].split("<br>")[0])
    what = what.split(". ")[0].strip().rstrip(".")
    line = f"  {case_id:<8} {result['behavior']:<14} {what}"
    outcome = details.get("result", "")
    if result["behavior"] not in PASSING and outcome and not outcome.startswith("Actual events match"):
        line += f" -> {outcome}"
    if result.get("behaviorClose") not in ("OK", "INFORMATIONAL", None):
        line += f" (close: {result['behaviorClose']}, the server closed with {result.get('remoteCloseCode')})"
    if result["behavior"] == "NON-STRICT":
        line += " -> right in the end, but not failed as soon as it should be"
    return line


def report(results: dict[str, dict], cases: list[str], url: str, reports: Path) -> bool:
    """Print one line per case that is not OK and the summary; True when every case passes."""
    ordered = sorted(results.items(), key=lambda item: case_key(item[0]))
    for case_id, result in ordered:
        if result["behavior"] != "OK":
            print(case_line(case_id, result, reports))
    counts = collections.Counter(result["behavior"] for result in results.values())
    names = list(BEHAVIOURS) + sorted(set(counts) - set(BEHAVIOURS))
    print(f"autobahn: {', '.join(f'{counts[name]} {name}' for name in names)} "
          f"(cases {describe_cases(cases)}) against {url}", flush=True)
    return bool(results) and all(result["behavior"] in PASSING for result in results.values())


def split_cases(text: str) -> list[str]:
    return [case.strip() for case in text.split(",") if case.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the Autobahn|Testsuite fuzzing client against the echo endpoint and summarise it.",
        epilog="Exit codes: 0 all cases OK or INFORMATIONAL, 1 some are not (or the run failed), "
               "3 the test tool cannot be built here.")
    parser.add_argument("--url", help="test a running server, e.g. ws://127.0.0.1:3030/echo "
                                      "(default: start server.py with a config made for the suite)")
    parser.add_argument("--cases", type=split_cases, default=list(DEFAULT_CASES),
                        help=f"comma-separated case ids or patterns (default: {','.join(DEFAULT_CASES)})")
    parser.add_argument("--compression", action="store_true",
                        help="serve with server.compression and add the permessage-deflate cases "
                             f"({', '.join(c.removesuffix('.*') for c in COMPRESSION_CASES)})")
    parser.add_argument("--tls", action="store_true",
                        help="serve over TLS (server.tls, a throwaway self-signed certificate) and test wss://")
    parser.add_argument("--build-only", action="store_true", help="build wstest into the cache and exit")
    parser.add_argument("--python2", help="the Python 2.7 to build wstest with (default: pyenv's, or python2.7)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds wstest may run (default: 900)")
    parser.add_argument("--report-dir", type=Path,
                        help="keep wstest's reports (index.html: one page per case) in this folder")
    parser.add_argument("--verbose", action="store_true", help="show wstest's own output")
    args = parser.parse_args(argv)
    if args.url:
        scheme = urlsplit(args.url).scheme
        if scheme not in ("ws", "wss"):
            parser.error("--url must start with ws:// or wss://")
        if args.tls and scheme != "wss":
            parser.error("--tls with --url needs a wss:// URL")
    if args.compression:
        args.cases += [case for case in COMPRESSION_CASES if case not in args.cases]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wstest = build(args.python2)
    except CannotBuildError as e:
        print(f"autobahn: cannot build wstest: {e}", file=sys.stderr)
        return EXIT_CANNOT_BUILD
    if args.build_only:
        print(f"autobahn: wstest is built ({wstest})")
        return EXIT_OK
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="conformance-") as scratch:
        folder = Path(scratch)
        server = None
        try:
            url = args.url
            if url is None:
                server = Server(write_server_config(folder, args.tls, args.compression), folder / "server.log")
                port = server.start()
                url = f"{'wss' if args.tls else 'ws'}://127.0.0.1:{port}/echo"
            results = run_wstest(wstest, url, args.cases, folder, args.timeout, args.verbose)
        except CannotBuildError as e:
            print(f"autobahn: cannot run: {e}", file=sys.stderr)
            return EXIT_CANNOT_BUILD
        except RunFailedError as e:
            print(f"autobahn: {e}", file=sys.stderr)
            return EXIT_NOT_CONFORMING
        finally:
            if server is not None:
                server.stop()
        passed = report(results, args.cases, url, folder / "reports")
        if server is not None and re.search(r"Traceback|\bERROR\b", server.log_text()):
            tail = "\n".join("  | " + line for line in server.log_text().splitlines()[-20:])
            print(f"autobahn: the server logged errors, which fails the run; the end of its log:\n{tail}")
            passed = False
        print(f"autobahn: {len(results)} cases in {time.monotonic() - started:.0f} s", flush=True)
        if args.report_dir is not None:
            shutil.copytree(folder / "reports", args.report_dir, dirs_exist_ok=True)
            if server is not None:
                shutil.copy(server.log, args.report_dir / "server.log")
            print(f"autobahn: reports in {args.report_dir / 'index.html'}")
        elif not passed:
            print("autobahn: --report-dir DIR keeps the per-case reports (index.html)")
    return EXIT_OK if passed else EXIT_NOT_CONFORMING


if __name__ == "__main__":
    sys.exit(main())
