"""Socket.IO on the same port, driven by the real client: socket.io-client in Node and in Chromium.

Each Node test runs once per Engine.IO transport a client can be limited to
(`transports: ['polling']`, `['websocket']`), since python-socketio serves
them through different code; the fault test also with both, where the client
starts polling and moves to WebSocket.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import ProxyHandler, Request, build_opener

import pytest

from config import ConfigError
from handlers.socket_io import WANTS_ACK, AckAwarePacket
from node_clients import NodeUnavailableError, node_modules, run_node, start_node
from server_process import ServerProcess, free_port, get_json
from streams.build import load_config
from support import CATEGORIES, base_config, chromium_tab, missing_tool, write_config

SOCKET_IO_CLIENT = "socket.io-client@4.8.1"
WS = "ws@8.23.0"
TRANSPORTS = ["polling", "websocket"]
STATS_KEYS = sorted(key for key, _ in CATEGORIES)

COUNT = {"name": "count", "path": "/count", "source": "random", "interval_ms": 30,
         "template": {"seq": {"$seq": True}}}
CHAT = {"name": "chat", "path": "/chat", "source": "random", "interval_ms": 600_000, "send_on_connect": False,
        "template": {"idle": True},
        "rules": [{"match": {"event": "ping"}, "do": [{"reply": {"pong": {"$message": "n"}}}]},
                  {"match": {"event": "late"}, "do": [{"delay": 50}, {"reply": "late reply"}]}],
        "fallback": [{"reply": "fallback: {{message}}"}]}
TICKS = {"name": "ticks", "source": "random", "interval_ms": 30, "template": {"t": {"$seq": True}},
         "socketio": {"namespace": "/ticker", "event": "tick"}}
FLAKY = {"name": "flaky", "path": "/flaky", "source": "random", "interval_ms": 30,
         "template": {"seq": {"$seq": True}}, "faults": {"disconnect_every_s": 0.3}}
SECRET = {"name": "secret", "path": "/secret", "source": "random", "interval_ms": 600_000,
          "template": {"secret": True}, "auth": {"query": "token", "values": ["s3cret"]}}
EXPIRING = {"name": "expiring", "path": "/expiring", "source": "random", "interval_ms": 600_000,
            "template": {"expiring": True}, "auth": {"query": "token", "expires_after_s": 0.4}}
MARKET = {"name": "md", "path": "/md/{symbol}", "source": "random", "interval_ms": 30,
          "params": {"symbol": {"enum": ["BTC-USD", "ETH-USD"]}}, "template": {"symbol": {"$param": "symbol"}}}
ALLOWED_ORIGINS = ["http://127.0.0.1:*", "http://localhost:5173"]


def served(tmp_path_factory: pytest.TempPathFactory, name: str, **server: Any) -> Iterator[ServerProcess]:
    """`python server.py` on the test config (plus the streams above), with these `server:` settings."""
    folder = tmp_path_factory.mktemp(name)
    data = base_config()
    data["server"].update(server)
    data["streams"] += [COUNT, CHAT, TICKS, FLAKY, SECRET, EXPIRING, MARKET]
    with ServerProcess(write_config(folder, data), free_port(), folder / "server.log") as process:
        yield process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from served(tmp_path_factory, "socketio-server", allowed_origins=ALLOWED_ORIGINS)


@pytest.fixture(scope="module")
def node_modules_folder() -> Path:
    try:
        return node_modules(SOCKET_IO_CLIENT, WS)
    except NodeUnavailableError as e:
        missing_tool(str(e))


# What every Node script starts with: connect(path) opens a client of its own (forceNew: no shared
# Engine.IO connection) on the test's transport, reconnecting fast; next(socket, event) waits for one.
PRELUDE = r"""
const { io } = require('socket.io-client');
const [base, transport] = process.argv.slice(1);
setTimeout(() => { console.error('no result within 8 s'); process.exit(1); }, 8000).unref();
const connect = (path, options = {}) => io(base + path, {
  transports: transport.split(','), forceNew: true, reconnectionDelay: 20, reconnectionDelayMax: 50, ...options });
const next = (socket, event) => new Promise((resolve, reject) => {
  socket.once(event, resolve);
  if (event !== 'connect_error') socket.once('connect_error', (e) => reject(new Error('connect_error: ' + e.message)));
});
const finish = (result) => { console.log(JSON.stringify(result)); process.exit(0); };
const main = (body) => body().catch((error) => { console.error(error); process.exit(1); });
"""


def node(server: ServerProcess, transport: str, body: str) -> Any:
    """Run PRELUDE + body against the server on one transport; what it passed to finish()."""
    return json.loads(run_node(PRELUDE + body, f"http://127.0.0.1:{server.port}", transport, timeout=15))


# -- frames as events


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_of_the_default_namespace_gets_stats_events(server, node_modules_folder, transport):
    """`io('http://localhost:3030').on('stats', ...)`: the stream at / emits its frames as 'stats'."""
    result = node(server, transport, """main(async () => {
      const socket = connect('/');
      const stats = await next(socket, 'stats');
      finish({keys: Object.keys(stats).sort(), face: stats.face, transport: socket.io.engine.transport.name});
    });""")
    assert result["keys"] == STATS_KEYS
    assert result["face"]["name"] == "人像" and isinstance(result["face"]["toadyValue"], int)
    assert result["transport"] == transport


def test_each_client_timeline_starts_when_it_joins_the_namespace(server, node_modules_folder):
    result = node(server, "websocket", """main(async () => {
      const first = connect('/count');
      const seen = [];
      first.on('count', (frame) => seen.push(frame.seq));
      while (seen.length < 4) await next(first, 'count');
      const second = connect('/count');
      const joined = await next(second, 'count');
      finish({first: seen.slice(0, 4), second: joined.seq, firstSince: seen[seen.length - 1]});
    });""")
    assert result["first"] == [1, 2, 3, 4]
    assert result["second"] == 1 and result["firstSince"] >= 4


def test_a_topic_only_stream_is_served_in_its_socketio_namespace_as_its_event(server, node_modules_folder):
    result = node(server, "websocket", """main(async () => {
      finish(await next(connect('/ticker'), 'tick'));
    });""")
    assert result == {"t": 1}


# -- what clients emit


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_emit_is_answered_as_the_same_event_and_an_ack_gets_the_first_reply_instead(server, node_modules_folder,
                                                                                     transport):
    result = node(server, transport, """main(async () => {
      const stats = connect('/');
      const messages = [];
      stats.on('message', (text) => messages.push(text));
      await next(stats, 'connect');
      stats.emit('message', 'hello server!');
      await next(stats, 'message');
      const acked = await stats.emitWithAck('message', 'with an ack');

      const chat = connect('/chat');
      const pings = [];
      chat.on('ping', (reply) => pings.push(reply));
      await next(chat, 'connect');
      const pong = await chat.emitWithAck('ping', {n: 3});
      chat.emit('ping', {n: 4});
      chat.emit('other', 'x');
      const other = await next(chat, 'other');
      const late = await chat.emitWithAck('late', 1);
      const lateEvent = await next(chat, 'late');
      finish({messages, acked, pong, pings, other, lateAckIsEmpty: late === undefined, lateEvent});
    });""")
    # the stream's one-line reply; answered by an ack, it is not emitted as well
    assert result["messages"] == ["web socket 已连接: hello server!"]
    assert result["acked"] == "web socket 已连接: with an ack"
    # match.event picks the rule; a JSON template's reply is an object, a text template's a string
    assert result["pong"] == {"pong": 3} and result["pings"] == [{"pong": 4}]
    assert result["other"] == "fallback: x"
    # a reply after a delay is too late for the ack, which comes empty; the reply is emitted
    assert result["lateAckIsEmpty"] is True and result["lateEvent"] == "late reply"


def test_the_api_counts_socketio_clients_by_transport(server, node_modules_folder):
    result = node(server, "websocket", """main(async () => {
      const WebSocket = require('ws');
      const sockets = [connect('/replay'), connect('/replay')];
      for (const socket of sockets) await next(socket, 'replay');
      const ws = new WebSocket(base.replace('http', 'ws') + '/replay');
      await new Promise((resolve) => ws.once('message', resolve));
      const streams = await (await fetch(base + '/api/streams')).json();
      const { clients, subscriptions, transports } = streams.find((s) => s.name === 'replay');
      finish({clients, subscriptions, transports});
    });""")
    assert result == {"clients": 3, "subscriptions": {"direct": 3, "topic": 0},
                      "transports": {"websocket": 1, "socketio": 2}}


# -- faults, refusals, CORS


@pytest.mark.parametrize("transport", [*TRANSPORTS, "polling,websocket"])  # the last one upgrades
def test_a_disconnect_fault_drops_the_connection_and_the_client_reconnects_by_itself(server, node_modules_folder,
                                                                                   transport):
    """The fault drops the Engine.IO connection, as a network would; the new connection gets a new timeline."""
    log = node(server, transport, """main(async () => {
      const socket = connect('/flaky');
      const log = [];
      socket.on('connect', () => log.push('connect'));
      socket.on('disconnect', (reason) => log.push('disconnect: ' + reason));
      socket.on('flaky', (frame) => { if (frame.seq === 1) log.push('seq 1'); });
      while (log.filter((entry) => entry === 'seq 1').length < 2) await next(socket, 'flaky');
      finish(log);
    });""")
    assert log[:2] == ["connect", "seq 1"] and log[3:] == ["connect", "seq 1"]
    # the client's reason: 'transport close', or 'transport error' when a poll was under way; both make it retry
    assert log[2] in ("disconnect: transport close", "disconnect: transport error")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_namespace_without_a_stream_gets_connect_error_with_the_reason(server, node_modules_folder, transport):
    result = node(server, transport, """main(async () => {
      const socket = connect('/nope');
      const error = await next(socket, 'connect_error');
      finish({message: error.message, retries: socket.active});
    });""")
    assert result["message"].startswith("no stream in the namespace /nope; namespaces: /, /replay, /count, ")
    assert result["retries"] is False  # a refusal by the server is final, by socket.io-client's design


def test_a_stream_with_auth_takes_the_token_from_the_auth_payload_or_the_query(server, node_modules_folder):
    result = node(server, "websocket", """main(async () => {
      const missing = await next(connect('/secret'), 'connect_error');
      const wrong = await next(connect('/secret', {auth: {token: 'guess'}}), 'connect_error');
      const byAuth = await next(connect('/secret', {auth: {token: 's3cret'}}), 'secret');
      const byQuery = await next(connect('/secret', {query: {token: 's3cret'}}), 'secret');
      finish({missing: missing.message, wrong: wrong.message, byAuth, byQuery});
    });""")
    assert result == {"missing": "missing token: send it in the query parameter ?token=",
                      "wrong": "token not accepted: send one of the configured tokens in the query parameter ?token=",
                      "byAuth": {"secret": True}, "byQuery": {"secret": True}}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_expiring_token_ends_the_session_as_a_server_disconnect(server, node_modules_folder, transport):
    result = node(server, transport, """main(async () => {
      const socket = connect('/expiring', {auth: {token: 'any'}});
      await next(socket, 'expiring');
      const connected = Date.now();
      const reason = await next(socket, 'disconnect');
      finish({reason, after_ms: Date.now() - connected, retries: socket.active});
    });""")
    assert result["reason"] == "io server disconnect" and result["retries"] is False  # connect again, new token
    assert 200 <= result["after_ms"] < 2000  # 0.4 s after the handshake; the first frame came just after it
    assert "token expired; disconnecting it" in server.log_path.read_text()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_each_value_of_a_parameterized_stream_is_a_namespace_and_a_value_not_allowed_is_refused(
        server, node_modules_folder, transport):
    result = node(server, transport, """main(async () => {
      const btc = await next(connect('/md/BTC-USD'), 'md');
      const eth = await next(connect('/md/ETH-USD'), 'md');
      const refused = await next(connect('/md/DOGE'), 'connect_error');
      finish({btc, eth, refused: refused.message});
    });""")
    assert result["btc"] == {"symbol": "BTC-USD"} and result["eth"] == {"symbol": "ETH-USD"}
    assert result["refused"] == "no stream at /md/DOGE (/md/{symbol}): symbol must be one of BTC-USD, ETH-USD, " \
                                "got 'DOGE'"


def polling_handshake(server: ServerProcess, origin: str) -> tuple[int, str | None]:
    """An Engine.IO polling handshake from a page at ``origin``: the status and Access-Control-Allow-Origin."""
    request = Request(f"{server.url}socket.io/?EIO=4&transport=polling", headers={"Origin": origin})
    try:
        with build_opener(ProxyHandler({})).open(request, timeout=2) as response:  # no proxy for 127.0.0.1
            return response.status, response.headers.get("Access-Control-Allow-Origin")
    except HTTPError as e:
        return e.code, e.headers.get("Access-Control-Allow-Origin")


def test_polling_answers_an_allowed_origin_with_its_cors_header_and_refuses_others(server):
    assert polling_handshake(server, "http://localhost:5173") == (200, "http://localhost:5173")
    assert polling_handshake(server, "http://127.0.0.1:8080") == (200, "http://127.0.0.1:8080")  # a pattern
    assert polling_handshake(server, "http://evil.test") == (400, None)


@pytest.fixture(scope="module")
def full_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from served(tmp_path_factory, "socketio-full", max_clients=1)


def test_over_max_clients_a_connect_is_refused_with_the_reason(full_server, node_modules_folder):
    result = node(full_server, "websocket", """main(async () => {
      await next(connect('/'), 'connect');
      const error = await next(connect('/'), 'connect_error');
      finish(error.message);
    });""")
    assert result == "server is at its limit of 1 clients (server.max_clients)"


# -- live reload


ADDED = {"name": "added", "path": "/added", "source": "random", "interval_ms": 30, "template": {"n": {"$seq": True}}}


def until_served(server: ServerProcess, has_added: bool) -> None:
    """Wait for the server to apply the edit (it polls the file a few times a second)."""
    deadline = time.monotonic() + 5
    while any(s["name"] == "added" for s in get_json(server.url + "api/streams")) != has_added:
        assert time.monotonic() < deadline, "the edit was not applied"
        time.sleep(0.05)


def test_a_stream_added_by_an_edit_gets_its_namespace_and_loses_it_when_removed(tmp_path, node_modules_folder):
    data = base_config()
    config_path = write_config(tmp_path, data)
    with ServerProcess(config_path, free_port(), tmp_path / "server.log") as server:
        base = f"http://127.0.0.1:{server.port}"
        write_config(tmp_path, {**data, "streams": data["streams"] + [ADDED]})
        until_served(server, True)
        client = start_node(PRELUDE + """main(async () => {
          const socket = connect('/added');
          console.log(JSON.stringify(await next(socket, 'added')));
          finish(await next(socket, 'disconnect'));
        });""", base, "websocket")
        try:
            first = json.loads(client.stdout.readline())
            write_config(tmp_path, data)
            until_served(server, False)
            out, err = client.communicate(timeout=10)
        finally:
            client.kill()
        assert client.returncode == 0, err
        assert first == {"n": 1}
        assert json.loads(out) == "io server disconnect"  # the stream is gone: the server ends the session
        refused = json.loads(run_node(PRELUDE + """main(async () => {
          finish((await next(connect('/added'), 'connect_error')).message);
        });""", base, "websocket", timeout=15))
        assert refused.startswith("no stream in the namespace /added")


# -- shutdown


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_shutdown_drops_socketio_connections_so_clients_keep_retrying(tmp_path, node_modules_folder, transport):
    """SIGTERM drops the connection (a Socket.IO disconnect would tell the client not to come back)."""
    with ServerProcess(write_config(tmp_path, base_config()), free_port(), tmp_path / "server.log") as server:
        client = start_node(PRELUDE + """main(async () => {
          const socket = connect('/');
          await next(socket, 'stats');
          console.log('"joined"');
          const reason = await next(socket, 'disconnect');
          finish({reason, retries: socket.active});
        });""", f"http://127.0.0.1:{server.port}", transport)
        try:
            assert json.loads(client.stdout.readline()) == "joined"
            server.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert server.process.wait(timeout=3) == 0
            assert time.monotonic() - started < 2
            out, err = client.communicate(timeout=10)
        finally:
            client.kill()
    assert client.returncode == 0, err
    result = json.loads(out)
    assert result["reason"] in ("transport close", "transport error") and result["retries"] is True


# -- Chromium: the browser bundle, from a page on another origin (a front-end dev server)


class PageHandler(BaseHTTPRequestHandler):
    """A blank page: the origin a dashboard under development is served from."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>dashboard</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature Python defines
        pass


@pytest.fixture(scope="module")
def dev_server() -> Iterator[str]:
    """http://127.0.0.1:PORT/ of a blank page; a real loopback origin, as Chromium lets only those reach
    127.0.0.1 (a page faked with Playwright's routing counts as public and is blocked)."""
    http = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_address[1]}/"
    http.shutdown()
    http.server_close()
    thread.join()


@pytest.fixture(scope="module")
def page(server, node_modules_folder, dev_server):
    """A Chromium tab on the dev server's origin, with socket.io-client's browser bundle loaded."""
    with chromium_tab(dev_server) as tab:
        tab.add_script_tag(path=str(node_modules_folder / "socket.io-client" / "dist" / "socket.io.min.js"))
        yield tab


FIRST_STATS = """
([url, transport]) => new Promise((resolve) => {
  const socket = io(url, {transports: [transport], forceNew: true});
  const done = (result) => { clearTimeout(timer); socket.close(); resolve(result); };
  const timer = setTimeout(() => done({outcome: 'timeout'}), 5000);
  socket.on('connect_error', (error) => done({outcome: 'connect_error', message: error.message}));
  socket.on('stats', (stats) => socket.emit('message', 'from chromium', (reply) => done({
    outcome: 'stats', keys: Object.keys(stats).sort(), reply, transport: socket.io.engine.transport.name})));
})
"""


@pytest.mark.browser
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chromium_on_another_origin_gets_stats_and_acks(page, server, transport):
    """Cross-origin, as from a Vite or webpack dev server: polling needs CORS, WebSocket the origin check."""
    result = page.evaluate(FIRST_STATS, [f"http://127.0.0.1:{server.port}", transport])
    assert result == {"outcome": "stats", "keys": STATS_KEYS, "reply": "web socket 已连接: from chromium",
                      "transport": transport}


# -- the config and the glue, without a network


def test_topic_only_streams_have_a_namespace_only_when_set(tmp_path):
    data = base_config()
    data["streams"] += [TICKS, {"name": "hidden", "source": "random", "template": {"x": 1}}]
    config = load_config(write_config(tmp_path, data))
    assert [(s.name, s.socketio_namespace, s.socketio_event) for s in config.streams] == [
        ("stats", "/", "stats"), ("replay", "/replay", "replay"), ("ticks", "/ticker", "tick"),
        ("hidden", None, "hidden")]


def config_problems(tmp_path, *streams: dict[str, Any]) -> str:
    data = base_config()
    data["streams"] += list(streams)
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, data))
    return "\n".join(error.value.problems)


def test_two_streams_in_one_namespace_are_a_config_error(tmp_path):
    problems = config_problems(tmp_path, {**TICKS, "socketio": {"namespace": "/replay"}})
    assert "streams[2].socketio.namespace: Socket.IO namespace '/replay' is also streams[1]'s" in problems


def test_a_fixed_namespace_on_a_parameterized_stream_is_a_config_error(tmp_path):
    problems = config_problems(tmp_path, {**MARKET, "socketio": {"namespace": "/md"}})
    assert "socketio.namespace: a stream whose path has {name} segments is served over Socket.IO in the namespace " \
           "of each value's path (like /v1/marketdata/BTC-USD); leave socketio.namespace out" in problems


def test_an_event_name_socketio_reserves_is_a_config_error(tmp_path):
    problems = config_problems(tmp_path, {**TICKS, "socketio": {"event": "connect"}})
    assert "streams[2].socketio.event: is reserved by Socket.IO, so a page could never listen to it" in problems
    assert problems.endswith("got 'connect'")


def test_the_socketio_path_is_reserved(tmp_path):
    problems = config_problems(tmp_path, {**COUNT, "path": "/socket.io"})
    assert "'/socket.io' is reserved for the server itself" in problems


def test_an_event_with_an_ack_id_tells_the_handler_it_wants_an_ack():
    assert AckAwarePacket(encoded_packet='2/chat,7["ping",{"n":1}]').data == ["ping", {"n": 1}, WANTS_ACK]
    assert AckAwarePacket(encoded_packet='2/chat,["ping",{"n":1}]').data == ["ping", {"n": 1}]
