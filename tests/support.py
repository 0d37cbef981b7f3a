"""Test configs (the default config's shape at test speed, ways to write and tweak it) and small shared helpers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import tornado.httpserver
import yaml

from browser import launch_chromium, missing_browser_reason

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent

CATEGORIES = [("face", "人像"), ("car", "车辆"), ("touchDoor", "感知门"), ("rfid", "rfid"),
              ("kakou", "卡口"), ("wifi", "wifi"), ("video", "视频")]
STATS_TEMPLATE = {key: {"yesterdayValue": {"$int": [0, 1000000]}, "name": name,
                        "toadyValue": {"$int": [0, 1000000]}} for key, name in CATEGORIES}
REPLY = "web socket 已连接: {message}"


async def close_and_wait(conn, timeout_s: float = 2.0) -> None:
    """Close a client WebSocket and wait for the server's answer, which closes the socket.

    A test that runs its own event loop (asyncio.run) and returns right after
    ``conn.close()`` leaves the socket open for the garbage collector, whose
    ResourceWarning then fails whichever test is running at the time.
    """
    conn.close()
    while await asyncio.wait_for(conn.read_message(), timeout_s) is not None:
        pass  # frames sent before the server saw the close


def base_config() -> dict[str, Any]:
    """The default config's shape with test-sized intervals and a fixed seed."""
    return {
        "server": {"host": "127.0.0.1", "port": 0, "ping_interval_s": 0},
        "streams": [
            {"name": "stats", "path": "/", "source": "random", "interval_ms": 50,
             "reply": REPLY, "template": STATS_TEMPLATE},
            {"name": "replay", "path": "/replay", "source": "replay", "file": "data-coll.json",
             "interval_ms": 20},
        ],
        "echo": {"path": "/echo"},
        "random_seed": 7,
    }


def write_config(folder: Path, data: dict[str, Any] | str, name: str = "config.yaml") -> Path:
    """Write a config (a dict as YAML, or raw text) beside a copy of the shipped mock file."""
    if not (folder / "data-coll.json").exists():
        shutil.copy(ROOT / "mock" / "data-coll.json", folder / "data-coll.json")
    path = folder / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def stream_config(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The stream called ``name`` inside a config dict (to tweak it in place)."""
    return next(s for s in data["streams"] if s["name"] == name)


def edit_config(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Apply changes: ``server={...}`` merges into server, a stream's name merges into that
    stream (None removes it), other top-level keys (echo, random_seed, streams, endpoints) are replaced."""
    for key, value in changes.items():
        if key == "server":
            data["server"].update(value)
        elif key in ("echo", "random_seed", "streams", "endpoints"):
            data[key] = value
        elif value is None:
            data["streams"] = [s for s in data["streams"] if s["name"] != key]
        else:
            stream_config(data, key).update(value)
    return data


@pytest.fixture(name="http_server")
def http_server_trusting_x_real_ip(request, io_loop, _unused_port, app):
    """pytest-tornado's test server, trusting X-Real-Ip so a test can pose as a remote client.

    Import it into a test module to replace ``http_server`` there."""
    server = tornado.httpserver.HTTPServer(app, xheaders=True)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()


def push_only_stream(name: str) -> dict[str, Any]:
    """A stream that sends only what a test pushes (hub.push or the control API), at /<name>."""
    return {"name": name, "path": f"/{name}", "source": "random", "interval_ms": 600_000,
            "send_on_connect": False, "template": {"idle": True}}


async def until(condition: Callable[[], bool], timeout: float) -> float:
    """Wait for ``condition()``; returns how long it took, or fails after ``timeout`` seconds."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def read_json(conn, timeout: float = 2.0) -> Any:
    """The next message of a WebSocket client, parsed as JSON."""
    message = await asyncio.wait_for(conn.read_message(), timeout)
    assert message is not None, f"closed: {conn.close_code} {conn.close_reason}"
    return json.loads(message)


async def received_until_quiet(conn, quiet_s: float = 0.3) -> list[str | bytes]:
    """Every message until none has come for ``quiet_s``."""
    messages = []
    try:
        while (message := await asyncio.wait_for(conn.read_message(), quiet_s)) is not None:
            messages.append(message)
    except asyncio.TimeoutError:
        pass
    return messages


def pending_timers(io_loop) -> int:
    """Timers scheduled on the test's event loop (conftest's TimerCountingLoop) that have not run."""
    return io_loop.asyncio_loop.pending_timers()


def missing_tool(reason: str) -> NoReturn:
    """Skip a test whose outside tool (a browser, openssl, Node) is missing; with CI=true, fail instead:
    CI must run every test."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, so this test must run, but {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium, closed afterwards; the test is skipped (failed under CI=true) where no browser can
    be driven."""
    reason = missing_browser_reason()
    if reason is not None:
        missing_tool(reason)
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only once the browser check passed

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium_tab(url: str) -> Iterator[Page]:
    """A headless Chromium tab opened at ``url`` (see ``chromium``)."""
    with chromium() as browser:
        tab = browser.new_page()
        tab.goto(url)
        yield tab
