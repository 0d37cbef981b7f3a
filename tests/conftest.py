"""Shared fixtures: a config factory, the app under test and WebSocket clients that clean up."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.platform.asyncio import AsyncIOLoop
from tornado.websocket import WebSocketClientConnection, websocket_connect

from raw_client import RawClient
from redis_server import RedisServer
from support import ROOT, base_config, edit_config, missing_tool, write_config

sys.path.insert(0, str(ROOT))  # the project's modules, whatever the working directory

from app import make_app
from streams.build import AppConfig, load_config
from streams.hub import Hub


class TimerCountingLoop(asyncio.SelectorEventLoop):
    """The tests' event loop: it can say how many timers are pending, through its public call_at."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: set[asyncio.TimerHandle] = set()  # scheduled, not yet run

    def call_at(self, when, callback, *args, context=None) -> asyncio.TimerHandle:
        handle: asyncio.TimerHandle | None = None

        def run(*run_args):
            self.waiting.discard(handle)
            callback(*run_args)

        handle = super().call_at(when, run, *args, context=context)
        self.waiting.add(handle)
        return handle

    def pending_timers(self) -> int:
        """Timers scheduled (call_at, call_later) that have neither run nor been cancelled."""
        self.waiting = {handle for handle in self.waiting if not handle.cancelled()}
        return len(self.waiting)


@pytest.fixture
def io_loop():
    """pytest-tornado's IOLoop, on a TimerCountingLoop (``io_loop.asyncio_loop.pending_timers()``)."""
    asyncio_loop = TimerCountingLoop()
    # set first: else Tornado asks asyncio for the current loop, which makes one that nobody closes
    # (its ResourceWarning then fails whichever test runs when it is collected)
    asyncio.set_event_loop(asyncio_loop)
    io_loop = AsyncIOLoop(asyncio_loop=asyncio_loop)
    io_loop.make_current()
    yield io_loop
    io_loop.clear_current()
    io_loop.close(all_fds=True)  # closes the asyncio loop too
    asyncio.set_event_loop(None)


@pytest.fixture
def config_data(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The test's config: base_config() with the changes of @pytest.mark.config(stats={...}, ...)."""
    data = base_config()
    marker = request.node.get_closest_marker("config")
    return edit_config(data, **marker.kwargs) if marker is not None else data


@pytest.fixture
def mock_files() -> dict[str, str]:
    """Extra files written beside the test config, by name; a test module overrides it to add its own."""
    return {}


@pytest.fixture
def app_config(tmp_path: Path, config_data: dict[str, Any], mock_files: dict[str, str]) -> AppConfig:
    """The test config, written to a temp folder with its mock files and loaded like a user's."""
    for name, text in mock_files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return load_config(write_config(tmp_path, config_data))


@pytest.fixture
def hub(app_config: AppConfig, io_loop) -> Hub:
    """The hub under test; at teardown its clocks stop and its connections are dropped."""
    hub = Hub(app_config)
    yield hub
    hub.stop()
    for client in list(hub.sockets):
        client.abort()
    io_loop.run_sync(lambda: asyncio.sleep(0.01))  # the transports close on the loop's next turns


@pytest.fixture
def app(hub: Hub):
    """The application under test (pytest-tornado serves it on http_port)."""
    return make_app(hub)


@pytest.fixture
def ws_url(http_server, http_port: int) -> Callable[[str], str]:
    """ws://127.0.0.1:PORT + path, for the running test server."""
    return lambda path: f"ws://127.0.0.1:{http_port}{path}"


@pytest.fixture
def http_url(http_server, http_port: int) -> Callable[[str], str]:
    """http://127.0.0.1:PORT + path, for the running test server."""
    return lambda path: f"http://127.0.0.1:{http_port}{path}"


@pytest.fixture
def ws_connect(ws_url, io_loop) -> Callable[..., Awaitable[WebSocketClientConnection]]:
    """Open a WebSocket to the test server; every one is closed at teardown."""
    opened: list[WebSocketClientConnection] = []

    async def connect(path: str = "/", **kwargs: Any) -> WebSocketClientConnection:
        conn = await websocket_connect(ws_url(path), **kwargs)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def raw(http_server, http_port):
    """Opens hand-written clients (tests/raw_client.py) to the test server; every one is closed at teardown."""
    opened: list[RawClient] = []

    class Opener:
        @staticmethod
        async def open(rcvbuf: int | None = None) -> RawClient:
            """A TCP connection, nothing sent yet."""
            opened.append(await RawClient.open(http_port, rcvbuf))
            return opened[-1]

        @staticmethod
        async def connect(path: str = "/", rcvbuf: int | None = None) -> RawClient:
            """A WebSocket past its handshake."""
            opened.append(await RawClient.connect(http_port, path, rcvbuf))
            return opened[-1]

    yield Opener
    for client in opened:
        client.close()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A real, empty Redis on a free port (apt-get install redis-server), stopped at teardown."""
    if shutil.which("redis-server") is None:
        missing_tool("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
