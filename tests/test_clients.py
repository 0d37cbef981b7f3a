"""Real clients against the real server: Node's `ws` library and Chromium, with subprotocols and compression.

Both offer permessage-deflate on their own (the `ws` client by default, browsers
always), so with `server.compression: true` every frame here travels compressed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from node_clients import NodeUnavailableError, node_modules, run_node
from server_process import ServerProcess, free_port
from support import CATEGORIES, base_config, chromium_tab, edit_config, missing_tool, write_config

WS = "ws@8.23.0"
STATS_KEYS = sorted(key for key, _ in CATEGORIES)

# a stream that speaks one subprotocol only
GRAPHQL_STREAM = {"name": "gql", "path": "/gql", "source": "random", "interval_ms": 50,
                  "subprotocols": ["graphql-transport-ws"], "template": {"seq": {"$seq": True}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("clients-server")
    data = edit_config(base_config(), server={"compression": True})
    data["streams"].append(GRAPHQL_STREAM)
    with ServerProcess(write_config(folder, data), free_port(), folder / "server.log") as process:
        yield process


# -- Node: the `ws` library


@pytest.fixture(scope="module")
def node_ws() -> None:
    try:
        node_modules(WS)
    except NodeUnavailableError as e:
        missing_tool(str(e))


WS_CLIENT = r"""
const WebSocket = require('ws');
const [base] = process.argv.slice(1);
setTimeout(() => { console.error('no answer within 5 s'); process.exit(1); }, 5000).unref();

function next(ws, event) {
  return new Promise((resolve, reject) => { ws.once(event, (...args) => resolve(args)); ws.once('error', reject); });
}

(async () => {
  const stats = new WebSocket(base + '/', 'graphql-ws');
  await next(stats, 'open');
  const [frame] = await next(stats, 'message');
  const echo = new WebSocket(base + '/echo', 'graphql-ws');
  await next(echo, 'open');
  echo.send('héllo from node');
  const [reply, isBinary] = await next(echo, 'message');
  console.log(JSON.stringify({
    protocols: [stats.protocol, echo.protocol],
    extensions: stats.extensions,
    keys: Object.keys(JSON.parse(frame)).sort(),
    echo: reply.toString(),
    isBinary,
  }));
  stats.close();
  echo.close();
})().catch((error) => { console.error(error); process.exit(1); });
"""


def test_node_ws_client_with_a_subprotocol_receives_stats_and_echoes(server, node_ws):
    """`new WebSocket(url, 'graphql-ws')` from Node's `ws`: the protocol is accepted on a stream and on echo."""
    result = json.loads(run_node(WS_CLIENT, f"ws://127.0.0.1:{server.port}", timeout=15))
    assert result["protocols"] == ["graphql-ws", "graphql-ws"]
    assert result["extensions"].startswith("permessage-deflate")
    assert result["keys"] == STATS_KEYS
    assert (result["echo"], result["isBinary"]) == ("héllo from node", False)


# -- Chromium


@pytest.fixture(scope="module")
def page(server: ServerProcess):
    """A Chromium tab on the server's own origin."""
    with chromium_tab(server.url + "healthz") as tab:
        yield tab


# Open a WebSocket and report how it went: its first message, or how it closed.
OPEN_SOCKET = """
([url, protocols]) => new Promise((resolve) => {
  let errored = false;
  const ws = protocols === null ? new WebSocket(url) : new WebSocket(url, protocols);
  const timer = setTimeout(() => resolve({outcome: 'timeout'}), 5000);
  const done = (result) => { clearTimeout(timer); resolve(result); };
  ws.onerror = () => { errored = true; };
  ws.onmessage = (event) => {
    done({outcome: 'message', protocol: ws.protocol, extensions: ws.extensions, data: event.data});
    ws.close();
  };
  ws.onclose = (event) => done({outcome: 'closed', code: event.code, errored});
})
"""


def open_socket(page, server: ServerProcess, path: str, protocols: str | list[str] | None = None) -> dict[str, Any]:
    return page.evaluate(OPEN_SOCKET, [f"ws://127.0.0.1:{server.port}{path}", protocols])


@pytest.mark.browser
def test_chromium_gets_the_subprotocol_it_offers_and_frames(page, server):
    result = open_socket(page, server, "/", "graphql-ws")
    assert (result["outcome"], result["protocol"]) == ("message", "graphql-ws")
    assert sorted(json.loads(result["data"])) == STATS_KEYS


@pytest.mark.browser
def test_chromium_offering_only_an_unsupported_subprotocol_fails_with_1006(page, server):
    """The server answers 400, which a browser reports as an error and close code 1006, nothing more."""
    assert open_socket(page, server, "/gql", "graphql-ws") == {"outcome": "closed", "code": 1006, "errored": True}


@pytest.mark.browser
def test_chromium_offering_a_supported_subprotocol_among_others_gets_that_one(page, server):
    result = open_socket(page, server, "/gql", ["graphql-ws", "graphql-transport-ws"])
    assert (result["outcome"], result["protocol"]) == ("message", "graphql-transport-ws")
    assert "seq" in json.loads(result["data"])


@pytest.mark.browser
def test_compressing_chromium_receives_frames(page, server):
    result = open_socket(page, server, "/")
    assert result["outcome"] == "message" and result["extensions"].startswith("permessage-deflate")
    assert sorted(json.loads(result["data"])) == STATS_KEYS
