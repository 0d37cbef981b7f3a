"""Node.js clients for the tests: pinned npm packages installed once into a cache folder, and scripts run with them.

Front-ends talk to the server through npm libraries (``ws``, ``graphql-ws``,
``@stomp/stompjs``, ...); the client tests run those libraries for real. The
packages go into ``$XDG_CACHE_HOME/mockws/npm`` (``~/.cache/mockws/npm``),
installed by npm the first time a test asks for them, so later runs need no
network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path


class NodeUnavailableError(RuntimeError):
    """Node, npm or a package cannot be had on this machine; the message says why and what to do."""


def cache_folder() -> Path:
    """Where the npm packages are installed (``$XDG_CACHE_HOME/mockws/npm``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mockws" / "npm"


def node_modules(*packages: str) -> Path:
    """The cache's node_modules folder with ``packages`` ("name@exact-version") installed; npm runs only
    for those that are not there yet. Raises NodeUnavailableError."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise NodeUnavailableError(f"{tool} not found: apt-get install nodejs npm")
    folder = cache_folder()
    missing = [spec for spec in packages if installed_version(folder, _name(spec)) != _version(spec)]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "package.json"
        if not manifest.exists():
            manifest.write_text('{"private": true}\n')
        # --save-exact: the manifest lists every package installed so far, so the next install keeps them
        command = ["npm", "install", "--prefix", str(folder), "--save-exact", "--no-audit", "--no-fund",
                   "--loglevel=error", *missing]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise NodeUnavailableError(f"`npm install {' '.join(missing)}` took over 300 s "
                                       "(no access to the npm registry?)") from None
        still = [spec for spec in missing if installed_version(folder, _name(spec)) != _version(spec)]
        if result.returncode != 0 or still:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise NodeUnavailableError(f"`npm install {' '.join(missing)}` into {folder} failed:\n{tail}")
    return folder / "node_modules"


def installed_version(folder: Path, name: str) -> str | None:
    """The version of package ``name`` installed under ``folder``, or None."""
    try:
        return json.loads((folder / "node_modules" / name / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def run_node(script: str, *args: str, timeout: float) -> str:
    """Run a CommonJS ``script`` (``process.argv.slice(1)`` holds ``args``) that can ``require`` the cached
    packages; returns what it printed, or fails the test with its exit code and stderr."""
    result = subprocess.run(["node", "-e", script, "--", *args], capture_output=True, text=True, timeout=timeout,
                            env=_node_env())
    assert result.returncode == 0, f"node exited with {result.returncode}:\n{result.stderr}"
    return result.stdout


def start_node(script: str, *args: str) -> subprocess.Popen[str]:
    """``run_node`` in the background, for a client that must stay connected while the test acts; read its
    lines from ``stdout``. The caller waits for it (or kills it)."""
    return subprocess.Popen(["node", "-e", script, "--", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_node_env())


def _node_env() -> dict[str, str]:
    return {**os.environ, "NODE_PATH": str(cache_folder() / "node_modules")}


def _name(spec: str) -> str:
    return spec.rpartition("@")[0]


def _version(spec: str) -> str:
    name, _, version = spec.rpartition("@")
    if not name or not version:
        raise ValueError(f"{spec!r}: pin an exact version, e.g. ws@8.23.0")
    return version
