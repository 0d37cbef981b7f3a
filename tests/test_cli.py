"""`python server.py` for real, as a subprocess: banner, --check, port in use, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest
from tornado.websocket import websocket_connect

from server_process import ServerProcess, free_port
from support import ROOT, base_config, close_and_wait, write_config


def run(*args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "server.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path, base_config())


@pytest.fixture
def server(config_path, tmp_path):
    with ServerProcess(config_path, free_port(), tmp_path / "server.log") as process:
        yield process


def test_check_validates_and_prints_what_would_be_served():
    result = run("--check")
    assert result.returncode == 0, result.stderr
    assert "config.yaml: OK" in result.stdout
    assert "ws://127.0.0.1:3030/  " in result.stdout and "stats: random template, every 3000 ms" in result.stdout
    assert "ws://127.0.0.1:3030/replay" in result.stdout and "(30 frames)" in result.stdout
    assert "ws://127.0.0.1:3030/echo" in result.stdout


def test_check_with_errors_exits_2_listing_them_without_traceback(tmp_path):
    data = base_config()
    data["streams"][0]["interval_ms"] = 0
    data["streams"][1]["file"] = "missing.json"
    result = run("--check", "-c", str(write_config(tmp_path, data)))
    assert result.returncode == 2
    assert "streams[0].interval_ms: must be an integer >= 1, got 0" in result.stderr
    assert "missing.json: file not found" in result.stderr
    assert "2 problems in" in result.stderr
    assert "Traceback" not in result.stderr


def test_banner_lists_every_url(server):
    banner = server.log_path.read_text()
    port = server.port
    for url in (f"http://127.0.0.1:{port}/", f"ws://127.0.0.1:{port}/replay", f"ws://127.0.0.1:{port}/echo",
                f"http://127.0.0.1:{port}/api/streams"):
        assert url in banner
    assert "stats: random template, every 50 ms, per-client" in banner


def test_port_in_use_says_so_and_exits_1(server):
    result = run("-c", str(server.config_path), "--port", str(server.port))
    assert result.returncode == 1
    assert f"port {server.port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_host_that_does_not_resolve_says_so_and_exits_1(config_path, workers):
    data = base_config()
    data["server"]["workers"] = workers
    data["cluster"] = {"redis": "redis://127.0.0.1:1/0"}  # workers need one; never reached: listening fails first
    result = run("-c", str(write_config(config_path.parent, data, "host.yaml")), "--host", "no.such.host.invalid")
    assert result.returncode == 1
    assert "error: cannot listen on host 'no.such.host.invalid'" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_closes_clients_with_1001_and_exits_0_within_2s(server):
    async def connect_then_wait_for_close():
        conns = [await websocket_connect(f"ws://127.0.0.1:{server.port}{path}") for path in ("/", "/echo")]
        await conns[0].read_message()
        server.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        for conn in conns:
            while await asyncio.wait_for(conn.read_message(), 2) is not None:
                pass
            conn.close()
        return [(c.close_code, c.close_reason) for c in conns], started

    closes, started = asyncio.run(connect_then_wait_for_close())
    assert closes == [(1001, "server shutting down")] * 2
    assert server.process.wait(timeout=2) == 0
    assert time.monotonic() - started < 2


def test_runs_the_default_config_from_the_project_folder(tmp_path):
    """`python server.py` with no arguments serves ./config.yaml (here on a free port)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "server.py", "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first_line = process.stdout.readline()
        assert f"Mock WebSocket server on http://127.0.0.1:{port}" in first_line

        async def first_frame():
            conn = await websocket_connect(f"ws://127.0.0.1:{port}")
            frame = json.loads(await conn.read_message())
            await close_and_wait(conn)
            return frame

        assert set(asyncio.run(first_frame())) == {"face", "car", "touchDoor", "rfid", "kakou", "wifi", "video"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=5)
        process.stdout.close()
