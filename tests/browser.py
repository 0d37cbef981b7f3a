"""Headless Chromium for the browser tests and scripts/screenshot.py: find it, launch it, or say why not.

Playwright must never download a browser of its own; Debian's `chromium` package provides it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM_PATH = Path("/usr/bin/chromium")
INSTALL_HINT = f"Chromium not found at {CHROMIUM_PATH}: apt-get install chromium"

# Headless in a container: no sandbox (often running as root), no GPU, and no background
# traffic to Google services, so a run touches nothing but the server under test.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def find_chromium() -> str | None:
    """Debian's Chromium, else a `chromium` on PATH, else None."""
    if CHROMIUM_PATH.exists():
        return str(CHROMIUM_PATH)
    return shutil.which("chromium")


def missing_browser_reason() -> str | None:
    """Why a browser cannot be driven on this machine, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401, PLC0415 - only checking that it imports
    except ImportError:
        return "the playwright package is not installed: pip install -r requirements-dev.txt"
    if find_chromium() is None:
        return INSTALL_HINT
    return None


def launch_chromium(playwright: Playwright) -> Browser:
    """Start headless Chromium from the system package (never a Playwright-downloaded one)."""
    executable = find_chromium()
    if executable is None:
        raise RuntimeError(INSTALL_HINT)
    return playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
