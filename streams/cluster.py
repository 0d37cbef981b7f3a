"""A cluster: every server process with the same Redis and `cluster.name` acts as one mock server.

Why Redis, and what goes through it (docs/scaling-out.md has the user's view):

- **One clock per shared stream.** Each process tries to take a lease on each
  shared stream (``SET lease NX PX``); the one that gets it runs the stream's
  clock (``Stream.hold``), renders each frame once and publishes it, and every
  other process sends the frames it receives to its own clients
  (``Stream.deliver``). The lease is renewed every ``TICK_S``; when its holder
  dies it expires and another process takes it within ``LEASE_MS + TICK_S``.
- **State each tick.** With each frame the holder stores, in one MULTI/EXEC,
  the timeline's position (frame number, replay index, generator state) and
  appends the frame to the stream's history in Redis; a new holder continues
  from there, a new process starts its resume history from there.
- **Control verbs** (push, pause, resume, seek, faults) are applied where they
  are called and published; every other process applies them to its own
  clients. What lasts (paused, faults) is also kept in Redis, so a process that
  joins later, or takes over a paused clock, starts in the same state. It
  expires ``CONTROL_TTL_MS`` after the last process left: a cluster started
  again later starts from its config.
- **Reports.** Every ``TICK_S`` each process writes its client counts and its
  config's fingerprint; the API sums the counts, and a process whose config
  differs is logged.

Per-client streams need none of this: their timelines stay in the process
their client is connected to. When Redis goes away nobody can hold a clock, so
shared streams pause (their clients stay connected); per-client streams go on.
The process reconnects with backoff and never exits because of Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from config import ClusterConfig, FaultsConfig
from streams.build import AppConfig, fault_injector
from streams.hub import Hub
from streams.schedule import Timeline
from streams.sources import Frame, JsonFrame
from streams.stream import Stream

log = logging.getLogger("mockws.cluster")

LEASE_MS = 1500  # a clock holder that stops renewing loses its streams after this long
TICK_S = 0.5  # lease renewal (or attempt), and the process report
REPORT_STALE_S = 3.0  # a process that has not reported for this long is gone
BACKOFF_S = (0.1, 2.0)  # reconnecting to Redis: first delay, longest delay
REDIS_TIMEOUT_S = 1.0
LEAVE_TIMEOUT_S = 0.3  # handing the leases back at shutdown; past it they expire by themselves
MAX_BATCH = 256  # frames and verbs written to Redis in one round trip
CONTROL_TTL_MS = 10_000  # paused streams and faults set through the API outlive the last process by this long
LASTING = ("pause", "faults")  # the Redis hashes of what lasts: paused streams, faults set through the API

# a script, so that only the holder extends (or ends) its own lease
RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def config_fingerprint(config: AppConfig) -> str:
    """A short hash of what a process serves: its settings (but where it listens) and its mock files."""
    settings = config.settings.model_dump(mode="json", exclude={"server": {"host", "port"}})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name in sorted(config.mock_files):
        try:
            digest.update(config.mock_files[name].read_bytes())
        except OSError:
            digest.update(b"missing")
    return digest.hexdigest()[:12]


def position_of(timeline: Timeline) -> dict[str, Any]:
    """What a new clock holder needs to continue a shared timeline: frame number, replay index, generator state."""
    return {"count": timeline.count, "index": timeline.index,
            "state": list(timeline.state) if isinstance(timeline.state, list) else None}


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One message on the cluster's channel: a JSON header line, then the payload as it is."""
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload


def decode(message: bytes) -> tuple[dict[str, Any], bytes]:
    """The header and payload of one message on the cluster's channel."""
    header, _, payload = message.partition(b"\n")
    return json.loads(header), payload


def frame_kind(frame: Frame) -> str:
    """How a frame's payload is sent again by the receiver: JSON text, other text or binary."""
    return "b" if frame.binary else "j" if frame.is_json else "t"


def frame_of(kind: str, payload: bytes) -> Frame:
    """The frame a message carries."""
    if kind == "j":
        return JsonFrame(payload)
    return Frame(payload, binary=kind == "b")


class Cluster:
    """This process's membership of a cluster: leases, frames in and out, control verbs and reports."""

    def __init__(self, hub: Hub, config: ClusterConfig, process_id: str | None = None) -> None:
        self.hub = hub
        self.config = config
        self.id = process_id or f"{socket.gethostname()}:{os.getpid()}"
        self._prefix = f"mockws:{config.name}:"
        self._channel = self._prefix + "events"
        self.connected = False
        self.reason = "connecting to Redis"
        self._outbox: deque[tuple[str, str | None, bytes, bytes | None, int]] = deque()
        self._wake = asyncio.Event()
        self._others: dict[str, dict[str, Any]] = {}  # process id -> its last report
        self._fingerprint: tuple[AppConfig, str] | None = None
        self._disagreeing: frozenset[str] = frozenset()
        self._task: asyncio.Task | None = None
        self._redis: Redis | None = None
        self._delay_s = BACKOFF_S[0]
        hub.cluster = self
        self.adopt()

    # -- life cycle

    def start(self) -> None:
        """Connect to Redis and keep connecting (idempotent)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Leave: hand back the leases this process holds (another process takes them at once), disconnect."""
        client = self._redis
        if client is not None and self.connected:
            held = [s.name for s in self.hub.streams.values() if s.role == "holder"]
            try:
                release = client.register_script(RELEASE)
                await asyncio.wait_for(asyncio.gather(
                    *(release(keys=[self._key("lease", name)], args=[self.id]) for name in held),
                    client.hdel(self._key("procs"), self.id)), LEAVE_TIMEOUT_S)
            except (RedisError, OSError, asyncio.TimeoutError):
                pass  # the leases expire by themselves
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def adopt(self) -> None:
        """Make every shared stream a follower until this process gets its lease (after start-up or a reload)."""
        for stream in self.hub.streams.values():
            if stream.config.timeline == "shared" and stream.role is None:
                stream.follow()

    # -- what the hub calls

    def announce(self, verb: str, stream: str, args: dict[str, Any] | None = None, frame: Frame | None = None) -> None:
        """Tell the other processes a control verb was applied here, so they apply it to their clients."""
        if not self.connected:
            log.warning("%s %s applied to this process only: Redis is not connected (%s)", verb, stream, self.reason)
            return
        header = {"o": self.id, "v": verb, "s": stream, "a": args or {}}
        if frame is not None:
            header["k"] = frame_kind(frame)
        kept = json.dumps(args or {}).encode() if verb == "faults" else None  # what _write keeps in Redis
        self._outbox.append((verb, stream, encode(header, frame.data if frame is not None else b""), kept, 0))
        self._wake.set()

    def clients_elsewhere(self, stream: str) -> dict[str, int]:
        """The stream's clients on each other process, as they last reported."""
        fresh = time.time() - REPORT_STALE_S
        return {pid: report["clients"].get(stream, 0) for pid, report in self._others.items() if report["t"] >= fresh}

    def health(self) -> dict[str, Any]:
        """Redis connectivity for /healthz."""
        others = len(self.clients_elsewhere(""))
        if self.connected:
            return {"status": "ok", "redis": "connected", "cluster": self.config.name, "processes": others + 1}
        return {"status": "unavailable", "redis": "disconnected", "cluster": self.config.name, "reason": self.reason}

    # -- the holder's side of a shared stream

    def _relay(self, name: str, history: int) -> Any:
        """The callback a holder's stream hands each frame to: queued, written to Redis in order."""
        def relay(seq: int, frame: Frame | None, timeline: Timeline) -> None:
            header = {"o": self.id, "v": "frame", "s": name, "n": seq, "p": position_of(timeline)}
            if frame is not None:
                header["k"] = frame_kind(frame)
            message = encode(header, frame.data if frame is not None else b"")
            self._outbox.append(("frame", name, message, json.dumps(header["p"]).encode(), history))
            self._wake.set()
        return relay

    # -- the connection to Redis

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except (RedisError, OSError) as e:
                self._down(str(e) or type(e).__name__)
            await asyncio.sleep(self._delay_s)
            self._delay_s = min(self._delay_s * 2, BACKOFF_S[1])

    async def _session(self) -> None:
        """One connection to Redis, until it fails."""
        client = Redis.from_url(self.config.redis, socket_connect_timeout=REDIS_TIMEOUT_S,
                                socket_timeout=REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0))
        pubsub = client.pubsub()
        try:
            await client.ping()
            await pubsub.subscribe(self._channel)
            self._redis = client
            self._up()
            await self._catch_up(client)
            tasks = [asyncio.ensure_future(job) for job in
                     (self._listen(pubsub), self._maintain(client), self._write(client))]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._redis = None
            for closing in (pubsub.aclose(), client.aclose()):
                try:
                    await asyncio.wait_for(closing, REDIS_TIMEOUT_S)
                except (RedisError, OSError, asyncio.TimeoutError):
                    pass  # already broken: nothing left to close cleanly

    def _up(self) -> None:
        self.connected, self.reason = True, ""
        self._delay_s = BACKOFF_S[0]
        log.info("cluster %s: connected to Redis as %s", self.config.name, self.id)

    def _down(self, reason: str) -> None:
        """Redis is gone: no clock can be held, so shared streams pause here until it is back."""
        if self.connected or self.reason != reason:
            log.warning("cluster %s: Redis unavailable (%s); shared streams pause, per-client streams go on; "
                        "reconnecting", self.config.name, reason)
        self.connected, self.reason = False, reason
        self._outbox.clear()
        for stream in self.hub.streams.values():
            if stream.role == "holder":
                stream.follow()

    async def _catch_up(self, client: Redis) -> None:
        """Fill each shared stream's history with what Redis kept, and take on the streams the cluster paused
        or set faults on (a process that starts or comes back). What this process did alone while Redis was
        away stays."""
        for stream in self._shared_streams():
            entries = await client.lrange(self._key("history", stream.name), -max(stream.config.history, 1), -1)
            for message in entries:
                self._receive(message)
        pipe = client.pipeline(transaction=True)
        pipe.hgetall(self._key("pause"))
        pipe.hgetall(self._key("faults"))
        paused, faults = await pipe.execute()
        for name in paused:
            stream = self.hub.streams.get(name.decode())
            if stream is not None and not stream.paused:
                self._apply("pause", stream, {}, None)
        for name, text in faults.items():
            stream = self.hub.streams.get(name.decode())
            if stream is not None and stream.faults is None:
                try:
                    self._apply("faults", stream, json.loads(text), None)
                except ValueError:  # another version's faults: this one's config stands
                    log.warning("cluster %s: ignored the faults stored for %s", self.config.name, stream.name)

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=TICK_S)
            if message is not None:
                try:
                    self._receive(message["data"])
                except (ValueError, KeyError, TypeError):  # not one of ours: another program on the channel
                    log.warning("cluster %s: ignored a message that is not a mock server's", self.config.name)

    async def _write(self, client: Redis) -> None:
        """Send the queued frames and verbs in order, a batch per round trip, each batch atomic."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                pipe = client.pipeline(transaction=True)
                for _ in range(min(MAX_BATCH, len(self._outbox))):
                    kind, name, message, data, history = self._outbox.popleft()
                    pipe.publish(self._channel, message)
                    if kind == "frame":  # data: the timeline's position
                        pipe.set(self._key("state", name), data)
                        pipe.rpush(self._key("history", name), message)
                        pipe.ltrim(self._key("history", name), -max(history, 1), -1)
                    elif kind == "pause":
                        pipe.hset(self._key("pause"), name, 1)
                    elif kind == "resume":
                        pipe.hdel(self._key("pause"), name)
                    elif kind == "faults":  # data: the faults, as the verb carries them
                        pipe.hset(self._key("faults"), name, data)
                await pipe.execute()

    async def _maintain(self, client: Redis) -> None:
        renew = client.register_script(RENEW)
        while True:
            self.adopt()
            await self._report(client)
            for stream in self._shared_streams():
                await self._lease(client, renew, stream)
            await asyncio.sleep(TICK_S)

    async def _lease(self, client: Redis, renew: Any, stream: Stream) -> None:
        """Keep this process's lease on a stream's clock, or try to take it."""
        key = self._key("lease", stream.name)
        if stream.role == "holder":
            if not await renew(keys=[key], args=[self.id, LEASE_MS]):
                stream.follow()
                log.warning("cluster %s: lost the clock of %s to another process", self.config.name, stream.name)
            return
        if not await client.set(key, self.id, nx=True, px=LEASE_MS):
            return
        raw = await client.get(self._key("state", stream.name))
        if stream.role != "follower":
            return  # reloaded meanwhile; the next pass adopts it again
        seed = self.hub.config.settings.random_seed
        stream.hold(json.loads(raw) if raw else None, self._relay(stream.name, stream.config.history),
                    f"{seed}/{stream.name}/frames" if seed is not None else None)
        log.info("cluster %s: this process runs the clock of %s (from frame %d)", self.config.name,
                 stream.name, stream.history[-1][0] if stream.history else 0)

    async def _report(self, client: Redis) -> None:
        """Say what this process serves, read what the others do, and warn when their configs differ."""
        mine = {"t": time.time(), "config": self._config_fingerprint(),
                "clients": {name: s.clients for name, s in self.hub.streams.items()}}
        pipe = client.pipeline(transaction=False)
        pipe.hset(self._key("procs"), self.id, json.dumps(mine))
        pipe.hgetall(self._key("procs"))
        for lasting in LASTING:
            pipe.pexpire(self._key(lasting), CONTROL_TTL_MS)
        reports = (await pipe.execute())[1]
        stale = time.time() - REPORT_STALE_S * 10
        others = {}
        for pid, text in reports.items():
            pid, report = pid.decode(), json.loads(text)
            if pid != self.id:
                others[pid] = report
                if report["t"] < stale:
                    await client.hdel(self._key("procs"), pid)  # long gone: keep the hash small
        self._others = others
        self._check_configs(mine["config"])

    def _check_configs(self, mine: str) -> None:
        fresh = time.time() - REPORT_STALE_S
        differ = frozenset(pid for pid, r in self._others.items() if r["t"] >= fresh and r["config"] != mine)
        if differ and differ != self._disagreeing:
            log.warning("cluster %s: the config of %s differs from this one (%s vs %s): the processes may serve "
                        "different streams; load the same config file everywhere", self.config.name,
                        ", ".join(sorted(differ)), ", ".join(sorted({self._others[p]["config"] for p in differ})),
                        mine)
        elif not differ and self._disagreeing:
            log.info("cluster %s: every process now has the same config", self.config.name)
        self._disagreeing = differ

    def _config_fingerprint(self) -> str:
        if self._fingerprint is None or self._fingerprint[0] is not self.hub.config:
            self._fingerprint = (self.hub.config, config_fingerprint(self.hub.config))
        return self._fingerprint[1]

    def _shared_streams(self) -> Iterable[Stream]:
        # a parameterized stream's values run their timelines in each process (one clock per value would need
        # a holder per value)
        return [s for s in self.hub.streams.values() if s.config.timeline == "shared" and not s.config.parameterized]

    # -- what the other processes send

    def _receive(self, message: bytes) -> None:
        """A frame or a control verb from another process, applied to this process's clients."""
        header, payload = decode(message)
        if header.get("o") == self.id:
            return
        stream = self.hub.streams.get(header.get("s"))
        if stream is None:
            return  # a stream this process's config does not have (see the config warning)
        verb, args = header["v"], header.get("a", {})
        if verb == "frame":
            kind = header.get("k")
            stream.deliver(header["n"], frame_of(kind, payload) if kind else None, header["p"])
            return
        self._apply(verb, stream, args, frame_of(header["k"], payload) if verb == "push" else None)

    def _apply(self, verb: str, stream: Stream, args: dict[str, Any], frame: Frame | None) -> None:
        """A control verb another process applied, applied here (``frame``: what a push sends)."""
        for each in self.hub.family(stream.name):  # a parameterized stream: each of its values served here too
            if verb == "push" and frame is not None:
                each.push(frame)
            elif verb == "pause":
                each.pause()
            elif verb == "resume":
                each.resume()
            elif verb == "seek" and each.source.length is not None and 0 <= args.get("index", -1) < each.source.length:
                each.seek(args["index"])
            elif verb == "faults":
                faults = FaultsConfig.model_validate(args)
                key = stream.name if each is stream else f"{stream.name} {each.config.path}"
                each.set_faults(fault_injector(faults, self.hub.config.settings.random_seed, key))
