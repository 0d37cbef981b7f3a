"""The Hub: every stream and WebSocket of one running server, and the config they run on."""

from __future__ import annotations

import asyncio
import logging
from random import Random
from typing import Any, Protocol

from tornado.ioloop import IOLoop

from config import EndpointConfig, FaultsConfig, ParamConfig, ServerConfig, StreamConfig, match_path, path_param_names
from streams.build import AppConfig, bind_instance, fault_injector, stream_rng
from streams.client import Client
from streams.rules import RuleSet
from streams.sources import Frame
from streams.stream import Stream

log = logging.getLogger("mockws.hub")

# how many values of parameterized streams (/v1/marketdata/BTC-USD, ...) may be served at once, all streams
# together: each has its own stream object and timelines until its last client leaves; a client asking for
# one more gets 503, so a client trying every symbol cannot grow the server's memory
MAX_PATH_VALUES = 1000


class UnknownStreamError(LookupError):
    """No stream has that name."""

    def __init__(self, name: str, names: list[str]) -> None:
        super().__init__(f"no stream named {name!r}; streams: {', '.join(names) or 'none'}")


class NotSeekableError(Exception):
    """Seek asked of a stream without a shared replay timeline."""


class SeekRangeError(ValueError):
    """A seek index outside the stream's entries."""

    def __init__(self, index: int, length: int) -> None:
        super().__init__(f"index must be from 0 to {length - 1}, got {index}")
        self.length = length


class ClusterLink(Protocol):
    """The other processes of a cluster, as the hub sees them (streams.cluster.Cluster)."""

    id: str

    def announce(self, verb: str, stream: str, args: dict[str, Any] | None = None, frame: Frame | None = None) -> None:
        """Have every other process apply a control verb to its clients."""

    def clients_elsewhere(self, stream: str) -> dict[str, int]:
        """A stream's clients on each other process."""

    def adopt(self) -> None:
        """Take the shared streams of a new config into the cluster."""

    def health(self) -> dict[str, Any]:
        """{"status": "ok", ...} while the cluster's Redis is connected, else the reason."""


class Hub:
    """The running streams by name and path, the open sockets and the current config."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.streams: dict[str, Stream] = {}
        # the values of parameterized streams being served, by concrete path: a stream each, made for its first
        # client and dropped after its last (``stream_for_client``), with its bound rules
        self.instances: dict[str, Stream] = {}
        self._instance_rules: dict[str, RuleSet] = {}
        self.sockets: set[Client] = set()  # every open client: WebSockets (echo too), event streams, Socket.IO sessions
        self.file_client_limit: int | None = None  # what the open-file limit leaves room for, when known
        self.conversations: set[Any] = set()  # every connection answering by rules (streams.conversation)
        self._rules_rngs: dict[str, Random] = {}
        for stream_config in config.streams:
            self.streams[stream_config.name] = self._make_stream(stream_config)
        self._closed = asyncio.Event()
        self.cluster: ClusterLink | None = None  # set by streams.cluster.Cluster when the config has `cluster:`

    @property
    def server(self) -> ServerConfig:
        """The current `server:` settings."""
        return self.config.settings.server

    @property
    def echo_path(self) -> str | None:
        """Where the echo WebSocket lives, or None when it is off."""
        echo = self.config.settings.echo
        return echo.path if echo is not None else None

    def stream_at(self, path: str) -> Stream | None:
        """The stream configured for a URL path, if any: the one with that path, or the parameterized stream
        whose path it matches with allowed values (/v1/marketdata/BTC-USD: /v1/marketdata/{symbol})."""
        exact = next((s for s in self.streams.values() if s.config.path == path), None)
        if exact is not None:
            return exact
        return next((s for s in self.streams.values() if s.config.match(path)[0] is not None), None)

    def stream_for_client(self, path: str) -> Stream | None:
        """The stream a client at ``path`` subscribes to: the path's own, or the one that serves this value of a
        parameterized stream (made now if it is the value's first client); None when there is none, or when
        MAX_PATH_VALUES values are already served."""
        stream = self.stream_at(path)
        if stream is None or not stream.config.parameterized or stream.config.path == path:
            return stream
        return self._value_stream(stream, path)

    def _value_stream(self, parent: Stream, path: str) -> Stream | None:
        """The stream of one value of a parameterized stream, made now if it is the value's first client; None
        when MAX_PATH_VALUES values are already served."""
        instance = self.instances.get(path)
        if instance is None and len(self.instances) < MAX_PATH_VALUES:
            instance = self._make_instance(parent, path)
        return instance

    def path_values_full(self, path: str) -> bool:
        """Whether serving ``path`` needs one more parameter value than MAX_PATH_VALUES allows."""
        stream = self.stream_at(path)
        return (stream is not None and stream.config.parameterized and path not in self.instances
                and len(self.instances) >= MAX_PATH_VALUES)

    def path_refusal(self, path: str) -> str | None:
        """Why nothing is served at ``path`` when it has the shape of a parameterized path, else None."""
        for stream in self.streams.values():
            _, why = stream.config.match(path)
            if why is not None:
                return f"no stream at {path} ({stream.config.path}): {why}"
        return None

    def _instance_config(self, parent: StreamConfig, path: str) -> StreamConfig | None:
        """The config of one value of a parameterized stream: the concrete path, and the values as params."""
        values, _ = parent.match(path)
        if values is None:
            return None
        fixed = {name: value for name, value in parent.params.items() if isinstance(value, str)}
        return parent.model_copy(update={"path": path, "params": {**fixed, **values}})

    def _make_instance(self, parent: Stream, path: str) -> Stream:
        config = self._instance_config(parent.config, path)
        source, rules = bind_instance(self.config, config)
        seed, key = self.config.settings.random_seed, f"{parent.name} {path}"
        stream = Stream(config, source, stream_rng(seed, key), self.server)
        stream.faults = fault_injector(parent.faults.config if parent.faults is not None else None, seed, key)
        if parent.paused:
            stream.pause()
        stream.on_empty = self._drop_when_idle
        self.instances[path] = stream
        if rules is not None:
            self._instance_rules[path] = rules
        return stream

    def _drop_when_idle(self, stream: Stream) -> None:
        # on the next loop turn: a stream that resubscribes its clients (a reload) is empty only for a moment
        IOLoop.current().add_callback(self._drop_instance, stream, only_if_idle=True)

    def _drop_instance(self, stream: Stream, only_if_idle: bool = False) -> None:
        path = stream.config.path
        if self.instances.get(path) is not stream or (only_if_idle and stream.clients):
            return
        stream.stop()
        del self.instances[path]
        self._instance_rules.pop(path, None)
        self._rules_rngs.pop(path, None)

    def stream_in_namespace(self, namespace: str) -> Stream | None:
        """The stream served in a Socket.IO namespace (its path, unless `socketio.namespace`), if any; a value of a
        parameterized stream in the namespace of the value's path (made now, like ``stream_for_client``)."""
        exact = next((s for s in self.streams.values()
                      if s.config.socketio_namespace == namespace and not s.config.parameterized), None)
        if exact is not None:
            return exact
        parent = next((s for s in self.streams.values()
                       if s.config.parameterized and s.config.match(namespace)[0] is not None), None)
        return self._value_stream(parent, namespace) if parent is not None else None

    def namespaces(self) -> list[str]:
        """Every Socket.IO namespace a stream is served in."""
        return [s.config.socketio_namespace for s in self.streams.values() if s.config.socketio_namespace is not None]

    def endpoint_at(self, path: str) -> EndpointConfig | None:
        """The rules endpoint (no stream of its own) served at a URL path, if any; a {name} segment of an
        endpoint's path matches any value."""
        endpoints = self.config.settings.endpoints
        return next((e for e in endpoints if e.path == path), None) or next(
            (e for e in endpoints if "{" in e.path and match_path(e.path, path, {})[0] is not None), None)

    def rules_at(self, path: str) -> RuleSet | None:
        """The rules that answer messages at a URL path (an endpoint's, or a stream's), if any."""
        rules = self.config.rules.get(path) or self._instance_rules.get(path)
        if rules is None and path not in self.instances:
            endpoint = self.endpoint_at(path)
            rules = self.config.rules.get(endpoint.path) if endpoint is not None else None
        return rules

    def rules_rng(self, path: str) -> Random:
        """The random generator of the templates answered at a path: reproducible with a seed."""
        rng = self._rules_rngs.get(path)
        if rng is None:
            rng = self._rules_rngs[path] = stream_rng(self.config.settings.random_seed, "rules " + path)
        return rng

    def _make_stream(self, stream_config: StreamConfig) -> Stream:
        seed = self.config.settings.random_seed
        source = self.config.sources[stream_config.name]
        stream = Stream(stream_config, source, stream_rng(seed, stream_config.name), self.server)
        stream.faults = fault_injector(stream_config.faults, seed, stream_config.name)
        return stream

    # -- sockets

    def add_socket(self, client: Client) -> None:
        """Count an open client: a WebSocket, an event stream, a Socket.IO session (for max_clients and shutdown)."""
        self.sockets.add(client)
        self._closed.clear()

    def remove_socket(self, client: Client) -> None:
        """Forget a closed client."""
        self.sockets.discard(client)
        if not self.sockets:
            self._closed.set()

    def client_limit(self) -> tuple[int, str]:
        """How many clients may connect, and which setting says so."""
        if self.file_client_limit is not None and self.file_client_limit < self.server.max_clients:
            return self.file_client_limit, "the process's open-file limit: ulimit -n"
        return self.server.max_clients, "server.max_clients"

    def at_capacity(self) -> bool:
        """Whether a new client would exceed the client limit."""
        return len(self.sockets) >= self.client_limit()[0]

    # -- shutdown

    def stop(self) -> None:
        """Stop every stream's clock."""
        for stream in [*self.streams.values(), *self.instances.values()]:
            stream.stop()

    def close_all(self, code: int, reason: str) -> None:
        """Close every WebSocket, streams and echo alike."""
        for stream in [*self.streams.values(), *self.instances.values()]:
            stream.close_all(code, reason)
        for client in list(self.sockets):
            client.close(code, reason)

    async def wait_closed(self, timeout_s: float) -> bool:
        """Wait until every WebSocket has closed; False if some were still open after the timeout."""
        if not self.sockets:
            return True
        try:
            await asyncio.wait_for(self._closed.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    # -- live reload

    def apply(self, new: AppConfig) -> list[str]:
        """Switch to a new config in place, keeping clients connected; returns what changed, for the log."""
        old, changes = self.config, []
        self.config = new
        old_server, server = old.settings.server, new.settings.server
        for key in ("host", "port", "workers"):
            if getattr(old_server, key) != getattr(server, key):
                changes.append(f"server.{key} {getattr(old_server, key)} -> {getattr(server, key)} "
                               "needs a restart (still listening where it was)")
        for key in type(server).model_fields:
            if key not in ("host", "port", "workers") and getattr(old_server, key) != getattr(server, key):
                shown = "(changed)" if key == "api_token" else f"{getattr(old_server, key)} -> {getattr(server, key)}"
                changes.append(f"server.{key} {shown}")
        if self.echo_path != (old.settings.echo.path if old.settings.echo else None):
            changes.append(f"echo {'at ' + self.echo_path if self.echo_path else 'off'}")
        seed_changed = old.settings.random_seed != new.settings.random_seed
        if seed_changed:
            changes.append(f"random_seed {old.settings.random_seed} -> {new.settings.random_seed}")
            self._rules_rngs.clear()
        changes += self._apply_endpoints(old, new)
        streams: dict[str, Stream] = {}
        for stream_config in new.streams:
            stream = self.streams.pop(stream_config.name, None)
            if stream is None:
                streams[stream_config.name] = self._make_stream(stream_config)
                changes.append(f"new stream {stream_config.name} at {stream_config.path}")
                continue
            old_faults = stream.config.faults
            changes += stream.update(stream_config, new.sources[stream_config.name], server)
            if seed_changed:
                stream.rng = stream_rng(new.settings.random_seed, stream_config.name)
            if seed_changed or stream_config.faults != old_faults:  # else keep the injector, its counters and timers
                stream.set_faults(fault_injector(stream_config.faults, new.settings.random_seed, stream_config.name))
            streams[stream_config.name] = stream
        for name, removed in self.streams.items():
            removed.close_all(1001, "stream removed")
            removed.stop()
            changes.append(f"stream {name} removed")
        self.streams = streams
        self._apply_instances(seed_changed)
        if old.settings.cluster != new.settings.cluster:
            changes.append("cluster settings changed: they apply after a restart")
        if self.cluster is not None:
            self.cluster.adopt()
        return changes

    def _apply_instances(self, seed_changed: bool) -> None:
        """Rebind each served value of a parameterized stream to the new config (its parent logged what changed);
        a value no longer served closes with 1001."""
        for path, instance in list(self.instances.items()):
            parent = self.streams.get(instance.name)
            config = self._instance_config(parent.config, path) if parent is not None else None
            if config is None:
                self._drop_instance(instance)
                instance.close_all(1001, "stream removed")
                continue
            source, rules = bind_instance(self.config, config)
            instance.update(config, source, self.server)
            self._instance_rules.pop(path, None)
            if rules is not None:
                self._instance_rules[path] = rules
            faults = parent.faults.config if parent.faults is not None else None
            if seed_changed or faults != (instance.faults.config if instance.faults is not None else None):
                seed, key = self.config.settings.random_seed, f"{parent.name} {path}"
                instance.set_faults(fault_injector(faults, seed, key))
                if seed_changed:
                    instance.rng = stream_rng(seed, key)

    def _apply_endpoints(self, old: AppConfig, new: AppConfig) -> list[str]:
        """What changed in the rules endpoints; connections to a removed one close with 1001."""
        changes = []
        old_endpoints = {e.path: e for e in old.settings.endpoints}
        new_endpoints = {e.path: e for e in new.settings.endpoints}
        for path, endpoint in new_endpoints.items():
            before = old_endpoints.get(path)
            if before is None:
                changes.append(f"new endpoint at {path}")
            elif before != endpoint:
                changes.append(f"endpoint {path} changed (rules apply from the next message)")
        for path in old_endpoints.keys() - new_endpoints.keys():
            changes.append(f"endpoint {path} removed")
            for conversation in [c for c in self.conversations if c.path == path and c.own is None]:
                conversation.client.close(1001, "endpoint removed")
        for stream_config in new.streams:
            before = next((s for s in old.streams if s.name == stream_config.name), None)
            if before is not None and (before.rules, before.fallback) != (stream_config.rules, stream_config.fallback):
                changes.append(f"{stream_config.name} rules changed (they apply from the next message)")
        return changes

    def describe_endpoints(self) -> list[dict[str, Any]]:
        """Every WebSocket path that answers messages by rules, with its connections and topic subscriptions."""
        endpoints = []
        for path, rules in self.config.rules.items():
            here = [c for c in self.conversations if c.path == path]
            by_stream: dict[str, int] = {}
            for conversation in here:
                for sub in conversation.subscriptions.values():
                    by_stream[sub.stream.name] = by_stream.get(sub.stream.name, 0) + 1
            stream = next((s for s in self.streams.values() if s.config.path == path), None)
            endpoint = next((e for e in self.config.settings.endpoints if e.path == path), None)
            auth = stream.config.auth if stream is not None else endpoint.auth
            endpoints.append({"path": path, "stream": stream.name if stream is not None else None,
                              "rules": len(rules.rules), "examples": rules.examples,
                              "clients": len(here) if stream is None else stream.subscriptions()["direct"],
                              "subscriptions": by_stream, "auth": auth.describe() if auth is not None else None})
        return endpoints

    def describe(self) -> list[dict[str, Any]]:
        """Every stream as the HTTP API lists them; in a cluster, `clients` counts every process's."""
        described = [self._describe(stream) for stream in self.streams.values()]
        if self.cluster is not None:
            for stream, info in zip(self.streams.values(), described, strict=True):
                info["processes"] = {self.cluster.id: info["clients"], **self.cluster.clients_elsewhere(stream.name)}
                info["clients"] = sum(info["processes"].values())
                info["clock"] = stream.role  # holder: this process runs the shared clock; follower: another does
        return described

    def _describe(self, stream: Stream) -> dict[str, Any]:
        """A stream as the HTTP API lists it; a parameterized one with its clients per served value."""
        info = stream.describe()
        if stream.config.parameterized:
            values = [s for s in self.instances.values() if s.name == stream.name]
            info["instances"] = {s.config.path: s.clients for s in values}
            # what each {name} segment accepts, so a client (the demo page) can offer the values
            info["params"] = {name: _accepts(stream.config.params.get(name)) for name in
                              path_param_names(stream.config.path)}
            info["clients"] = sum(s.clients for s in values)
            info["frames_sent"] += sum(s.frames_sent for s in values)
        return info

    # -- control (HTTP API): each verb raises UnknownStreamError, and seek NotSeekableError or SeekRangeError;
    # on a parameterized stream a verb applies to every value served, and to values served later

    def stream(self, name: str) -> Stream:
        """The stream called ``name``."""
        stream = self.streams.get(name)
        if stream is None:
            raise UnknownStreamError(name, list(self.streams))
        return stream

    def family(self, name: str) -> list[Stream]:
        """The stream called ``name`` and, when it is parameterized, the streams of the values it serves."""
        stream = self.stream(name)
        return [stream, *(s for s in self.instances.values() if s.name == name)]

    def push(self, name: str, frame: Frame) -> int:
        """Send ``frame`` to every client of a stream now; returns how many got it (in a cluster: here, plus
        the clients the other processes last reported)."""
        sent = sum(stream.push(frame) for stream in self.family(name))
        if self.cluster is not None:
            self.cluster.announce("push", name, frame=frame)
            sent += sum(self.cluster.clients_elsewhere(name).values())
        return sent

    def pause(self, name: str) -> Stream:
        """Stop a stream's clock; clients stay connected."""
        stream = self.stream(name)
        for each in self.family(name):
            each.pause()
        if self.cluster is not None:
            self.cluster.announce("pause", name)
        return stream

    def resume(self, name: str) -> Stream:
        """Restart a stream's clock where it stopped."""
        stream = self.stream(name)
        for each in self.family(name):
            each.resume()
        if self.cluster is not None:
            self.cluster.announce("resume", name)
        return stream

    def seek(self, name: str, index: int) -> Stream:
        """Make entry ``index`` the next frame of a shared replay timeline."""
        stream = self.stream(name)
        if stream.config.timeline != "shared":
            raise NotSeekableError(f"seek needs a shared replay timeline; {name} is {stream.config.timeline} "
                              f"{stream.config.source} (each client has its own position)")
        if stream.source.length is None:
            raise NotSeekableError(f"seek needs a replay source; {name} is random")
        if not 0 <= index < stream.source.length:
            raise SeekRangeError(index, stream.source.length)
        for each in self.family(name):
            each.seek(index)
        if self.cluster is not None:
            self.cluster.announce("seek", name, {"index": index})
        return stream

    def set_faults(self, name: str, faults: FaultsConfig) -> Stream:
        """Replace a stream's faults (all off when none is enabled); clients stay connected."""
        stream = self.stream(name)
        for each in self.family(name):
            key = name if each is stream else f"{name} {each.config.path}"
            each.set_faults(fault_injector(faults, self.config.settings.random_seed, key))
        if self.cluster is not None:
            self.cluster.announce("faults", name, faults.model_dump(mode="json", exclude_defaults=True))
        return stream


def _accepts(param: Any) -> dict[str, Any]:
    """What a {name} segment accepts, as the API shows it: {"enum": [...]}, {"pattern": "..."} or {} (any)."""
    if isinstance(param, ParamConfig) and param.enum is not None:
        return {"enum": list(param.enum)}
    if isinstance(param, ParamConfig) and param.pattern is not None:
        return {"pattern": param.pattern}
    return {}
