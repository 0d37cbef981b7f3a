"""The configs in examples/, driven by the client libraries front-ends use: graphql-ws, @stomp/stompjs, Node's
`ws` and Chromium.

Each example runs as `python server.py -c <copy>`, the copy differing from the file only in its intervals
(test-sized) and a fixed random seed. One Node script per example plays every scenario at once, each on its
own connection, and prints what each saw; the tests below assert on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from node_clients import NodeUnavailableError, node_modules, run_node
from server_process import ServerProcess, free_port, get_json
from streams.build import load_config
from support import CATEGORIES, ROOT, chromium_tab, missing_tool

EXAMPLES = ROOT / "examples"
EXAMPLE_FILES = ["graphql-ws.yaml", "stomp.yaml", "subscribe.yaml"]
# graphql is graphql-ws's peer dependency: pinned here, or npm would install whichever is newest
PACKAGES = ("ws@8.23.0", "graphql-ws@6.4.2", "graphql@16.15.0", "@stomp/stompjs@7.5.0")
INTERVAL_MS = 150  # the examples push every 3000 ms; their test copies every 150
STATS_KEYS = sorted(key for key, _ in CATEGORIES)


def is_stats(value: Any) -> bool:
    """The seven-category stats object: each category {yesterdayValue, name, toadyValue}."""
    return (isinstance(value, dict) and sorted(value) == STATS_KEYS
            and all(sorted(v) == ["name", "toadyValue", "yesterdayValue"] for v in value.values()))


# -- the files as shipped


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_loads_unchanged_and_pushes_at_most_every_3_s(name):
    config = load_config(EXAMPLES / name)
    assert config.streams and config.settings.endpoints
    assert all(stream.interval_ms >= 3000 for stream in config.streams)


def test_examples_folder_holds_exactly_the_three_tested_examples():
    """A new example must come with its tests here."""
    assert sorted(path.name for path in EXAMPLES.glob("*.yaml")) == EXAMPLE_FILES


# -- servers and Node


def fast_copy(name: str, folder: Path) -> Path:
    """The example with every interval at INTERVAL_MS and a fixed seed, written into ``folder``."""
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    for stream in data["streams"]:
        stream["interval_ms"] = INTERVAL_MS
    data["random_seed"] = 7
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    assert yaml.safe_load(text) == data  # the STOMP frames' \n and \0 survive the round trip
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def node() -> None:
    try:
        node_modules(*PACKAGES)
    except NodeUnavailableError as e:
        missing_tool(str(e))


@contextmanager
def serve(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server on a fast copy of an example, on a free port."""
    folder = tmp_path_factory.mktemp(name.split(".")[0])
    with ServerProcess(fast_copy(name, folder), free_port(), folder / "server.log") as process:
        yield process


def scenarios(script: str, server: ServerProcess, path: str) -> dict[str, Any]:
    """Run a Node script of scenarios against ``server``; what each scenario returned, by name."""
    url = f"ws://127.0.0.1:{server.port}{path}"
    return json.loads(run_node(NODE_HELPERS + script, url, str(INTERVAL_MS), timeout=60))


def outcome(results: dict[str, Any], name: str) -> Any:
    """One scenario's result; a scenario that threw fails the test with its error."""
    result = results[name]
    assert not (isinstance(result, dict) and "thrown" in result), f"scenario {name} failed: {result.get('thrown')}"
    return result


# Shared by the scripts: argv, raw `ws` connections read one message at a time, and the scenario runner.
NODE_HELPERS = r"""
const WebSocket = require('ws');
const [URL, INTERVAL] = [process.argv[1], Number(process.argv[2])];
setTimeout(() => { console.error('the scenarios took over 20 s'); process.exit(1); }, 20000).unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await sleep(5);
  }
}

// A raw connection: resolves once open, or rejects (with the HTTP status when the handshake is refused).
function open(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.received = [];
    ws.on('message', (data) => ws.received.push({text: data.toString(), at: performance.now()}));
    ws.on('close', (code, reason) => { ws.closed = {code, reason: reason.toString()}; });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (request, response) => {
      let body = '';
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => { request.destroy(); reject({status: response.statusCode, body}); });
    });
  });
}

// The next message of a raw connection (its text and when it came), waiting for it.
async function next(ws, what) {
  await until(() => ws.received.length || ws.closed, what);
  if (!ws.received.length) throw new Error(`closed (${ws.closed.code}) while waiting for ${what}`);
  return ws.received.shift();
}

async function closed(ws) {
  if (!ws.closed) ws.close();
  await until(() => ws.closed, 'the close handshake');
  return ws.closed;
}

// Every scenario at once; prints {name: result or {thrown}} as JSON.
async function run(scenarios) {
  const results = {};
  await Promise.all(Object.entries(scenarios).map(async ([name, scenario]) => {
    try {
      results[name] = await scenario();
    } catch (error) {
      results[name] = {thrown: String((error && error.stack) || JSON.stringify(error))};
    }
  }));
  console.log(JSON.stringify(results));
  process.exit(0);  // a client library's stray timer must not keep the process alive
}
"""


# -- graphql-ws: GraphQL subscriptions


GRAPHQL = r"""
const { createClient } = require('graphql-ws');

// a WebSocket class that notes every message, in and out, for the scenarios to check the wire
function spying(log) {
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (event) => log.push(['in', JSON.parse(event.data), performance.now()]));
    }
    send(data) {
      log.push(['out', JSON.parse(data), performance.now()]);
      super.send(data);
    }
  };
}

function client(log, options = {}) {
  return createClient({url: URL, webSocketImpl: spying(log), retryAttempts: 0, ...options});
}

run({
  async results() {
    const log = [], results = [];
    const c = client(log);
    let completed = false;
    const stop = c.subscribe({query: 'subscription { stats }'}, {
      next: (result) => results.push(result), error: (e) => results.push({sinkError: String(e)}),
      complete: () => { completed = true; }});
    await until(() => results.length >= 4, 'four results');
    stop();
    await until(() => completed, 'complete');
    await c.dispose();
    const nexts = log.filter(([way, m]) => way === 'in' && m.type === 'next');
    return {results: results.slice(0, 4), gaps: nexts.slice(1, 4).map(([, , at], i) => at - nexts[i][2]),
            wire: log.map(([way, m]) => [way, m.type])};
  },

  async two() {
    const log = [];
    const c = client(log);
    const counts = {a: 0, b: 0};
    const stopA = c.subscribe({query: 'subscription { stats }'}, {next: () => counts.a++, error() {}, complete() {}});
    c.subscribe({query: 'subscription OnStats { stats }'}, {next: () => counts.b++, error() {}, complete() {}});
    await until(() => counts.a >= 2 && counts.b >= 2, 'two results each');
    const [idA, idB] = log.filter(([way, m]) => way === 'out' && m.type === 'subscribe').map(([, m]) => m.id);
    stopA();
    await sleep(2 * INTERVAL);  // the complete reaches the server; a frame already on its way may still arrive
    const nextsOf = (id) => log.filter(([way, m]) => way === 'in' && m.type === 'next' && m.id === id).length;
    const before = {a: nextsOf(idA), b: nextsOf(idB)};
    await sleep(3 * INTERVAL);
    const after = {a: nextsOf(idA), b: nextsOf(idB)};
    await c.dispose();
    const completes = log.filter(([way, m]) => way === 'out' && m.type === 'complete').map(([, m]) => m.id);
    return {ids: [idA, idB], before, after, completes};
  },

  async ping() {
    const log = [];
    let acked = false, pongs = 0;
    const c = client(log, {lazy: false, keepAlive: 30, onNonLazyError() {},
                           on: {connected: () => { acked = true; }, pong: (received) => { if (received) pongs++; }}});
    await until(() => pongs >= 2, 'two pongs');
    await c.dispose();
    return {acked, pongs, wire: log.map(([way, m]) => [way, m.type])};
  },

  async duplicate() {
    const errors = [];
    const c = client([], {generateID: () => 'dup'});
    const sink = {next() {}, error: (e) => errors.push({code: e.code, reason: e.reason}), complete() {}};
    c.subscribe({query: 'subscription { stats }'}, sink);
    c.subscribe({query: 'subscription { stats }'}, sink);
    await until(() => errors.length === 2, 'both subscriptions to fail');
    await c.dispose();
    return errors;
  },

  async errors() {
    const c = client([]);
    const outcome = (query) => new Promise((resolve) => c.subscribe(
      {query}, {next: (r) => resolve({next: r}), error: (e) => resolve({error: e}), complete() {}}));
    const result = {missing: await outcome('subscription { alarms }'), query: await outcome('{ stats }')};
    await c.dispose();
    return result;
  },

  async invalid() {
    const ws = await open(URL, 'graphql-transport-ws');
    ws.send('hello');
    await until(() => ws.closed, 'the close');
    return ws.closed;
  },
});
"""


@pytest.fixture(scope="module")
def graphql(node, tmp_path_factory) -> dict[str, Any]:
    with serve("graphql-ws.yaml", tmp_path_factory) as server:
        return scenarios(GRAPHQL, server, "/graphql")


def test_graphql_ws_subscription_gets_a_stats_result_per_interval(graphql):
    seen = outcome(graphql, "results")
    assert all(set(result) == {"data"} and set(result["data"]) == {"stats"} for result in seen["results"])
    assert all(is_stats(result["data"]["stats"]) for result in seen["results"])
    assert len({json.dumps(result) for result in seen["results"]}) == 4, "every result is a fresh frame"
    assert sum(seen["gaps"]) >= 2 * INTERVAL_MS, f"{seen['gaps']}: results come once per interval, not faster"


def test_graphql_connection_init_is_acknowledged_and_pings_get_pongs(graphql):
    seen = outcome(graphql, "ping")
    assert seen["acked"] and seen["pongs"] >= 2
    assert seen["wire"][:2] == [["out", "connection_init"], ["in", "connection_ack"]]
    assert ["out", "ping"] in seen["wire"] and ["in", "pong"] in seen["wire"]


def test_graphql_complete_from_the_client_ends_that_subscription_only(graphql):
    seen = outcome(graphql, "two")
    assert seen["completes"] == seen["ids"][:1], "a complete for A only"
    assert seen["after"]["a"] == seen["before"]["a"], "no result for A after its complete"
    assert seen["after"]["b"] >= seen["before"]["b"] + 2, "B goes on"


def test_graphql_second_concurrent_subscription_gets_its_own_id_and_both_receive(graphql):
    seen = outcome(graphql, "two")
    assert len(set(seen["ids"])) == 2
    assert seen["before"]["a"] >= 2 and seen["before"]["b"] >= 2, "next messages carry each subscription's id"


def test_graphql_subscribing_twice_with_one_id_closes_with_4409(graphql):
    reason = "Subscriber for dup already exists"
    assert outcome(graphql, "duplicate") == [{"code": 4409, "reason": reason}] * 2


def test_graphql_unknown_field_or_a_query_gets_a_protocol_error_message(graphql):
    seen = outcome(graphql, "errors")
    assert seen["missing"] == {"error": [{"message": "no stream named 'alarms'; streams: stats"}]}
    assert seen["query"] == {"error": [{"message": "this mock serves subscriptions only: "
                                                   "subscription { <stream name> }"}]}


def test_graphql_message_outside_the_protocol_closes_with_4400(graphql):
    assert outcome(graphql, "invalid") == {"code": 4400, "reason": "Invalid message received"}


# -- @stomp/stompjs: STOMP 1.2


STOMP = r"""
const { Client } = require('@stomp/stompjs');
const PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

// a stompjs client, connected; notes whatever it did not expect
async function connected() {
  const client = new Client({webSocketFactory: () => new WebSocket(URL, PROTOCOLS), reconnectDelay: 0});
  client.unexpected = [];
  client.onStompError = (frame) => client.unexpected.push('ERROR ' + frame.headers.message);
  client.onUnhandledFrame = (frame) => client.unexpected.push('unhandled ' + frame.command);
  client.onWebSocketClose = (event) => client.unexpected.push('closed ' + event.code);
  const frame = await new Promise((resolve) => { client.onConnect = resolve; client.activate(); });
  return [client, frame];
}

function stats(client, messages) {
  return client.subscribe('/topic/stats', (m) => messages.push({headers: m.headers, body: m.body}));
}

// a raw connection past CONNECT
async function rawConnected() {
  const ws = await open(URL, PROTOCOLS);
  ws.send('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0');
  await next(ws, 'CONNECTED');
  return ws;
}

run({
  async subscription() {
    const [client, frame] = await connected();
    const messages = [], late = [];
    client.onUnhandledMessage = (m) => late.push(m.headers);
    const sub = stats(client, messages);
    await until(() => messages.length >= 3, 'three MESSAGE frames');
    sub.unsubscribe();
    await sleep(2 * INTERVAL);  // the UNSUBSCRIBE reaches the server; a frame already on its way may still arrive
    const before = messages.length + late.length;
    await sleep(3 * INTERVAL);
    const after = messages.length + late.length;
    const [protocol, unexpected] = [client.webSocket.protocol, [...client.unexpected]];
    const disconnect = new Promise((resolve) => { client.onDisconnect = resolve; });
    await client.deactivate();
    return {protocol, connected: frame.headers, messages: messages.slice(0, 3), before, after, unexpected,
            receipt: (await disconnect).headers};
  },

  async heartbeats() {
    const [client] = await connected();
    const messages = [];
    stats(client, messages);
    await until(() => messages.length >= 1, 'a MESSAGE frame');
    for (const beat of ['\n', '\r\n', '\n']) client.webSocket.send(beat);
    const count = messages.length;
    await until(() => messages.length >= count + 2, 'two more MESSAGE frames');
    const unexpected = [...client.unexpected];
    await client.deactivate();
    return {unexpected};
  },

  async connectRaw() {
    const ws = await open(URL, PROTOCOLS);
    ws.send('CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:10000,10000\n\n\0');
    const connect = (await next(ws, 'CONNECTED')).text;
    ws.send('STOMP\naccept-version:1.2\nhost:localhost\n\n\0');
    const stomp = (await next(ws, 'CONNECTED')).text;
    await closed(ws);
    return {connect, stomp};
  },

  async headersInAnyOrder() {
    const ws = await rawConnected();
    ws.send('SUBSCRIBE\ndestination:/topic/stats\nack:auto\nid:7\n\n\0');
    const message = (await next(ws, 'MESSAGE')).text;
    ws.send('SUBSCRIBE\ndestination:/topic/alarms\nid:8\n\n\0');
    let error;
    while (!(error = (await next(ws, 'ERROR')).text).startsWith('ERROR')) { /* a stats MESSAGE */ }
    await closed(ws);
    return {message, error};
  },

  async heartbeatRaw() {
    const ws = await rawConnected();
    ws.send('\n');
    ws.send('\r\n');
    await sleep(2 * INTERVAL);
    const answered = ws.received.map((m) => m.text);
    const openAfter = !ws.closed;
    ws.send('BOGUS\n\n\0');
    const error = (await next(ws, 'ERROR')).text;
    await until(() => ws.closed, 'the close');
    return {answered, openAfter, error, closed: ws.closed};
  },

  async receiptRaw() {
    const ws = await rawConnected();
    ws.send('DISCONNECT\nreceipt:77\n\n\0');
    const receipt = (await next(ws, 'RECEIPT')).text;
    await closed(ws);
    return receipt;
  },
});
"""


def stomp_frame(text: str) -> tuple[str, dict[str, str], str]:
    """A STOMP frame's command, headers and body."""
    assert text.endswith("\0"), f"a STOMP frame ends in NUL: {text!r}"
    head, _, body = text[:-1].partition("\n\n")
    command, *lines = head.split("\n")
    return command, dict(line.split(":", 1) for line in lines), body


@pytest.fixture(scope="module")
def stomp(node, tmp_path_factory) -> dict[str, Any]:
    with serve("stomp.yaml", tmp_path_factory) as server:
        return scenarios(STOMP, server, "/stomp")


def test_stompjs_client_connects_with_stomp_1_2_over_v12_stomp(stomp):
    seen = outcome(stomp, "subscription")
    assert seen["protocol"] == "v12.stomp"
    assert seen["connected"] == {"version": "1.2", "heart-beat": "0,0"}


def test_connect_and_stomp_frames_get_exactly_the_connected_frame(stomp):
    expected = "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0"
    assert outcome(stomp, "connectRaw") == {"connect": expected, "stomp": expected}


def test_stompjs_subscription_gets_message_frames_with_the_stats_body(stomp):
    messages = outcome(stomp, "subscription")["messages"]
    assert [m["headers"]["message-id"] for m in messages] == ["sub-0-1", "sub-0-2", "sub-0-3"]
    for message in messages:
        assert message["headers"] == {"subscription": "sub-0", "destination": "/topic/stats",
                                      "message-id": message["headers"]["message-id"],
                                      "content-type": "application/json"}
        assert is_stats(json.loads(message["body"]))


def test_stompjs_unsubscribe_stops_the_message_frames(stomp):
    seen = outcome(stomp, "subscription")
    assert seen["after"] == seen["before"] and not seen["unexpected"]


def test_subscribe_headers_may_come_in_any_order_and_an_unknown_topic_gets_error(stomp):
    seen = outcome(stomp, "headersInAnyOrder")
    command, headers, body = stomp_frame(seen["message"])
    assert (command, headers["subscription"], headers["destination"]) == ("MESSAGE", "7", "/topic/stats")
    assert is_stats(json.loads(body))
    command, headers, body = stomp_frame(seen["error"])
    assert (command, headers["message"]) == ("ERROR", "no such destination /topic/alarms")
    assert body == "no stream named 'alarms'; streams: stats"


def test_stompjs_heart_beats_from_the_client_are_tolerated(stomp):
    """Newlines sent on a subscribed stompjs connection: no answer, no error, the frames go on."""
    assert outcome(stomp, "heartbeats") == {"unexpected": []}


def test_heart_beats_get_no_answer_while_an_unknown_frame_gets_error_and_a_close(stomp):
    seen = outcome(stomp, "heartbeatRaw")
    assert seen["answered"] == [] and seen["openAfter"]
    assert stomp_frame(seen["error"])[:2] == ("ERROR", {"message": "unsupported frame", "content-type": "text/plain"})
    assert seen["closed"] == {"code": 1002, "reason": "STOMP protocol error"}


def test_stompjs_deactivate_gets_the_receipt_of_its_disconnect(stomp):
    receipt = outcome(stomp, "subscription")["receipt"]
    assert receipt["receipt-id"].startswith("close-")  # stompjs's own receipt id
    assert outcome(stomp, "receiptRaw") == "RECEIPT\nreceipt-id:77\n\n\0"


# -- a JSON subscribe protocol, from Node's `ws` and from Chromium


SUBSCRIBE = r"""
run({
  async flow() {
    const ws = await open(URL + '?token=dev');
    ws.send(JSON.stringify({method: 'SUBSCRIBE', params: ['stats'], id: 1}));
    const confirm = await next(ws, 'the SUBSCRIBE reply');
    const frames = [];
    for (let i = 0; i < 4; i++) frames.push(await next(ws, 'a stats frame'));
    ws.send(JSON.stringify({method: 'UNSUBSCRIBE', params: ['stats'], id: 2}));
    let reply;
    while (JSON.parse((reply = await next(ws, 'the UNSUBSCRIBE reply')).text).id !== 2) { /* a frame */ }
    await sleep(3 * INTERVAL);
    const after = ws.received.map((m) => m.text);
    await closed(ws);
    return {confirm: confirm.text, frames: frames.map((m) => m.text), firstAfterMs: frames[0].at - confirm.at,
            gaps: frames.slice(1).map((m, i) => m.at - frames[i].at), unsubscribed: reply.text, after};
  },

  async unknown() {
    const ws = await open(URL + '?token=dev');
    ws.send(JSON.stringify({method: 'PING', id: 3}));
    ws.send(JSON.stringify({method: 'SUBSCRIBE', params: ['alarms'], id: 4}));
    const replies = [(await next(ws, 'the PING reply')).text, (await next(ws, 'the SUBSCRIBE reply')).text];
    await closed(ws);
    return replies;
  },

  async tokens() {
    const refused = async (url) => {
      try { await closed(await open(url)); return 'accepted'; } catch (refusal) { return refusal; }
    };
    return {missing: await refused(URL), empty: await refused(URL + '?token=')};
  },
});
"""


@pytest.fixture(scope="module")
def subscribe_server(tmp_path_factory) -> Iterator[ServerProcess]:
    with serve("subscribe.yaml", tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="module")
def subscribe(node, subscribe_server) -> dict[str, Any]:
    return scenarios(SUBSCRIBE, subscribe_server, "/ws")


def test_subscribe_is_confirmed_then_stats_frames_arrive_the_first_at_once(subscribe):
    seen = outcome(subscribe, "flow")
    assert json.loads(seen["confirm"]) == {"result": None, "id": 1}
    frames = [json.loads(frame) for frame in seen["frames"]]
    assert all(set(frame) == {"stream", "data"} and frame["stream"] == "stats" for frame in frames)
    assert all(is_stats(frame["data"]) for frame in frames)
    assert seen["firstAfterMs"] < INTERVAL_MS / 2, "a subscription's timeline starts with a frame at once"
    assert sum(seen["gaps"]) >= 2 * INTERVAL_MS, f"{seen['gaps']}: frames come once per interval, not faster"


def test_unsubscribe_is_confirmed_and_the_frames_stop(subscribe):
    seen = outcome(subscribe, "flow")
    assert json.loads(seen["unsubscribed"]) == {"result": None, "id": 2}
    assert seen["after"] == []


def test_an_unknown_method_or_stream_gets_an_error_with_the_request_id(subscribe):
    ping, alarms = (json.loads(reply) for reply in outcome(subscribe, "unknown"))
    assert ping == {"error": {"code": -1, "msg": "unknown method"}, "id": 3}
    assert alarms == {"error": {"code": -2, "msg": "no stream named 'alarms'; streams: stats"}, "id": 4}


def test_a_missing_or_empty_token_is_refused_with_401(subscribe):
    reason = {"error": "missing token: send it in the query parameter ?token="}
    for refusal in outcome(subscribe, "tokens").values():
        assert refusal["status"] == 401 and json.loads(refusal["body"]) == reason


def test_token_expiry_is_off_in_the_example():
    """It is documented beside `auth`, where uncommenting it would turn it on."""
    auth = load_config(EXAMPLES / "subscribe.yaml").settings.endpoints[0].auth
    assert (auth.query, auth.expires_after_s) == ("token", None)
    assert "expires_after_s" in (EXAMPLES / "subscribe.yaml").read_text(encoding="utf-8")


def test_every_subscribe_rule_offers_an_example_message(subscribe_server):
    endpoint, = get_json(subscribe_server.url + "api/endpoints")
    assert [json.loads(example) for example in endpoint["examples"]] == [
        {"method": "SUBSCRIBE", "params": ["stats"], "id": 1}, {"method": "UNSUBSCRIBE", "params": ["stats"], "id": 2}]


# In the page: subscribe, read the reply and three frames, unsubscribe, and listen for stray frames.
BROWSER_FLOW = """
async ([url, interval]) => {
  const ws = new WebSocket(url);
  const received = [];
  ws.onmessage = (event) => received.push(JSON.parse(event.data));
  const until = async (condition) => {
    for (let i = 0; !condition(); i++) {
      if (i > 500) throw new Error('timed out; received ' + JSON.stringify(received));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  ws.send(JSON.stringify({method: 'SUBSCRIBE', params: ['stats'], id: 1}));
  await until(() => received.length >= 4);
  const subscribed = received.splice(0);
  ws.send(JSON.stringify({method: 'UNSUBSCRIBE', params: ['stats'], id: 2}));
  await until(() => received.some((m) => m.id === 2));
  const unsubscribed = received.splice(0);
  await new Promise((resolve) => setTimeout(resolve, 3 * interval));
  ws.close();
  return {subscribed, unsubscribed, after: received};
}
"""


@pytest.mark.browser
def test_chromium_subscribes_with_a_token_and_unsubscribes(subscribe_server):
    with chromium_tab(subscribe_server.url + "healthz") as page:
        seen = page.evaluate(BROWSER_FLOW, [f"ws://127.0.0.1:{subscribe_server.port}/ws?token=dev", INTERVAL_MS])
    confirm, *frames = seen["subscribed"]
    assert confirm == {"result": None, "id": 1}
    assert all(frame["stream"] == "stats" and is_stats(frame["data"]) for frame in frames)
    assert seen["unsubscribed"][-1] == {"result": None, "id": 2}
    assert seen["after"] == []
