"""Live reload: watch the config file and its mock files, apply a valid change in place.

Polling mtime and size with a PeriodicCallback is dependency-free and works on
every filesystem (editors that replace the file, network mounts, containers).
A change is applied once the files have been still for DEBOUNCE_S, so an
editor's multi-step save is read once, whole. An invalid edit changes nothing:
the previous config keeps serving and the problem is logged once, until the
files change again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from tornado.ioloop import IOLoop, PeriodicCallback

from config import ConfigError
from streams.build import AppConfig, load_config

log = logging.getLogger("mockws.reload")

POLL_S = 0.2
DEBOUNCE_S = 0.2

Snapshot = dict[Path, tuple[int, int] | None]


class ConfigWatcher:
    """Polls a config file and the mock files it names; hands every valid new config to ``apply``."""

    def __init__(self, config: AppConfig, apply: Callable[[AppConfig], list[str]],
                 poll_s: float = POLL_S, debounce_s: float = DEBOUNCE_S) -> None:
        self.path = config.file
        self._apply = apply
        self._debounce_s = debounce_s
        self._files = self._files_of(config.watched_files())
        self._seen = _snapshot(self._files)
        self._changed_at: float | None = None  # when the files last moved, while a reload is pending
        self._last_error: str | None = None
        self._timer = PeriodicCallback(self._poll, poll_s * 1000)

    def start(self) -> None:
        """Start polling (idempotent)."""
        self._timer.start()

    def stop(self) -> None:
        """Stop polling (idempotent)."""
        self._timer.stop()

    def _files_of(self, mock_files: object) -> list[Path]:
        return [self.path, *sorted(set(mock_files))]

    def _poll(self) -> None:
        now = IOLoop.current().time()
        snapshot = _snapshot(self._files)
        if snapshot != self._seen:
            self._seen = snapshot
            self._changed_at = now  # still moving: wait until it settles
            return
        if self._changed_at is not None and now - self._changed_at >= self._debounce_s:
            self._changed_at = None
            self.reload()

    def reload(self) -> None:
        """Load the files now and apply them, or log why not (once per distinct problem)."""
        try:
            config = load_config(self.path)
        except ConfigError as e:
            self._watch(e.mock_files)
            message = "\n".join(e.problems)
            if message != self._last_error:
                self._last_error = message
                log.error("%s not applied, still serving the previous config:\n%s", self.path.name, message)
            return
        if self._last_error is not None:
            log.info("%s is valid again", self.path.name)
        self._last_error = None
        self._watch(config.watched_files())
        try:
            changes = self._apply(config)
        except Exception:  # a bad reload must never take the running server down
            log.exception("applying %s failed; the server keeps running", self.path.name)
            return
        if changes:
            log.info("reloaded %s: %s", self.path.name, "; ".join(changes))
        else:
            log.info("reloaded %s: nothing changed", self.path.name)

    def _watch(self, mock_files: object) -> None:
        files = self._files_of(mock_files)
        if files != self._files:
            self._files = files
            self._seen = _snapshot(files)


def _snapshot(files: list[Path]) -> Snapshot:
    """(mtime, size) of each file; None for a missing one."""
    out: Snapshot = {}
    for path in files:
        try:
            stat = os.stat(path)
        except OSError:
            out[path] = None
        else:
            out[path] = (stat.st_mtime_ns, stat.st_size)
    return out
