#!/usr/bin/env python3
"""Regenerate docs/screenshot.png: the demo page on the default config, in headless Chromium.

    python scripts/screenshot.py                          # docs/screenshot.png, 1280x900, light
    python scripts/screenshot.py --width 390 --height 844 --color-scheme dark --out /tmp/phone.png

Starts the real server (on port 3030 unless --port says otherwise), waits for a few frames so the
sparklines have a shape, sends one message so the log shows its reply, takes the picture and stops
the server. Uses the same Chromium setup as the browser tests.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the Playwright and server helpers are shared with the browser tests

from browser import launch_chromium, missing_browser_reason  # noqa: E402
from server_process import ServerProcess, free_port  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Page


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="Screenshot the demo page with headless Chromium.")
    parser.add_argument("-c", "--config", type=Path, default=ROOT / "config.yaml", help="default: config.yaml")
    parser.add_argument("--path", default="/", help="page path, i.e. which stream is shown (default: /)")
    parser.add_argument("--port", type=int, default=3030,
                        help="port to serve on (default: 3030, as in the README's snippet; 0: any free port)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png",
                        help="PNG to write (default: docs/screenshot.png)")
    parser.add_argument("--frames", type=int, default=6,
                        help="frames to wait for before the picture (default: 6, about 15 s at 3 s a frame)")
    parser.add_argument("--send", default="hello server!",
                        help="message to send before the picture, so the log shows the reply ('' sends nothing)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--color-scheme", choices=["light", "dark"], default="light")
    return parser.parse_args(argv)


def warn_without_cjk_font() -> None:
    """Say so when Chinese category names would come out as empty boxes."""
    if shutil.which("fc-list") is None:
        return
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False)
    if not found.stdout.strip():
        print("warning: no Chinese font installed, names like 人像 will show as boxes "
              "(apt-get install fonts-wqy-microhei)", file=sys.stderr)


def send_and_wait_for_reply(page: Page, message: str, timeout_s: float = 5.0) -> None:
    """Send from the page's send box and wait until a received message quotes it in the log."""
    send_box = page.get_by_test_id("send-input")
    send_box.fill(message)
    send_box.press("Enter")
    send_box.blur()  # no focus ring in the picture
    reply = page.locator("[data-direction=in] [data-testid=log-body]", has_text=message)
    deadline = time.monotonic() + timeout_s
    while reply.count() == 0:
        if time.monotonic() > deadline:
            print(f"note: no reply quoting {message!r} within {timeout_s} s (does the stream have a reply?)",
                  file=sys.stderr)
            return
        page.wait_for_timeout(100)


def main(argv: list[str] | None = None) -> int:
    """Take the screenshot; returns the exit code."""
    args = parse_args(argv)
    missing = missing_browser_reason()
    if missing is not None:
        print(f"cannot take a screenshot: {missing}", file=sys.stderr)
        return 2
    warn_without_cjk_font()

    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only importable once checked above

    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        port = args.port or free_port()
        server = ServerProcess(args.config.resolve(), port, Path(scratch) / "server.log")
        browser = launch_chromium(playwright)
        try:
            server.start()
            page = browser.new_page(
                viewport={"width": args.width, "height": args.height},
                color_scheme=args.color_scheme,
                locale="en-US",
            )
            page.goto(f"http://localhost:{port}{args.path}")  # the host name users type, shown in the snippet
            page.wait_for_function(
                "n => Number(document.querySelector('[data-testid=count-in]').textContent.replace(/,/g, '')) >= n",
                arg=args.frames,
                timeout=120_000,
            )
            if args.send:
                send_and_wait_for_reply(page, args.send)
            page.wait_for_timeout(300)  # the counters tick every 250 ms; let the picture show the last frame
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
        finally:
            browser.close()
            server.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
