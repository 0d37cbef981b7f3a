"""A cluster: real server processes sharing a real Redis serve one timeline and one control API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from redis_server import RedisServer
from server_process import ServerProcess, free_port, get_json
from support import base_config, close_and_wait, push_only_stream, write_config

TICK_MS = 50


def cluster_config(redis_url: str) -> dict[str, Any]:
    """A shared stream numbering its frames, a push-only stream, and the cluster."""
    data = base_config()
    data["streams"] += [
        {"name": "ticks", "path": "/ticks", "source": "random", "interval_ms": TICK_MS, "timeline": "shared",
         "template": {"id": {"$seq": True}, "value": {"$int": [0, 1_000_000]}}},
        push_only_stream("alarms"),
    ]
    data["cluster"] = {"redis": redis_url, "name": "test"}
    return data


@pytest.fixture
def config_path(tmp_path: Path, redis_server: RedisServer) -> Path:
    return write_config(tmp_path, cluster_config(redis_server.url))


@pytest.fixture
def start(tmp_path: Path, config_path: Path) -> Iterator[Any]:
    """Starts server processes on the cluster's config; every one is stopped at teardown."""
    started: list[ServerProcess] = []

    def start_one(name: str) -> ServerProcess:
        process = ServerProcess(config_path, free_port(), tmp_path / f"{name}.log")
        process.start()
        started.append(process)
        return process

    yield start_one
    for process in started:
        process.stop()


def stream_info(process: ServerProcess, name: str) -> dict[str, Any]:
    return next(s for s in get_json(process.url + "api/streams") if s["name"] == name)


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.05)


def holder_then_follower(start: Any) -> tuple[ServerProcess, ServerProcess]:
    """Process A, once it runs the clock of `ticks`, and process B, following it."""
    a = start("a")
    wait_for(lambda: stream_info(a, "ticks")["clock"] == "holder", 5, "a holds the clock")
    b = start("b")
    wait_for(lambda: stream_info(b, "ticks")["clock"] == "follower", 5, "b follows")
    return a, b


def ws_url(process: ServerProcess, path: str) -> str:
    return process.url.replace("http", "ws", 1).rstrip("/") + path


async def collect(url: str, count: int) -> list[tuple[float, dict[str, Any]]]:
    """The next ``count`` frames of a WebSocket, each with the time it arrived."""
    conn = await websocket_connect(url)
    frames = []
    try:
        while len(frames) < count:
            message = await asyncio.wait_for(conn.read_message(), 5)
            assert message is not None, f"closed: {conn.close_code}"
            frames.append((time.monotonic(), json.loads(message)))
    finally:
        await close_and_wait(conn)
    return frames


def test_two_processes_deliver_the_same_shared_frames_within_10_ms(start):
    a, b = holder_then_follower(start)

    async def both():
        return await asyncio.gather(collect(ws_url(a, "/ticks"), 30), collect(ws_url(b, "/ticks"), 30))

    on_a, on_b = asyncio.run(both())
    by_id = {frame["id"]: (at, frame) for at, frame in on_a}
    common = [(by_id[frame["id"]], (at, frame)) for at, frame in on_b if frame["id"] in by_id]
    assert len(common) >= 25
    assert all(fa == fb for (_, fa), (_, fb) in common)  # same number, same value
    ids = [frame["id"] for _, frame in on_b]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # the follower misses none and repeats none
    skew_ms = [abs(ta - tb) * 1000 for (ta, _), (tb, _) in common]
    print(f"skew between processes: median {statistics.median(skew_ms):.1f} ms, max {max(skew_ms):.1f} ms")
    assert statistics.median(skew_ms) < 10


async def push(process: ServerProcess, stream: str, body: Any) -> dict[str, Any]:
    request = HTTPRequest(f"{process.url}api/streams/{stream}/{'push' if body is not None else 'pause'}",
                          method="POST", body=json.dumps(body))
    response = await AsyncHTTPClient().fetch(request)
    return json.loads(response.body)


def test_a_push_through_one_process_reaches_the_clients_of_the_other(start):
    a, b = holder_then_follower(start)

    async def scenario():
        on_b = await websocket_connect(ws_url(b, "/alarms"))
        wait_for(lambda: stream_info(a, "alarms")["clients"] == 1, 3, "a counts b's client")
        answer = await push(a, "alarms", {"alarm": "smoke"})
        message = await asyncio.wait_for(on_b.read_message(), 2)
        await close_and_wait(on_b)
        return answer, json.loads(message)

    answer, received = asyncio.run(scenario())
    assert received == {"alarm": "smoke"}
    assert answer == {"sent_to": 1}  # the other process's client, as it reported


def test_api_streams_counts_every_process_and_healthz_reports_redis(start):
    a, b = holder_then_follower(start)

    async def scenario():
        conns = [await websocket_connect(ws_url(p, "/ticks")) for p in (a, b, b)]
        wait_for(lambda: stream_info(a, "ticks")["clients"] == 3, 3, "a counts every client")
        info = stream_info(a, "ticks")
        for conn in conns:
            await close_and_wait(conn)
        return info

    info = asyncio.run(scenario())
    assert sorted(info["processes"].values()) == [1, 2]
    assert get_json(a.url + "healthz") == {"status": "ok", "redis": "connected", "cluster": "test", "processes": 2}


def test_a_process_whose_config_differs_is_named_in_a_warning_until_the_configs_agree(tmp_path, redis_server):
    data = cluster_config(redis_server.url)
    a = ServerProcess(write_config(tmp_path, data, "a.yaml"), free_port(), tmp_path / "a.log")
    data["streams"][-1]["path"] = "/alarms-elsewhere"
    b_config = write_config(tmp_path, data, "b.yaml")
    b = ServerProcess(b_config, free_port(), tmp_path / "b.log")
    for process in (a, b):
        process.start()
    try:
        wait_for(lambda: "differs from this one" in a.log_path.read_text(), 3, "a warns")
        warning = next(line for line in a.log_path.read_text().splitlines() if "differs from this one" in line)
        assert f":{b.process.pid}" in warning and "load the same config file everywhere" in warning
        write_config(tmp_path, cluster_config(redis_server.url), "b.yaml")  # b's config edited back: live reload
        wait_for(lambda: "every process now has the same config" in a.log_path.read_text(), 5, "a sees agreement")
    finally:
        for process in (a, b):
            process.stop()


def test_pause_through_the_follower_stops_the_holders_clock(start):
    a, b = holder_then_follower(start)
    api(b, "api/streams/ticks/pause")
    wait_for(lambda: stream_info(a, "ticks")["paused"], 2, "a paused")
    sent = stream_info(a, "ticks")["frames_sent"]
    time.sleep(0.3)
    assert stream_info(a, "ticks")["frames_sent"] == sent


def api(process: ServerProcess, path: str, method: str = "POST", body: dict[str, Any] | None = None) -> None:
    request = urllib.request.Request(process.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else b"")
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=2).close()


def test_a_process_that_joins_later_takes_on_the_pause_and_faults_and_keeps_the_clock_paused(start):
    a = start("a")
    wait_for(lambda: stream_info(a, "ticks")["clock"] == "holder", 5, "a holds the clock")
    api(a, "api/streams/ticks/pause")
    api(a, "api/streams/ticks/faults", "PUT", {"drop_rate": 0.5})
    b = start("b")
    wait_for(lambda: stream_info(b, "ticks")["clock"] == "follower", 5, "b follows")
    wait_for(lambda: stream_info(b, "ticks")["paused"], 2, "b takes on the pause")
    assert stream_info(b, "ticks")["faults"]["drop_rate"] == 0.5

    async def scenario():
        conn = await websocket_connect(ws_url(b, "/ticks"))
        try:
            os.kill(a.process.pid, signal.SIGKILL)
            wait_for(lambda: stream_info(b, "ticks")["clock"] == "holder", 4, "b takes the clock")
            with pytest.raises(asyncio.TimeoutError):  # the new holder's clock does not run
                await asyncio.wait_for(conn.read_message(), 5 * TICK_MS / 1000)
            api(b, "api/streams/ticks/resume")
            return json.loads(await asyncio.wait_for(conn.read_message(), 2))
        finally:
            await close_and_wait(conn)

    frame = asyncio.run(scenario())
    assert isinstance(frame["id"], int)  # resumed: frames again
    assert not stream_info(b, "ticks")["paused"]


def test_killing_the_clock_holder_hands_the_timeline_over_within_3_s_without_duplicates(start):
    a, b = holder_then_follower(start)

    async def watch():
        conn = await websocket_connect(ws_url(b, "/ticks"))
        frames = []
        for _ in range(5):
            frames.append((time.monotonic(), json.loads(await asyncio.wait_for(conn.read_message(), 2))))
        os.kill(a.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while len(frames) < 15:
            message = await asyncio.wait_for(conn.read_message(), 5)
            frames.append((time.monotonic(), json.loads(message)))
        await close_and_wait(conn)
        return killed_at, frames

    killed_at, frames = asyncio.run(watch())
    ids = [frame["id"] for _, frame in frames]
    assert ids == sorted(set(ids)), f"a frame came twice or out of order: {ids}"
    gap = max(b_at - a_at for (a_at, _), (b_at, _) in zip(frames, frames[1:], strict=False))
    print(f"failover gap: {gap * 1000:.0f} ms; ids {ids}")
    assert gap < 3.0
    assert frames[-1][0] - killed_at < 3.0 + 10 * TICK_MS / 1000
    assert stream_info(b, "ticks")["clock"] == "holder"


def test_redis_restart_keeps_clients_connected_and_the_cluster_recovers(start, redis_server):
    a, b = holder_then_follower(start)

    async def scenario():
        conns = {name: await websocket_connect(ws_url(p, "/ticks")) for name, p in (("a", a), ("b", b))}
        own = await websocket_connect(ws_url(b, "/"))  # a per-client stream
        await asyncio.wait_for(conns["b"].read_message(), 2)
        redis_server.stop()
        wait_for(lambda: get_json_status(b) == 503, 3, "b reports Redis down")
        for _ in range(3):  # per-client streams go on without Redis
            assert await asyncio.wait_for(own.read_message(), 2) is not None
        redis_server.start()
        wait_for(lambda: get_json_status(a) == 200 and get_json_status(b) == 200, 5, "both reconnect")
        after = [json.loads(await asyncio.wait_for(conns[n].read_message(), 5)) for n in ("a", "b")]
        open_ = all(conn.close_code is None for conn in [*conns.values(), own])
        for conn in [*conns.values(), own]:
            await close_and_wait(conn)
        return after, open_

    after, still_open = asyncio.run(scenario())
    assert still_open
    assert all("id" in frame for frame in after)
    assert "Redis unavailable" in b.log_path.read_text()


def get_json_status(process: ServerProcess) -> int:
    try:
        get_json(process.url + "healthz")
    except urllib.error.HTTPError as e:
        return e.code
    return 200


def test_an_sse_client_resumes_on_another_process(start):
    a, b = holder_then_follower(start)
    frames = asyncio.run(collect(ws_url(a, "/ticks"), 3))
    last = frames[-1][1]["id"]

    request = urllib.request.Request(b.url + "ticks", headers={"Accept": "text/event-stream",
                                                               "Last-Event-ID": str(last - 2)})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=3) as response:
        ids = []
        while len(ids) < 4:
            line = response.readline().decode()
            if line.startswith("id:"):
                ids.append(int(line[3:]))
    assert ids[:2] == [last - 1, last]  # what it missed, from the history every process keeps
    assert ids[2:] == [last + 1, last + 2] or ids[2] > last


@pytest.fixture
def two_workers(tmp_path: Path, redis_server: RedisServer) -> Iterator[ServerProcess]:
    """`server.workers: 2` on one port, in the cluster, once both workers report; stopped at teardown."""
    data = cluster_config(redis_server.url)
    data["server"]["workers"] = 2
    server = ServerProcess(write_config(tmp_path, data, "workers.yaml"), free_port(), tmp_path / "workers.log")
    server.start()
    try:
        wait_for(lambda: len(stream_info(server, "ticks")["processes"]) == 2, 5, "both workers report")
        yield server
    finally:
        server.stop()


def test_workers_2_on_one_port_serve_clients_from_both_with_one_timeline_and_stop_together(two_workers):
    server = two_workers

    async def scenario():
        conns = [await websocket_connect(ws_url(server, "/ticks")) for _ in range(16)]
        seen = []
        for c in conns:  # (an await inside a nested comprehension needs Python 3.11)
            seen.append([json.loads(await asyncio.wait_for(c.read_message(), 2)) for _ in range(3)])
        counts: dict[str, int] = {}
        wait_for(lambda: sum(counts.update(stream_info(server, "ticks")["processes"]) or counts.values()) == 16,
                 3, "every worker has reported its clients")
        server.process.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        for conn in conns:
            while await asyncio.wait_for(conn.read_message(), 3) is not None:
                pass
            conn.close()  # closed by the server; this tells the client object so
        return seen, counts, [c.close_code for c in conns], time.monotonic() - stopping

    seen, counts, codes, stop_s = asyncio.run(scenario())
    assert min(counts.values()) > 0, counts  # both workers serve clients (the kernel spreads them)
    by_id: dict[int, dict[str, Any]] = {}
    for frames in seen:
        for frame in frames:
            assert by_id.setdefault(frame["id"], frame) == frame  # one timeline: one value per number
    assert codes == [1001] * 16 and stop_s < 2.0
    server.process.wait(timeout=3)


def test_a_config_edit_reaches_every_worker(two_workers, tmp_path, redis_server):
    server = two_workers
    data = cluster_config(redis_server.url)
    data["server"]["workers"] = 2
    data["streams"].append({"name": "added", "path": "/added", "source": "random", "interval_ms": 50,
                            "template": {"added": {"$seq": True}}})
    write_config(tmp_path, data, "workers.yaml")
    wait_for(lambda: server.log_path.read_text().count("reloaded workers.yaml") == 2, 5, "both workers reload")

    async def scenario():
        conns = [await websocket_connect(ws_url(server, "/added")) for _ in range(16)]  # spread over both
        try:
            frames = [json.loads(await asyncio.wait_for(conn.read_message(), 2)) for conn in conns]
            counts: dict[str, int] = {}
            try:
                wait_for(lambda: sum(counts.update(stream_info(server, "added")["processes"]) or counts.values())
                         == 16, 3, "both workers report their clients of the added stream")
            except AssertionError as e:  # say what the workers logged
                raise AssertionError(f"{e}; counts {counts}; log:\n{server.log_tail()}") from None
            return frames, counts
        finally:
            for conn in conns:
                await close_and_wait(conn)

    frames, counts = asyncio.run(scenario())
    assert frames == [{"added": 1}] * 16
    assert len(counts) == 2 and min(counts.values()) > 0, counts  # both workers serve the added stream


def test_a_worker_that_dies_is_started_again_and_logged(two_workers):
    server = two_workers
    victim = int(next(iter(stream_info(server, "ticks")["processes"])).rpartition(":")[2])
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: "was killed by signal 9; starting it again" in server.log_path.read_text(), 3, "logged")
    wait_for(lambda: victim not in [int(p.rpartition(":")[2]) for p in stream_info(server, "ticks")["processes"]]
             and len(stream_info(server, "ticks")["processes"]) == 2, 10, "a new worker reports")


def test_workers_serve_socketio_over_websocket_only_and_tell_a_polling_client_how_to_connect(two_workers):
    server = two_workers
    polling = HTTPRequest(server.url + "socket.io/?EIO=4&transport=polling", headers={"Origin": server.url[:-1]})

    async def scenario():
        refused = await AsyncHTTPClient().fetch(polling, raise_error=False)
        conn = await websocket_connect(ws_url(server, "/socket.io/?EIO=4&transport=websocket"))
        try:
            opened = await asyncio.wait_for(conn.read_message(), 3)
            conn.write_message("40/ticks,")  # join the stream's namespace
            joined = await asyncio.wait_for(conn.read_message(), 3)
            event = await asyncio.wait_for(conn.read_message(), 3)
        finally:
            await close_and_wait(conn)
        return refused, opened, joined, event

    refused, opened, joined, event = asyncio.run(scenario())
    assert refused.code == 400
    assert "transports: ['websocket']" in json.loads(refused.body)["error"]
    assert refused.headers["Access-Control-Allow-Origin"] == server.url[:-1]
    assert opened.startswith("0{") and json.loads(opened[1:])["upgrades"] == []
    assert joined.startswith("40/ticks,{")
    name, frame = json.loads(event.partition(",")[2])
    assert name == "ticks" and isinstance(frame["id"], int)
    log = server.log_path.read_text()
    assert "asked for long-polling" in log
    assert "emits 'alarms'; WebSocket transport only (several workers)" in log  # the banner says so up front
