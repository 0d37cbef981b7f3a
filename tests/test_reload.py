"""Live reload: real file edits applied in place, clients kept, broken edits ignored and logged once."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from itertools import pairwise

import pytest
import yaml
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from reload import ConfigWatcher
from server_process import ServerProcess, free_port, get_json
from support import base_config, close_and_wait, edit_config, until, write_config


@pytest.fixture
def config_path(app_config):
    return app_config.file


@pytest.fixture
def watcher(app_config, hub):
    """A fast-polling watcher on the test config, applying to the test hub."""
    watcher = ConfigWatcher(app_config, hub.apply, poll_s=0.02, debounce_s=0.05)
    watcher.start()
    yield watcher
    watcher.stop()


def save(path, **changes):
    """Rewrite the config file with ``changes`` (see support.edit_config)."""
    data = edit_config(yaml.safe_load(path.read_text(encoding="utf-8")), **changes)
    write_config(path.parent, data, path.name)


async def gaps(conn, n):
    times = []
    for _ in range(n + 1):
        assert await asyncio.wait_for(conn.read_message(), 2) is not None
        times.append(time.monotonic())
    return sorted(b - a for a, b in pairwise(times))


@pytest.mark.config(stats={"interval_ms": 200})
@pytest.mark.gen_test
async def test_interval_change_applies_to_connected_clients(ws_connect, hub, watcher, config_path):
    conn = await ws_connect("/")
    assert 0.15 < (await gaps(conn, 2))[0]
    save(config_path, stats={"interval_ms": 40})
    await until(lambda: hub.streams["stats"].config.interval_ms == 40, 2.0)
    await conn.read_message()  # the frame that was already due
    assert (await gaps(conn, 5))[2] < 0.08
    assert conn.close_code is None and hub.streams["stats"].clients == 1


@pytest.mark.gen_test
async def test_template_change_shows_in_the_next_frame(ws_connect, hub, watcher, config_path):
    conn = await ws_connect("/")
    await conn.read_message()
    save(config_path, stats={"template": {"status": "edited", "n": {"$seq": True}}})
    await until(lambda: hub.streams["stats"].source.template.source_text.find("edited") >= 0, 2.0)
    while "edited" not in (message := await conn.read_message()):
        pass
    assert json.loads(message)["status"] == "edited"


@pytest.mark.gen_test
async def test_broken_edit_is_logged_once_and_ignored_then_the_fix_applies(ws_connect, hub, watcher, config_path,
                                                                        caplog):
    caplog.set_level(logging.INFO)
    conn = await ws_connect("/")
    good = config_path.read_text(encoding="utf-8")
    config_path.write_text(good.replace("interval_ms: 50", "interval_ms: [oops"), encoding="utf-8")
    await until(lambda: any("not applied" in r.message for r in caplog.records), 2.0)
    await asyncio.sleep(0.3)  # many polls later
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "invalid YAML" in errors[0].getMessage()
    assert f"{config_path}:" in errors[0].getMessage()
    assert await asyncio.wait_for(conn.read_message(), 1) is not None  # still serving the old config
    config_path.write_text(good.replace("interval_ms: 50", "interval_ms: 30"), encoding="utf-8")
    await until(lambda: hub.streams["stats"].config.interval_ms == 30, 2.0)
    assert any("reloaded config.yaml: stats interval_ms 50 -> 30" in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test
async def test_stream_added_then_removed(ws_connect, ws_url, hub, watcher, config_path, caplog):
    caplog.set_level(logging.INFO)
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    data["streams"].append({"name": "extra", "path": "/extra", "source": "random", "interval_ms": 20,
                            "template": {"extra": True}})
    write_config(config_path.parent, data)
    await until(lambda: "extra" in hub.streams, 2.0)
    conn = await ws_connect("/extra")
    assert await conn.read_message() == '{"extra":true}'
    save(config_path, extra=None)
    await until(lambda: "extra" not in hub.streams, 2.0)
    while await asyncio.wait_for(conn.read_message(), 1) is not None:
        pass
    assert (conn.close_code, conn.close_reason) == (1001, "stream removed")
    with pytest.raises(HTTPClientError) as caught:
        await websocket_connect(ws_url("/extra"))
    assert caught.value.code == 404
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert "new stream extra at /extra" in log and "stream extra removed" in log


@pytest.mark.config(replay={"interval_ms": 30})
@pytest.mark.gen_test
async def test_mock_file_edit_mid_replay_restarts_at_entry_0(ws_connect, hub, watcher, config_path):
    conn = await ws_connect("/replay")
    for _ in range(3):
        await conn.read_message()
    (config_path.parent / "data-coll.json").write_text('[{"new": 0}, {"new": 1}, {"new": 2}]', encoding="utf-8")
    await until(lambda: hub.streams["replay"].source.length == 3, 2.0)
    while "new" not in (message := await conn.read_message()):
        pass
    assert [json.loads(message)] + [json.loads(await conn.read_message()) for _ in range(3)] == \
        [{"new": 0}, {"new": 1}, {"new": 2}, {"new": 0}]
    assert conn.close_code is None


@pytest.mark.gen_test
async def test_broken_mock_file_keeps_the_old_frames(ws_connect, hub, watcher, config_path, caplog):
    (config_path.parent / "data-coll.json").write_text('[{"half": ', encoding="utf-8")
    await until(lambda: any("not applied" in r.message for r in caplog.records), 2.0)
    assert hub.streams["replay"].source.length == 30
    assert "data-coll.json:1:" in caplog.records[-1].getMessage()


@pytest.mark.gen_test
async def test_server_limits_apply_live(ws_url, hub, watcher, config_path):
    save(config_path, server={"allowed_origins": ["http://good.example"]})
    await until(lambda: hub.server.allowed_origins == ("http://good.example",), 2.0)
    with pytest.raises(HTTPClientError) as caught:
        await websocket_connect(HTTPRequest(ws_url("/"), headers={"Origin": "http://other.example"}))
    assert caught.value.code == 403


@pytest.mark.gen_test
async def test_port_change_is_logged_as_needing_a_restart(hub, watcher, config_path, caplog):
    caplog.set_level(logging.INFO)
    save(config_path, server={"port": 4999})
    await until(lambda: hub.server.port == 4999, 2.0)
    assert any("server.port 0 -> 4999 needs a restart" in r.getMessage() for r in caplog.records)


def test_running_server_applies_an_edit_without_dropping_clients(tmp_path):
    """The real `python server.py`: an edit of interval_ms reaches a connected client within a second."""
    data = base_config()
    data["streams"][0]["interval_ms"] = 300
    config_path = write_config(tmp_path, data)
    with ServerProcess(config_path, free_port(), tmp_path / "server.log") as server:
        async def scenario():
            conn = await websocket_connect(f"ws://127.0.0.1:{server.port}/")
            await conn.read_message()
            data["streams"][0]["interval_ms"] = 30
            write_config(tmp_path, data)
            saved = time.monotonic()
            while get_json(server.url + "api/streams/stats")["interval_ms"] != 30:
                assert time.monotonic() - saved < 1.5
                await asyncio.sleep(0.05)
            await conn.read_message()
            fast = await gaps(conn, 4)
            await close_and_wait(conn)
            return fast

        assert asyncio.run(scenario())[2] < 0.1
    assert "reloaded config.yaml: stats interval_ms 300 -> 30" in server.log_path.read_text()


@pytest.mark.config(stats={"template": {"n": {"$seq": True}}})
@pytest.mark.gen_test
async def test_switching_to_a_shared_timeline_keeps_clients_and_syncs_them(ws_connect, hub, watcher, config_path):
    first, second = await ws_connect("/"), await ws_connect("/")
    await first.read_message()
    await second.read_message()
    save(config_path, stats={"timeline": "shared"})
    await until(lambda: hub.streams["stats"].config.timeline == "shared", 2.0)
    for _ in range(3):
        await first.read_message()
    a = json.loads(await first.read_message())["n"]
    while (b := json.loads(await second.read_message())["n"]) < a:
        pass
    assert a == b and first.close_code is None and second.close_code is None
