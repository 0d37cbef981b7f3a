"""The demo page, served at ``/`` and at every stream path opened in a browser."""

from __future__ import annotations

from pathlib import Path

from tornado.web import RequestHandler


def send_demo_page(handler: RequestHandler) -> None:
    """Answer with static/index.html (read per request: edits show on reload)."""
    page = Path(handler.settings["static_path"]) / "index.html"
    handler.set_header("Content-Type", "text/html; charset=UTF-8")
    handler.set_header("Cache-Control", "no-cache")
    handler.finish(page.read_bytes())


class DemoHandler(RequestHandler):
    """Serves the demo page where no stream lives at ``/``."""

    def get(self) -> None:
        send_demo_page(self)

    def head(self) -> None:
        send_demo_page(self)
