"""`server.tls`: the real server on https:// and wss://, and a certificate or key it cannot use."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect
from websockets.asyncio.client import connect as websockets_connect

from server_process import ServerProcess, free_port, get_json
from support import CATEGORIES, ROOT, base_config, close_and_wait, edit_config, missing_tool, write_config

CERT, KEY = "cert.pem", "key.pem"
OTHER_KEY = "other-key.pem"  # the key of another certificate


def make_certificate(folder: Path, cert: str, key: str) -> None:
    """A self-signed certificate for localhost and 127.0.0.1, and its unencrypted key."""
    result = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(folder / key),
         "-out", str(folder / cert)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with cert.pem and key.pem, and other-key.pem that belongs to another certificate."""
    if shutil.which("openssl") is None:
        missing_tool("openssl not found: apt-get install openssl")
    folder = tmp_path_factory.mktemp("certs")
    make_certificate(folder, CERT, KEY)
    make_certificate(folder, "other-cert.pem", OTHER_KEY)
    return folder


@pytest.fixture(scope="module")
def trusting(certs: Path) -> ssl.SSLContext:
    """A client context that trusts the test certificate (and checks it names 127.0.0.1)."""
    return ssl.create_default_context(cafile=certs / CERT)


@pytest.fixture(scope="module")
def server(certs: Path, trusting: ssl.SSLContext) -> Iterator[ServerProcess]:
    config = write_config(certs, edit_config(base_config(), server={"tls": {"cert_file": CERT, "key_file": KEY}}))
    with ServerProcess(config, free_port(), certs / "server.log", tls=trusting) as process:
        yield process


def test_banner_shows_https_and_wss_urls_only(server):
    banner = server.log_path.read_text()
    port = server.port
    for url in (f"https://127.0.0.1:{port}/", f"wss://127.0.0.1:{port}/replay", f"wss://127.0.0.1:{port}/echo",
                f"https://127.0.0.1:{port}/api/streams"):
        assert url in banner
    assert "http://" not in banner and "ws://" not in banner


def test_healthz_answers_over_https(server, trusting):
    assert get_json(f"https://127.0.0.1:{server.port}/healthz", context=trusting) == {"status": "ok"}


def test_a_wss_client_receives_stats_frames(server, trusting):
    async def two_frames() -> list[dict]:
        conn = await websocket_connect(HTTPRequest(f"wss://127.0.0.1:{server.port}/", ssl_options=trusting))
        frames = [json.loads(await asyncio.wait_for(conn.read_message(), 2)) for _ in range(2)]
        await close_and_wait(conn)  # else its socket outlives asyncio.run and warns in a later test
        return frames

    for frame in asyncio.run(two_frames()):
        assert set(frame) == {key for key, _ in CATEGORIES}


def test_wss_echo_returns_small_large_and_fragmented_messages(server, trusting):
    """A 200 KB message crosses many TLS records both ways; a fragmented one is reassembled."""
    large = "0123456789" * 20_000

    async def echoes() -> list[str | bytes]:
        async with websockets_connect(f"wss://127.0.0.1:{server.port}/echo", ssl=trusting, proxy=None) as ws:
            answers = []
            for message in ("hello", large, large.encode()):
                await ws.send(message)
                answers.append(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(["frag", "men", "ted"])
            answers.append(await asyncio.wait_for(ws.recv(), 5))
            return answers

    assert asyncio.run(echoes()) == ["hello", large, large.encode(), "fragmented"]


# -- certificates and keys the server cannot use


def start(folder: Path, cert_file: str, key_file: str) -> subprocess.CompletedProcess:
    """Start the real server with `server.tls` set to these files (relative to ``folder``)."""
    config = write_config(folder, edit_config(base_config(),
                                              server={"tls": {"cert_file": cert_file, "key_file": key_file}}))
    return subprocess.run([sys.executable, "server.py", "-c", str(config), "--port", str(free_port())], cwd=ROOT,
                          capture_output=True, text=True, timeout=15)


@pytest.fixture
def folder(tmp_path: Path, certs: Path) -> Path:
    """A config folder holding the good pair, the other key, a text file and a directory."""
    for name in (CERT, KEY, OTHER_KEY):
        shutil.copy(certs / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    (tmp_path / "keys").mkdir()
    return tmp_path


UNUSABLE = {  # cert_file, key_file, the key the error must name, the file it must name
    "certificate missing": ("missing.pem", KEY, "cert_file", "missing.pem"),
    "key missing": (CERT, "missing-key.pem", "key_file", "missing-key.pem"),
    "key is a directory": (CERT, "keys", "key_file", "keys"),
    "key of another certificate": (CERT, OTHER_KEY, "key_file", OTHER_KEY),
    "certificate not PEM": ("notes.txt", KEY, "cert_file", "notes.txt"),
    "key not PEM": (CERT, "notes.txt", "key_file", "notes.txt"),
    "certificate given as the key": (CERT, CERT, "key_file", CERT),
}


@pytest.mark.parametrize(("cert_file", "key_file", "key", "file"), list(UNUSABLE.values()), ids=list(UNUSABLE))
def test_an_unusable_certificate_or_key_exits_2_naming_the_file_and_the_key(folder, cert_file, key_file, key, file):
    result = start(folder, cert_file, key_file)
    assert result.returncode == 2
    [problem, _] = result.stderr.splitlines()
    assert f"server.tls.{key}:" in problem and f"{folder / file}" in problem
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_key_exits_2_naming_it(folder):
    (folder / KEY).chmod(0)
    result = start(folder, CERT, KEY)
    assert result.returncode == 2
    assert "server.tls.key_file:" in result.stderr and f"cannot read {folder / KEY}" in result.stderr


def test_a_certificate_that_is_not_pem_is_explained_without_python_values(folder):
    result = start(folder, "notes.txt", KEY)
    assert "is not a PEM certificate" in result.stderr and "None" not in result.stderr
