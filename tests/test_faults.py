"""Fault injection: each fault does what its setting says, reproducibly, and cleans up after itself.

Statistical faults are checked on a few hundred frames pushed at once, with
the test config's fixed seed and bounds several standard deviations wide.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from random import Random
from types import SimpleNamespace

import pytest
from tornado.httpclient import HTTPClientError

from config import ConfigError, FaultsConfig
from streams.build import fault_injector, load_config, stream_rng
from streams.faults import MALFORMED_MARK, FaultInjector, malformed
from streams.sources import Frame
from support import (  # noqa: F401 - http_server_trusting_x_real_ip replaces http_server here
    ROOT,
    base_config,
    close_and_wait,
    http_server_trusting_x_real_ip,
    pending_timers,
    push_only_stream,
    received_until_quiet,
    until,
    write_config,
)

# a stream that sends only what a test pushes
FEED = push_only_stream("feed")
SEQ_EVERY_10_MS = {"interval_ms": 10, "template": {"n": {"$seq": True}, "at": {"$now": "epoch_ms"}}}


def with_faults(**faults) -> list[dict]:
    """The test config's streams plus `feed`, with these faults on `feed`."""
    return base_config()["streams"] + [{**FEED, "faults": faults}]


async def push_numbered(hub, conn, count: int) -> list[str]:
    """Push frames {"n": 0} .. {"n": count-1} into `feed` and return what ``conn`` received."""
    stream = hub.streams["feed"]
    await until(lambda: stream.clients == 1, 1)
    for n in range(count):
        stream.push(Frame.text(json.dumps({"n": n})))
    return await received_until_quiet(conn)


def numbers(messages: list[str]) -> list[int]:
    return [json.loads(m)["n"] for m in messages]


# -- configuration


def test_faults_are_off_unless_a_fault_is_set(hub):
    assert all(stream.faults is None for stream in hub.streams.values())
    assert fault_injector(FaultsConfig(), 7, "feed") is None  # an empty faults: block
    assert fault_injector(FaultsConfig(drop_rate=0.0, reorder=False), 7, "feed") is None
    assert fault_injector(FaultsConfig(reorder=True), 7, "feed") is not None


@pytest.mark.parametrize("faults, problem", [
    ({"disconnect_every_s": 30, "disconnect_code": 1006}, "faults.disconnect_code: must not be 1005, 1006 or 1015"),
    ({"disconnect_every_s": 30, "disconnect_code": 999}, "faults.disconnect_code: must be an integer >= 1000"),
    ({"disconnect_code": 4000}, "faults: disconnect_code needs disconnect_every_s"),
    ({"disconnect_every_s": 0}, "faults.disconnect_every_s: must be a number > 0, got 0"),
    ({"latency_ms": [300, 100]}, "faults: latency_ms must be [min, max] with min <= max"),
    ({"latency_ms": 100}, "faults.latency_ms: must be [min, max] in milliseconds"),
    ({"latency_ms": [-1, 100]}, "faults.latency_ms[0]: must be an integer >= 0"),
    ({"drop_rate": 1.5}, "faults.drop_rate: must be a number <= 1, got 1.5"),
    ({"duplicate_rate": 2}, "faults.duplicate_rate: must be a number <= 1, got 2"),
    ({"reorder": "yes"}, "faults.reorder: must be true or false"),
    ({"drop_rat": 0.1}, "faults.drop_rat: unknown key; did you mean 'drop_rate'?"),
])
def test_a_wrong_faults_block_is_a_config_error_naming_the_key(tmp_path, faults, problem):
    data = base_config()
    data["streams"][0]["faults"] = faults
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, data))
    [reported] = caught.value.problems
    assert f"streams[0].{problem}" in reported, reported


def test_the_banner_says_which_faults_are_on(tmp_path):
    """Clients dropped on purpose should never puzzle whoever started the server."""
    data = base_config()
    data["streams"][0]["faults"] = {"disconnect_every_s": 30, "drop_rate": 0.05, "latency_ms": [0, 100]}
    result = subprocess.run([sys.executable, "server.py", "--check", "-c", str(write_config(tmp_path, data))],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    [stats] = [line for line in result.stdout.splitlines() if "stats:" in line]
    assert stats.endswith("per-client, FAULTS ON: disconnect_every_s 30, latency_ms [0, 100], drop_rate 0.05")
    [replay] = [line for line in result.stdout.splitlines() if "replay:" in line]
    assert "FAULTS" not in replay


# -- reproducible and separate from the data


def decisions(seed: int | None, name: str = "feed", count: int = 200) -> list[str]:
    """What an injector does with ``count`` frames: the text of each frame written, in order."""
    injector = fault_injector(FaultsConfig(drop_rate=0.2, duplicate_rate=0.1, malformed_rate=0.1, reorder=True),
                              seed, name)
    written: list[str] = []
    stream = SimpleNamespace(write=lambda sub, frame, seq=None: written.append(frame.data.decode()) or True)
    sub = SimpleNamespace(fault_state=None)
    for n in range(count):
        injector.deliver(stream, sub, Frame.text(json.dumps({"n": n})))
    return written


def test_random_faults_repeat_with_the_same_seed_and_differ_with_another():
    assert decisions(7) == decisions(7)
    assert decisions(7) != decisions(8)
    assert decisions(7) != decisions(7, name="other")  # each stream draws its own faults
    assert decisions(None) != decisions(None)


@pytest.mark.config(stats={**SEQ_EVERY_10_MS, "template": {"v": {"$int": [0, 1000000]}},
                           "faults": {"duplicate_rate": 0.3, "disconnect_every_s": 30}})
@pytest.mark.gen_test
async def test_faults_do_not_change_the_data_a_seeded_stream_sends(ws_connect, app_config):
    conn = await ws_connect("/")
    messages = [await asyncio.wait_for(conn.read_message(), 1) for _ in range(30)]
    received = list(dict.fromkeys(messages))
    source, rng = app_config.sources["stats"], stream_rng(7, "stats")
    state = source.new_state()
    expected = [source.frame(i, state, rng).data.decode() for i in range(30)]
    assert received == expected[: len(received)]  # duplicates removed, the same values as without faults


# -- statistical faults (pushed frames, fixed seed)


@pytest.mark.config(streams=with_faults(drop_rate=0.2))
@pytest.mark.gen_test
async def test_drop_rate_skips_about_that_share_of_frames_and_counts_them(hub, ws_connect):
    conn = await ws_connect("/feed")
    got = numbers(await push_numbered(hub, conn, 500))
    assert got == sorted(got)
    assert 340 < len(got) < 460  # 400 expected, sd 9
    assert hub.streams["feed"].faults.counters["dropped"] == 500 - len(got)


@pytest.mark.config(streams=with_faults(duplicate_rate=0.1))
@pytest.mark.gen_test
async def test_duplicate_rate_sends_about_that_share_of_frames_twice_in_a_row(hub, ws_connect):
    conn = await ws_connect("/feed")
    got = numbers(await push_numbered(hub, conn, 500))
    assert list(dict.fromkeys(got)) == list(range(500))  # each copy right after its original
    duplicates = len(got) - 500
    assert 25 < duplicates < 80  # 50 expected, sd 7
    assert hub.streams["feed"].faults.counters["duplicated"] == duplicates


@pytest.mark.config(streams=with_faults(malformed_rate=0.1))
@pytest.mark.gen_test
async def test_malformed_rate_sends_half_a_frame_and_a_marker_that_is_not_json(hub, ws_connect):
    conn = await ws_connect("/feed")
    messages = await push_numbered(hub, conn, 500)
    assert len(messages) == 500
    broken = []
    for n, message in enumerate(messages):
        original = json.dumps({"n": n})
        try:
            assert json.loads(message) == {"n": n}
        except json.JSONDecodeError:
            assert message == original[: len(original) // 2] + MALFORMED_MARK
            broken.append(n)
    assert 25 < len(broken) < 80  # 50 expected, sd 7
    assert hub.streams["feed"].faults.counters["malformed"] == len(broken)


def test_malformed_text_frames_stay_valid_utf8_and_are_never_json():
    for text in ['{"name":"人像","v":1}', '"a string"', "12345", "", "plain text", "[1,2,3]"]:
        garbled = malformed(Frame.text(text)).data.decode("utf-8")  # raises if a character was cut
        with pytest.raises(json.JSONDecodeError):
            json.loads(garbled)


@pytest.mark.config(streams=with_faults(reorder=True))
@pytest.mark.gen_test
async def test_reorder_without_latency_holds_some_frames_back_until_after_the_next(hub, ws_connect):
    conn = await ws_connect("/feed")
    got = numbers(await push_numbered(hub, conn, 400))
    swapped = [i for i in range(len(got) - 1) if got[i] > got[i + 1]]
    assert all(got[i] == got[i + 1] + 1 for i in swapped)  # only neighbours trade places
    assert sorted(got) == list(range(len(got)))  # nothing lost (the last frame may still be held)
    assert 40 < len(swapped) < 130  # 80 expected (a quarter of the frames, when none is held yet)
    assert hub.streams["feed"].faults.counters["reordered"] == len(swapped)


# -- latency (timed frames)


@pytest.mark.config(stats={**SEQ_EVERY_10_MS, "faults": {"latency_ms": [50, 150]}})
@pytest.mark.gen_test
async def test_latency_delays_every_frame_within_the_range_without_reordering(ws_connect, hub):
    """Frames 10 ms apart with 50-150 ms of random latency each: independent delays would
    reorder them, so the order shows that latency keeps it."""
    conn = await ws_connect("/")
    frames, delays = [], []
    for _ in range(40):
        frame = json.loads(await asyncio.wait_for(conn.read_message(), 1))
        delays.append(time.time() * 1000 - frame["at"])
        frames.append(frame["n"])
    assert frames == list(range(1, 41))
    assert min(delays) >= 49 and sorted(delays)[len(delays) // 2] < 175 and max(delays) < 400, delays
    assert hub.streams["stats"].faults.counters["delayed"] >= 40


@pytest.mark.config(stats={**SEQ_EVERY_10_MS, "faults": {"latency_ms": [0, 100], "reorder": True}})
@pytest.mark.gen_test
async def test_latency_with_reorder_lets_later_frames_overtake_earlier_ones(ws_connect, hub):
    conn = await ws_connect("/")
    got = [json.loads(await asyncio.wait_for(conn.read_message(), 1))["n"] for _ in range(40)]
    assert got != sorted(got)
    assert hub.streams["stats"].faults.counters["reordered"] > 0


# -- disconnects


@pytest.mark.config(stats={"faults": {"disconnect_every_s": 0.3}})
@pytest.mark.gen_test
async def test_disconnect_every_s_drops_the_connection_without_a_close_frame(ws_connect, hub):
    """The browser reports this as 1006, the code of an abrupt network drop."""
    start = time.monotonic()
    conn = await ws_connect("/")
    while await asyncio.wait_for(conn.read_message(), 2) is not None:
        pass
    assert 0.26 < time.monotonic() - start < 0.6
    assert conn.close_code is None  # no close frame arrived
    await until(lambda: hub.streams["stats"].clients == 0, 1)
    assert hub.streams["stats"].faults.counters["disconnects"] == 1


@pytest.mark.config(stats={"faults": {"disconnect_every_s": 0.2, "disconnect_code": 4000}})
@pytest.mark.gen_test
async def test_disconnect_code_closes_with_that_code(ws_connect):
    conn = await ws_connect("/")
    while await asyncio.wait_for(conn.read_message(), 2) is not None:
        pass
    assert (conn.close_code, conn.close_reason) == (4000, "fault injection")


@pytest.mark.config(stats={"faults": {"disconnect_every_s": 0.5}})
@pytest.mark.gen_test
async def test_each_client_is_disconnected_about_n_seconds_after_it_connected(ws_connect):
    async def lifetime() -> float:
        conn = await ws_connect("/")
        start = time.monotonic()
        while await asyncio.wait_for(conn.read_message(), 2) is not None:
            pass
        return time.monotonic() - start

    lifetimes = await asyncio.gather(*(lifetime() for _ in range(8)))
    assert all(0.43 < t < 0.9 for t in lifetimes), lifetimes  # 0.45-0.55 s, plus a loaded machine's delays
    assert max(lifetimes) - min(lifetimes) > 0.01  # jittered, so reconnects do not stampede in step


def test_disconnect_times_are_spread_over_n_seconds_plus_or_minus_ten_percent(io_loop):
    injector = fault_injector(FaultsConfig(disconnect_every_s=30), 7, "feed")
    subs = [SimpleNamespace(fault_state=None) for _ in range(200)]
    now = io_loop.asyncio_loop.time()  # the clock of the timer handles (IOLoop.time() is wall time)
    for sub in subs:
        injector.on_subscribe(None, sub)
    delays = [sub.fault_state.disconnect.when() - now for sub in subs]
    for sub in subs:
        injector.on_unsubscribe(None, sub)
    assert all(27 <= d <= 33.01 for d in delays), (min(delays), max(delays))
    assert min(delays) < 27.3 and max(delays) > 32.7  # the whole window is used


@pytest.mark.config(stats={"interval_ms": 20, "faults": {"disconnect_every_s": 30, "latency_ms": [200, 300]}})
@pytest.mark.gen_test
async def test_a_client_that_leaves_takes_its_fault_timers_with_it(ws_connect, hub, io_loop):
    """Disconnect timers and delayed frames of clients that left are cancelled, not left to fire.

    With 200-300 ms of latency on a 20 ms stream a client always has frames waiting: every client
    holds two timers, its disconnect and its next delayed frame, from its first frame on."""
    injector = hub.streams["stats"].faults
    keep = await ws_connect("/")
    leavers = [await ws_connect("/") for _ in range(5)]
    await until(lambda: injector.pending_timers() == 12, 1)
    with_leavers = pending_timers(io_loop)
    for conn in leavers:
        await close_and_wait(conn)  # the test's own clients keep a timer until the server answers their close
    await until(lambda: hub.streams["stats"].clients == 1, 1)
    assert injector.pending_timers() == 2  # the client that stayed
    assert pending_timers(io_loop) <= with_leavers - 10  # cancelled on the event loop, not only forgotten
    assert await asyncio.wait_for(keep.read_message(), 1) is not None


# -- the API and live reload


@pytest.mark.config(streams=with_faults(disconnect_every_s=30, latency_ms=[5, 10]))
@pytest.mark.gen_test
async def test_api_shows_the_fault_settings_and_counters(http_client, http_url, ws_connect, hub):
    conn = await ws_connect("/feed")
    await push_numbered(hub, conn, 3)
    listed = json.loads((await http_client.fetch(http_url("/api/streams"))).body)
    assert [s["faults"] for s in listed if s["name"] != "feed"] == [None, None]
    faults = next(s for s in listed if s["name"] == "feed")["faults"]
    assert faults == {"disconnect_every_s": 30.0, "disconnect_code": None, "latency_ms": [5, 10],
                      "drop_rate": 0.0, "duplicate_rate": 0.0, "malformed_rate": 0.0, "reorder": False,
                      "counters": {"dropped": 0, "duplicated": 0, "malformed": 0, "delayed": 3, "reordered": 0,
                                   "disconnects": 0}}
    detail = json.loads((await http_client.fetch(http_url("/api/streams/feed"))).body)
    assert detail["faults"] == faults


@pytest.mark.gen_test
async def test_a_reload_that_changes_the_faults_block_applies_it_to_connected_clients(ws_connect, hub, tmp_path):
    conn = await ws_connect("/")
    await conn.read_message()
    data = base_config()
    data["streams"][0]["faults"] = {"disconnect_every_s": 0.2, "disconnect_code": 4001}
    hub.apply(load_config(write_config(tmp_path, data, "edited.yaml")))
    assert hub.streams["stats"].faults.describe()["disconnect_code"] == 4001
    while await asyncio.wait_for(conn.read_message(), 2) is not None:
        pass
    assert conn.close_code == 4001
    del data["streams"][0]["faults"]
    hub.apply(load_config(write_config(tmp_path, data, "edited.yaml")))
    assert hub.streams["stats"].faults is None


class FakeClient:
    """A client as the domain sees it (streams.client.Client), recording what it is sent."""

    def __init__(self) -> None:
        self.is_open, self.pending_bytes, self.received = True, 0, []

    def send(self, frame: Frame, seq: int | None = None) -> bool:
        self.received.append(frame.data)
        return True

    def close(self, code: int, reason: str) -> None:
        self.is_open = False

    def end(self, code: int, reason: str) -> None:
        self.is_open = False

    def abort(self) -> None:
        self.is_open = False


@pytest.mark.gen_test
async def test_a_stream_sends_through_its_injector(hub):
    """The stream hands every frame to its injector (streams.stream.FaultInjector), which decides."""
    stream = hub.streams["stats"]
    stream.pause()  # only pushed frames
    stream.set_faults(FaultInjector(FaultsConfig(duplicate_rate=1.0), Random(1)))
    client = FakeClient()
    stream.subscribe(client)
    assert stream.push(Frame.text("once")) == 1
    assert client.received == [b"once", b"once"]
    assert stream.faults.describe()["counters"]["duplicated"] == 1
    stream.set_faults(FaultInjector(FaultsConfig(drop_rate=1.0), Random(1)))
    assert stream.push(Frame.text("never")) == 0
    assert client.received == [b"once", b"once"]
    stream.unsubscribe(client)


# -- PUT /api/streams/{name}/faults


async def put_faults(http_client, url, body, headers=None, expect=200):
    """PUT a faults block; returns the decoded JSON answer."""
    try:
        response = await http_client.fetch(url, method="PUT", headers=headers,
                                           body=body if isinstance(body, str) else json.dumps(body))
    except HTTPClientError as e:
        response = e.response
    assert response.code == expect, response.body
    return json.loads(response.body)


@pytest.mark.gen_test
async def test_put_faults_replaces_them_for_connected_clients(http_client, http_url, ws_connect, hub):
    conn = await ws_connect("/")
    await conn.read_message()
    detail = await put_faults(http_client, http_url("/api/streams/stats/faults"),
                              {"disconnect_every_s": 0.2, "disconnect_code": 4002})
    assert detail["name"] == "stats" and detail["faults"]["disconnect_code"] == 4002
    while await asyncio.wait_for(conn.read_message(), 2) is not None:
        pass
    assert conn.close_code == 4002
    assert (await put_faults(http_client, http_url("/api/streams/stats/faults"), {}))["faults"] is None
    assert hub.streams["stats"].faults is None


@pytest.mark.gen_test
@pytest.mark.parametrize("body, problem", [
    ({"drop_rate": 2}, "faults.drop_rate: must be a number <= 1, got 2"),
    ({"drop_rat": 0.1}, "faults.drop_rat: unknown key; did you mean 'drop_rate'?"),
    ({"latency_ms": [300, 100]}, "latency_ms must be [min, max] with min <= max"),
    ([0.1], "send a JSON object like the faults: block"),
    ("{not json", "invalid JSON body"),
])
async def test_put_faults_with_a_wrong_block_is_400_and_changes_nothing(http_client, http_url, hub, body, problem):
    before = hub.streams["stats"].faults
    payload = await put_faults(http_client, http_url("/api/streams/stats/faults"), body, expect=400)
    assert problem in payload["error"], payload
    assert hub.streams["stats"].faults is before


@pytest.mark.gen_test
async def test_put_faults_on_an_unknown_stream_is_404(http_client, http_url):
    payload = await put_faults(http_client, http_url("/api/streams/nope/faults"), {}, expect=404)
    assert "stats, replay" in payload["error"]


@pytest.mark.gen_test
async def test_put_faults_from_a_non_loopback_address_is_403_without_a_token(http_client, http_url, hub):
    url = http_url("/api/streams/stats/faults")
    payload = await put_faults(http_client, url, {"drop_rate": 0.5}, {"X-Real-Ip": "192.0.2.10"}, expect=403)
    assert "api_token" in payload["error"] and hub.streams["stats"].faults is None


@pytest.mark.config(server={"api_token": "s3cret"})
@pytest.mark.gen_test
async def test_with_a_token_put_faults_needs_the_bearer_header(http_client, http_url, hub):
    url = http_url("/api/streams/stats/faults")
    await put_faults(http_client, url, {"drop_rate": 0.5}, expect=401)
    await put_faults(http_client, url, {"drop_rate": 0.5}, {"Authorization": "Bearer s3cret",
                                                            "X-Real-Ip": "192.0.2.10"})
    assert hub.streams["stats"].faults.describe()["drop_rate"] == 0.5
